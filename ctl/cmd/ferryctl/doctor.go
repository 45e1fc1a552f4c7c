package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func (a *app) newDoctorCmd() *cobra.Command {
	var probeTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor A B",
		Short: "Find out how FTP data connections get from one endpoint to the other, and what to fix",
		Long: `doctor checks, between two endpoints, what FTP needs from the network: the control port, a
passive data connection, an active connect-back, the address the server announces in PASV replies
against the one it is reached at, and whether it offers TLS. It prints each check's result and
timing, and a recommendation in plain words ("open TCP 50000-50100 on the server's firewall, or use
active mode").

A and B are agent://host:grpcport[/path] or ftp://user:pass@host:port[/path] URLs; the path is
listed (NLST) to open the data connections. The agent:// endpoint is the one that probes, as the
client of the other's FTP server; it is reached directly at its URL (not through --agent). With two
agents each probes the other, since --mode auto can reverse the direction; give addresses that work
from both agents. With two ftp:// endpoints the agent of --agent probes both.

Each check is bounded by --probe-timeout, so a blocked path costs seconds. -o json prints each
probe's DiagnoseResponse as one protojson line. Exit code 1 when some probed server cannot be
reached by any data connection.`,
		Example: `  ferryctl doctor agent://10.0.0.5:7070 ftp://alice:s3cret@files.example.com/pub/
  ferryctl doctor agent://10.0.0.5:7070 agent://10.0.1.7:7070 -o json
  ferryctl --agent 127.0.0.1:7070 doctor ftp://a.example/ ftp://b.example/ --probe-timeout 5s`,
		Args: exactArgs("A", "B"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if probeTimeout <= 0 || probeTimeout > time.Minute {
				return usageErrorf("--probe-timeout: want more than 0 and at most 1m, got %s", probeTimeout)
			}
			x, y, err := a.endpoints(args[0], args[1])
			if err != nil {
				return err
			}
			probes, err := planProbes(x, y)
			if err != nil {
				return err
			}
			// The probes run at once: each may wait for its timeouts.
			if _, err := a.api(); err != nil {
				return err
			}
			results := make([]*ferryv1.DiagnoseResponse, len(probes))
			errs := make([]error, len(probes))
			var wg sync.WaitGroup
			for i, p := range probes {
				wg.Go(func() { results[i], errs[i] = a.diagnose(ctx, p, probeTimeout) })
			}
			wg.Wait()
			for i, p := range probes {
				if errs[i] != nil {
					return errs[i]
				}
				resp := results[i]
				resp.Agent = p.name(a.agent) // where ferryctl reached it, not its listen address
				if a.format == render.JSON {
					if err := a.printJSON(resp); err != nil {
						return err
					}
					continue
				}
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				if err := render.Diagnosis(a.stdout, resp.GetAgent(), resp); err != nil {
					return err
				}
			}
			if a.format != render.JSON && len(probes) == 2 && probes[0].agent != "" && probes[1].agent != "" {
				fmt.Fprintf(a.stdout, "\nBetween the agents: %s\n", pairSummary(probes, results))
			}
			if !works(probes, results) {
				return &exitError{code: exitFailure, silent: true, err: fmt.Errorf("no data connection works")}
			}
			return nil
		}),
	}
	cmd.Flags().DurationVar(&probeTimeout, "probe-timeout", 3*time.Second, "timeout of each check")
	return cmd
}

// probe is one Diagnose call: agent (a gRPC address; "" for --agent) probes target.
type probe struct {
	agent  string
	target string
}

func (p probe) name(defaultAgent string) string {
	if p.agent == "" {
		return defaultAgent
	}
	return p.agent
}

