package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// fleetFlags are the flags shared by the fleet commands.
type fleetFlags struct {
	inventory   string
	coordinator string
}

func (f *fleetFlags) add(cmd *cobra.Command, coordUsage string) {
	cmd.Flags().StringVar(&f.inventory, "inventory", os.Getenv("FERRY_INVENTORY"), "inventory YAML file of agents, - for stdin (env FERRY_INVENTORY)")
	cmd.Flags().StringVar(&f.coordinator, "coordinator", "", coordUsage)
}

func (a *app) newFleetCmd() *cobra.Command {
	cmd := groupCmd("fleet", "Move files across many agents at once: inventory, fan-out, fan-in, fleet jobs",
		`  ferryctl fleet ls --inventory fleet.yaml role=edge
  ferryctl fleet copy --inventory fleet.yaml origin:release/app.tar --to role=edge:releases/ --strategy tree
  ferryctl fleet collect --inventory fleet.yaml region=eu:logs/app.log origin:gathered
  ferryctl fleet watch --inventory fleet.yaml --coordinator origin 3f2a9c0d1e4b5a69`)
	cmd.Long = `fleet drives many agents named in an inventory (a YAML file, or - for stdin):

  agents:
    - name: n0
      address: 10.0.0.10:7070
      labels: {role: origin, region: eu}
    - name: n1
      address: 10.0.0.11:7070
      labels: {role: edge, region: eu}

Selectors pick agents: role=edge,region=eu (every term must match), name=n3, role=edge|origin
(one of), region!=us, * (all).

A copy or collect is a fleet job held by one agent, the coordinator (the source agent for
copy, the destination agent for collect, or --coordinator NAME), in its job store: it goes on
when ferryctl exits and after the coordinator restarts. Each delivery is an ordinary transfer
on the receiving agent (resumed, retried, verified by SHA-256). The coordinator calls the
other agents with its peer token; they must accept it with the role fleet (see docs/fleet.md).`
	cmd.AddCommand(a.newFleetLsCmd(), a.newFleetCopyCmd(), a.newFleetCollectCmd(),
		a.newFleetStatusCmd(), a.newFleetWatchCmd(), a.newFleetCancelCmd(), a.newFleetJobsCmd())
	return cmd
}

// dialAddr connects to the agent at addr with ferryctl's credentials; the caller closes it.
func (a *app) dialAddr(addr string) (*grpc.ClientConn, error) {
	opts, err := a.dialOptions()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, usageErrorf("agent %q: %v", addr, err)
	}
	return conn, nil
}

// coordinatorAddr is where fleet jobs are asked for: --coordinator NAME from the inventory,
// else the default agent of the command (dflt), else --agent.
func (a *app) coordinatorAddr(f *fleetFlags, inv *inventory, dflt string) (string, string, error) {
	if f.coordinator != "" {
		if inv == nil {
			var err error
			if inv, err = loadInventory(f.inventory, os.Stdin); err != nil {
				return "", "", err
			}
		}
		ag, err := inv.byName(f.coordinator)
		if err != nil {
			return "", "", err
		}
		return ag.Name, ag.Address, nil
	}
	if dflt != "" {
		ag, err := inv.byName(dflt)
		if err != nil {
			return "", "", err
		}
		return ag.Name, ag.Address, nil
	}
	return a.agent, a.agent, nil
}

// fleetClient returns a FleetService client of the coordinator at addr, and points the app's
// error classification at it.
func (a *app) fleetClient(addr string) (ferryv1.FleetServiceClient, error) {
	if a.conn != nil && a.agent == addr {
		return ferryv1.NewFleetServiceClient(a.conn), nil
	}
	a.close()
	a.agent = addr
	conn, err := a.dialAddr(addr)
	if err != nil {
		return nil, err
	}
	a.conn, a.client = conn, ferryv1.NewAgentServiceClient(conn)
	return ferryv1.NewFleetServiceClient(conn), nil
}

// ---- fleet ls

type agentRow struct {
	Name       string            `json:"name"`
	Address    string            `json:"address"`
	Labels     map[string]string `json:"labels,omitempty"`
	Healthy    bool              `json:"healthy"`
	Version    string            `json:"version,omitempty"`
	FreeBytes  int64             `json:"free_bytes,omitempty"`
	TotalBytes int64             `json:"total_bytes,omitempty"`
	Error      string            `json:"error,omitempty"`
}

func (a *app) newFleetLsCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "ls [SELECTOR]",
		Short: "List the agents of the inventory with their health, version and free space",
		Long: `ls asks every selected agent for its description (GetAgentInfo, at most 32 at once, each
bounded by --timeout) and prints one line per agent: name, address, labels, health, version and
the free space of the filesystem holding its root. The token (FERRY_TOKEN or --token-file) is
presented to every agent; a viewer token is enough. Exit 1 when an agent did not answer, naming it.
JSON: one object per agent and line.`,
		Example: `  ferryctl fleet ls --inventory fleet.yaml
  ferryctl fleet ls --inventory fleet.yaml role=edge,region=eu -o json
  kubectl get pods -l app=ferry-agent -o json | ./inventory-from-k8s | ferryctl fleet ls --inventory -`,
		Args: cobra.MaximumNArgs(1),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			inv, err := loadInventory(f.inventory, os.Stdin)
			if err != nil {
				return err
			}
			sel := ""
			if len(args) == 1 {
				sel = args[0]
			}
			agents, err := inv.selectAgents(sel)
			if err != nil {
				return err
			}
			rows := a.probeAgents(ctx, agents)
			return a.printAgentRows(rows)
		}),
	}
	cmd.Flags().StringVar(&f.inventory, "inventory", os.Getenv("FERRY_INVENTORY"), "inventory YAML file of agents, - for stdin (env FERRY_INVENTORY)")
	return cmd
}

func (a *app) probeAgents(ctx context.Context, agents []invAgent) []agentRow {
	rows := make([]agentRow, len(agents))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, ag := range agents {
		rows[i] = agentRow{Name: ag.Name, Address: ag.Address, Labels: ag.Labels}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			conn, err := a.dialAddr(ag.Address)
			if err != nil {
				rows[i].Error = err.Error()
				return
			}
			defer conn.Close()
			cctx, cancel := a.unary(ctx)
			defer cancel()
			info, err := ferryv1.NewAgentServiceClient(conn).GetAgentInfo(cctx, &ferryv1.GetAgentInfoRequest{})
			if err != nil {
				rows[i].Error = render.OneLine(dialCause(status.Convert(err).Message()))
				return
			}
			rows[i].Healthy, rows[i].Version = true, info.GetVersion()
			rows[i].FreeBytes, rows[i].TotalBytes = info.GetFreeBytes(), info.GetTotalBytes()
		}()
	}
	wg.Wait()
	return rows
}