// planProbes decides who probes whom (see the command's help).
func planProbes(a, b string) ([]probe, error) {
	ua, err := endpointURL("A", a)
	if err != nil {
		return nil, err
	}
	ub, err := endpointURL("B", b)
	if err != nil {
		return nil, err
	}
	switch {
	case ua.Scheme == "agent" && ub.Scheme == "agent":
		return []probe{{ua.Host, b}, {ub.Host, a}}, nil
	case ua.Scheme == "agent":
		return []probe{{ua.Host, b}}, nil
	case ub.Scheme == "agent":
		return []probe{{ub.Host, a}}, nil
	}
	return []probe{{"", a}, {"", b}}, nil
}

func endpointURL(name, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "agent" && u.Scheme != "ftp" && u.Scheme != "ftpes" && u.Scheme != "ftps") || u.Host == "" {
		return nil, usageErrorf("%s: want agent://host:port[/path] or ftp://, ftpes:// or ftps://[user:pass@]host[:port][/path], got %q", name, redactURL(s))
	}
	if u.Scheme == "agent" && u.Port() == "" {
		u.Host += ":7070"
	}
	return u, nil
}

// redactURL hides a password in a URL shown in an error.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if user, _, ok := strings.Cut(rest[:at], ":"); ok {
				return s[:i+3] + user + ":xxxxx" + rest[at:]
			}
		}
	}
	return s
}

// diagnose runs one probe. The agent of an agent:// endpoint is dialled directly.
func (a *app) diagnose(ctx context.Context, p probe, probeTimeout time.Duration) (*ferryv1.DiagnoseResponse, error) {
	req := &ferryv1.DiagnoseRequest{Url: p.target, Timeout: durationpb.New(probeTimeout)}
	// Up to five checks, the data ones with replies around them: bound the call accordingly.
	limit := 15*probeTimeout + a.timeout
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if p.agent == "" {
		c, err := a.api()
		if err != nil {
			return nil, err
		}
		resp, err := c.Diagnose(cctx, req)
		if err == nil {
			a.reached.Store(true)
		}
		return resp, err
	}
	opts, err := a.dialOptions()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(p.agent, opts...)
	if err != nil {
		return nil, usageErrorf("agent %q: %v", p.agent, err)
	}
	defer conn.Close()
	resp, err := ferryv1.NewAgentServiceClient(conn).Diagnose(cctx, req)
	if st := status.Convert(err); err != nil && st.Code() == codes.Unavailable {
		return nil, &exitError{code: exitUnreachable, err: fmt.Errorf("cannot reach agent at %s: %s", p.agent, dialCause(st.Message()))}
	}
	return resp, err
}

// works reports whether transfers can work: every probed server has a mode that works, or for two
// agents, one direction works (auto mode reverses the other).
func works(p []probe, r []*ferryv1.DiagnoseResponse) bool {
	none := ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED
	if len(p) == 2 && p[0].agent != "" && p[1].agent != "" {
		return r[0].GetSuggestedMode() != none || r[1].GetSuggestedMode() != none
	}
	for _, x := range r {
		if x.GetSuggestedMode() == none {
			return false
		}
	}
	return true
}

// pairSummary says what auto mode does between two agents, from both probes.
func pairSummary(p []probe, r []*ferryv1.DiagnoseResponse) string {
	ab, ba := r[0].GetSuggestedMode(), r[1].GetSuggestedMode()
	none := ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED
	switch {
	case ab != none && ba != none:
		return fmt.Sprintf("--mode auto works both ways (%s connects in %s mode, %s in %s mode).",
			p[0].agent, render.ModeName(ab), p[1].agent, render.ModeName(ba))
	case ab != none:
		return fmt.Sprintf("--mode auto works: %s connects to %s in %s mode; transfers started on %s reverse the direction.",
			p[0].agent, p[1].agent, render.ModeName(ab), p[1].agent)
	case ba != none:
		return fmt.Sprintf("--mode auto works: %s connects to %s in %s mode; transfers started on %s reverse the direction.",
			p[1].agent, p[0].agent, render.ModeName(ba), p[0].agent)
	}
	return "no data connection works in either direction: follow one of the recommendations above."
}