func (a *app) printAgentRows(rows []agentRow) error {
	var down []string
	for _, r := range rows {
		if !r.Healthy {
			down = append(down, r.Name)
		}
	}
	if a.format == render.JSON {
		enc := json.NewEncoder(a.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESS\tLABELS\tHEALTH\tVERSION\tFREE")
		for _, r := range rows {
			health, free := "ok", "-"
			if !r.Healthy {
				health = "DOWN: " + r.Error
			}
			if r.TotalBytes > 0 {
				free = fmt.Sprintf("%s of %s", render.Bytes(r.FreeBytes), render.Bytes(r.TotalBytes))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Address, labelString(r.Labels), health, orDash(r.Version), free)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(down) > 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("%d of %d agents did not answer: %s", len(down), len(rows), strings.Join(down, ", "))}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- fleet copy / collect

type fleetStartOpts struct {
	f           fleetFlags
	strategy    string
	fanout      int
	canary      int
	concurrency int
	attempts    int
	detach      bool
	requestID   string
}

func (o *fleetStartOpts) addCommon(cmd *cobra.Command) {
	cmd.Flags().IntVar(&o.canary, "canary", 0, "deliver to the first N selected hosts first; the rest only if all of them succeed")
	cmd.Flags().IntVar(&o.concurrency, "concurrency", 0, "deliveries running at once across the job (0: 16 for direct and collect, 1024 for tree)")
	cmd.Flags().IntVar(&o.attempts, "attempts", 0, "attempts per host, each a transfer retried by its agent (0: 3)")
	cmd.Flags().BoolVar(&o.detach, "detach", false, "print the job ID and exit; the job goes on (fleet watch ID follows it)")
	cmd.Flags().StringVar(&o.requestID, "request-id", "", "idempotency key: the same ID returns the job it started")
}

func (a *app) newFleetCopyCmd() *cobra.Command {
	var o fleetStartOpts
	var to string
	cmd := &cobra.Command{
		Use:   "copy NAME:PATH --to SELECTOR:PATH",
		Short: "Deliver a file or tree from one agent to every selected agent",
		Long: `copy starts a fleet job on the coordinator (the source agent NAME, or --coordinator) that
delivers PATH on NAME to PATH on every agent the selector picks (a trailing / means "into this
directory"), then shows it until it ends (unless --detach). Each delivery is a transfer started on
the receiving agent with an agent:// source, so it resumes, retries and verifies SHA-256.

Strategies:
  direct  the source serves every host (at most --concurrency at once): the source sends N copies.
  tree    hosts holding a verified copy serve the next ones, each at most --fanout at once: the
          source sends about --fanout copies and the time grows with log(N). A relay that stops
          answering is dropped and its hosts are served by another holder.

A host that is down is retried (--attempts) without stopping the others. --canary N delivers to the
first N hosts first and stops there if one fails.

Output: on a terminal, an overall bar and one line per host still in flight (hosts that are done
fold away); otherwise one line per host event. At the end a table of every host, and a result
line; exit 1 naming the hosts that failed. -o json: {"event":"host","host":{...}} per host change,
then {"event":"result","ok":...,"job":{...}}. Ctrl-C stops watching only: the job goes on.`,
		Example: `  ferryctl fleet copy --inventory fleet.yaml origin:release/app.tar --to role=edge:releases/
  ferryctl fleet copy --inventory fleet.yaml origin:release/app.tar --to role=edge,region=eu:releases/ --strategy tree --fanout 3 --canary 2
  ferryctl fleet copy --inventory - origin:release/app.tar --to '*:releases/' --detach -o json < fleet.yaml`,
		Args: exactArgs("NAME:PATH"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			inv, err := loadInventory(o.f.inventory, os.Stdin)
			if err != nil {
				return err
			}
			srcName, srcPath, err := splitTarget("source", args[0])
			if err != nil {
				return err
			}
			src, err := inv.byName(srcName)
			if err != nil {
				return err
			}
			if to == "" {
				return usageErrorf("--to: required (SELECTOR:PATH)")
			}
			sel, dstPath, err := splitTarget("--to selector", to)
			if err != nil {
				return err
			}
			targets, err := inv.selectAgents(sel)
			if err != nil {
				return err
			}
			var tgt []*ferryv1.FleetAgent
			for _, t := range targets {
				if t.Name != src.Name { // the source has the file already
					tgt = append(tgt, &ferryv1.FleetAgent{Name: t.Name, Address: t.Address})
				}
			}
			if len(tgt) == 0 {
				return usageErrorf("--to: selector %s picks only the source", describeSel(sel))
			}
			var strat ferryv1.FleetStrategy
			switch strings.ToLower(o.strategy) {
			case "direct":
				strat = ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT
			case "tree":
				strat = ferryv1.FleetStrategy_FLEET_STRATEGY_TREE
			default:
				return usageErrorf("--strategy %q: want direct or tree", o.strategy)
			}
			_, addr, err := a.coordinatorAddr(&o.f, inv, src.Name)
			if err != nil {
				return err
			}
			return a.startFleet(ctx, addr, &o, &ferryv1.StartFleetJobRequest{
				Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: &ferryv1.FleetAgent{Name: src.Name, Address: src.Address},
				SourcePath: srcPath, Targets: tgt, DestinationPath: dstPath, Strategy: strat, Fanout: int32(o.fanout),
			})
		}),
	}
	o.f.add(cmd, "agent (inventory name) that holds and drives the job (default: the source)")
	cmd.Flags().StringVar(&to, "to", "", "SELECTOR:PATH: the receiving agents and the path on each")
	cmd.Flags().StringVar(&o.strategy, "strategy", "tree", "direct (the source serves everyone) or tree (holders serve the next ones)")
	cmd.Flags().IntVar(&o.fanout, "fanout", 0, "tree: deliveries each holder serves at once, about the copies the source sends (0: 3)")
	o.addCommon(cmd)
	return cmd
}

func (a *app) newFleetCollectCmd() *cobra.Command {
	var o fleetStartOpts
	cmd := &cobra.Command{
		Use:   "collect SELECTOR:PATH NAME:DEST",
		Short: "Gather a file or tree from every selected agent into DEST/<agent name>/ on one agent",
		Long: `collect starts a fleet job on the coordinator (the destination agent NAME, or --coordinator)
that pulls PATH from every agent the selector picks into DEST/<agent name>/ on NAME: one transfer per
agent, run by NAME with an agent:// source (resumed, retried, verified). Output, exit codes and
--detach as for fleet copy.`,
		Example: `  ferryctl fleet collect --inventory fleet.yaml role=edge:logs/app.log origin:gathered
  ferryctl fleet collect --inventory fleet.yaml 'region=eu:var/log/' origin:logs-2026-12-01 -o json`,
		Args: exactArgs("SELECTOR:PATH", "NAME:DEST"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			inv, err := loadInventory(o.f.inventory, os.Stdin)
			if err != nil {
				return err
			}
			sel, srcPath, err := splitTarget("source selector", args[0])
			if err != nil {
				return err
			}
			dstName, dstPath, err := splitTarget("destination", args[1])
			if err != nil {
				return err
			}
			dst, err := inv.byName(dstName)
			if err != nil {
				return err
			}
			agents, err := inv.selectAgents(sel)
			if err != nil {
				return err
			}
			var tgt []*ferryv1.FleetAgent
			for _, t := range agents {
				tgt = append(tgt, &ferryv1.FleetAgent{Name: t.Name, Address: t.Address})
			}
			_, addr, err := a.coordinatorAddr(&o.f, inv, dst.Name)
			if err != nil {
				return err
			}
			return a.startFleet(ctx, addr, &o, &ferryv1.StartFleetJobRequest{
				Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COLLECT, Destination: &ferryv1.FleetAgent{Name: dst.Name, Address: dst.Address},
				SourcePath: srcPath, Targets: tgt, DestinationPath: dstPath,
			})
		}),
	}
	o.f.add(cmd, "agent (inventory name) that holds and drives the job (default: the destination)")
	o.addCommon(cmd)
	return cmd
}

func (a *app) startFleet(ctx context.Context, addr string, o *fleetStartOpts, req *ferryv1.StartFleetJobRequest) error {
	if o.canary < 0 || o.concurrency < 0 || o.attempts < 0 || o.fanout < 0 {
		return usageErrorf("--canary, --concurrency, --attempts and --fanout must not be negative")
	}
	if len(o.requestID) > 128 {
		return usageErrorf("--request-id: at most 128 bytes")
	}
	req.Canary, req.Concurrency, req.MaxAttempts, req.RequestId = int32(o.canary), int32(o.concurrency), int32(o.attempts), o.requestID
	fc, err := a.fleetClient(addr)
	if err != nil {
		return err
	}
	cctx, cancel := a.unary(context.WithoutCancel(ctx))
	defer cancel()
	resp, err := fc.StartFleetJob(cctx, req)
	if err != nil {
		return err
	}
	a.reached.Store(true)
	job := resp.GetJob()
	if o.detach {
		if a.format == render.JSON {
			return a.printJSON(job)
		}
		_, err := fmt.Fprintln(a.stdout, job.GetId())
		return err
	}
	return a.watchFleet(ctx, fc, job.GetId())
}

// ---- status / watch / cancel / jobs

func (a *app) newFleetStatusCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a fleet job: every host, its state and who served it",
		Long: `status asks the coordinator (--coordinator NAME from --inventory, or --agent) for fleet job ID
and prints its hosts as a table and a result line (-o json: the job). Exit 1 when the job failed,
naming the hosts that failed.`,
		Example: `  ferryctl fleet status --inventory fleet.yaml --coordinator origin 3f2a9c0d1e4b5a69
  ferryctl --agent 10.0.0.10:7070 fleet status 3f2a9c0d1e4b5a69 -o json`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			fc, err := a.fleetCoordinator(&f)
			if err != nil {
				return err
			}
			cctx, cancel := a.unary(ctx)
			defer cancel()
			resp, err := fc.GetFleetJob(cctx, &ferryv1.GetFleetJobRequest{Id: args[0]})
			if err != nil {
				return err
			}
			a.reached.Store(true)
			v := newFleetView(a)
			return v.finish(resp.GetJob(), a.format == render.JSON)
		}),
	}
	f.add(cmd, "agent (inventory name) that holds the job (default: --agent)")
	return cmd
}

func (a *app) newFleetWatchCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a fleet job until it ends",
		Long: `watch follows fleet job ID on its coordinator (--coordinator NAME from --inventory, or
--agent) as fleet copy does, re-attaching when the coordinator restarts. Ctrl-C stops watching
only.`,
		Example: `  ferryctl fleet watch --inventory fleet.yaml --coordinator origin 3f2a9c0d1e4b5a69
  ferryctl --agent 10.0.0.10:7070 fleet watch 3f2a9c0d1e4b5a69 -o json | jq -c 'select(.event=="host")'`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			fc, err := a.fleetCoordinator(&f)
			if err != nil {
				return err
			}
			return a.watchFleet(ctx, fc, args[0])
		}),
	}
	f.add(cmd, "agent (inventory name) that holds the job (default: --agent)")
	return cmd
}

func (a *app) newFleetCancelCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a fleet job: running deliveries are cancelled, the others skipped",
		Example: `  ferryctl fleet cancel --inventory fleet.yaml --coordinator origin 3f2a9c0d1e4b5a69
  ferryctl --agent 10.0.0.10:7070 fleet cancel 3f2a9c0d1e4b5a69`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			fc, err := a.fleetCoordinator(&f)
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, max(a.timeout, 15*time.Second))
			defer cancel()
			resp, err := fc.CancelFleetJob(cctx, &ferryv1.CancelFleetJobRequest{Id: args[0]})
			if err != nil {
				return err
			}
			a.reached.Store(true)
			if a.format == render.JSON {
				return a.printJSON(resp.GetJob())
			}
			_, err = fmt.Fprintf(a.stdout, "%s: %s\n", resp.GetJob().GetId(), fleetStateName(resp.GetJob().GetState()))
			return err
		}),
	}
	f.add(cmd, "agent (inventory name) that holds the job (default: --agent)")
	return cmd
}

func (a *app) newFleetJobsCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:     "jobs",
		Short:   "List the fleet jobs a coordinator holds, newest first",
		Example: `  ferryctl fleet jobs --inventory fleet.yaml --coordinator origin`,
		Args:    cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			fc, err := a.fleetCoordinator(&f)
			if err != nil {
				return err
			}
			cctx, cancel := a.unary(ctx)
			defer cancel()
			resp, err := fc.ListFleetJobs(cctx, &ferryv1.ListFleetJobsRequest{})
			if err != nil {
				return err
			}
			a.reached.Store(true)
			if a.format == render.JSON {
				for _, j := range resp.GetJobs() {
					if err := a.printJSON(j); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tSTATE\tHOSTS\tOK\tFAILED\tCREATED")
			for _, j := range resp.GetJobs() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", j.GetId(),
					strings.ToLower(strings.TrimPrefix(j.GetKind().String(), "FLEET_JOB_KIND_")), fleetStateName(j.GetState()),
					j.GetHostsTotal(), j.GetHostsSucceeded(), j.GetHostsFailed(), j.GetCreatedAt().AsTime().Local().Format(time.DateTime))
			}
			return tw.Flush()
		}),
	}
	f.add(cmd, "agent (inventory name) whose jobs to list (default: --agent)")
	return cmd
}

// fleetCoordinator is the coordinator of status, watch, cancel and jobs: --coordinator NAME
// (looked up in --inventory), else --agent.
func (a *app) fleetCoordinator(f *fleetFlags) (ferryv1.FleetServiceClient, error) {
	_, addr, err := a.coordinatorAddr(f, nil, "")
	if err != nil {
		return nil, err
	}
	return a.fleetClient(addr)
}

// watchFleet follows job id to its end, re-opening the stream when the coordinator restarts.
func (a *app) watchFleet(ctx context.Context, fc ferryv1.FleetServiceClient, id string) error {
	v := newFleetView(a)
	var last *ferryv1.FleetJob
	var lostSince time.Time
	backoff := 100 * time.Millisecond
	for {
		final, err := a.followFleetOnce(ctx, fc, id, v, &last)
		if final != nil {
			v.clear()
			return v.finish(final, a.format == render.JSON)
		}
		if ctx.Err() != nil {
			v.clear()
			if interrupted(ctx) {
				return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted; fleet job %s goes on ('ferryctl fleet cancel %s' stops it)", id, id)}
			}
			return ctx.Err()
		}
		code := status.Code(err)
		if errors.Is(err, errStreamEnded) {
			code = codes.Unavailable
		}
		if code != codes.Unavailable || !a.reached.Load() {
			v.clear()
			return err
		}
		if lostSince.IsZero() {
			lostSince = a.now()
		}
		if a.now().Sub(lostSince) > max(a.timeout, reattachWait) {
			v.clear()
			return fmt.Errorf("lost the coordinator while watching fleet job %s: %s", id, status.Convert(err).Message())
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

var errStreamEnded = errors.New("watch stream ended before the job did")

func (a *app) followFleetOnce(ctx context.Context, fc ferryv1.FleetServiceClient, id string, v *fleetView, last **ferryv1.FleetJob) (*ferryv1.FleetJob, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := fc.WatchFleetJob(sctx, &ferryv1.WatchFleetJobRequest{Id: id})
	if err != nil {
		return nil, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errStreamEnded
			}
			return nil, err
		}
		a.reached.Store(true)
		j := resp.GetJob()
		if err := v.update(*last, j); err != nil {
			return nil, err
		}
		*last = j
		if j.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING {
			return j, nil
		}
	}
}

func fleetStateName(s ferryv1.FleetJobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "FLEET_JOB_STATE_"))
}

func hostStateName(s ferryv1.FleetHostState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "FLEET_HOST_STATE_"))
}
