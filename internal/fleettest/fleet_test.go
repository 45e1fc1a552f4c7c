// Package fleettest runs fleet jobs over real agents on loopback (in-process daemons, own roots
// and ports, authentication on): fan-out with both strategies, fan-in, a host down, a relay
// killed mid-way and the coordinator restarted mid-job.
package fleettest

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

var (
	fleetSize = flag.Int("fleet.agents", 20, "receiving agents in TestFleetFanOut")
	fleetMiB  = flag.Int64("fleet.mib", 2, "file size in MiB in TestFleetFanOut (the figure run uses 200)")
)

type copyResult struct {
	wall   time.Duration
	egress int64 // bytes the source sent (nft), -1 when not counted
	copies int32 // deliveries the source served (coordinator's count)
	job    *ferryv1.FleetJob
}

// runCopy pushes rel from nodes[0] to all the others with strategy and checks every copy.
func runCopy(t *testing.T, nodes []*node, eg *egress, rel, sum string, strategy ferryv1.FleetStrategy, dest string, limit time.Duration) copyResult {
	t.Helper()
	src := nodes[0]
	fc := fleetClient(t, src)
	before := eg.bytes(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: src.fleetAgent(), SourcePath: rel,
		Targets: targets(nodes[1:]), DestinationPath: dest, Strategy: strategy,
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	job := waitJob(t, src, resp.GetJob().GetId(), limit, nil)
	res := copyResult{wall: time.Since(start), job: job, copies: job.GetSourceCopies(), egress: -1}
	if before >= 0 {
		res.egress = eg.bytes(t) - before
	}
	for _, h := range job.GetHosts() {
		if h.GetAttempt() > 1 || h.GetState() != ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED {
			t.Logf("%s: %s: %s after %d attempt(s), from %q: %s", strategy, h.GetName(), h.GetState(), h.GetAttempt(), h.GetServedBy(), h.GetError())
		}
	}
	if job.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_SUCCEEDED {
		t.Fatalf("%s: job %s: %s", strategy, job.GetState(), job.GetError())
	}
	if job.GetSha256() != sum {
		t.Errorf("job sha256 %s, want %s", job.GetSha256(), sum)
	}
	for _, h := range job.GetHosts() {
		if h.GetSha256() != sum {
			t.Errorf("%s: reported sha256 %s", h.GetName(), h.GetSha256())
		}
	}
	checkCopies(t, nodes[1:], strings.TrimSuffix(dest, "/")+"/"+filepath.Base(rel), sum)
	return res
}

// TestFleetFanOut pushes one file from n0 to 20 agents with direct and with tree, checks every
// SHA-256 on disk, and reports wall time and the source's egress (counted by the kernel); then
// collects a distinct file from the 20 into per-agent directories on n0.
func TestFleetFanOut(t *testing.T) {
	srcHost := uniqueLoopback()
	nodes := startFleet(t, *fleetSize+1, srcHost)
	eg := newEgress(t, srcHost)
	size := *fleetMiB << 20
	sum := writeRandom(t, nodes[0].agent().Root, "release/app.bin", size)
	limit := 60*time.Second + time.Duration(*fleetMiB)*time.Second

	direct := runCopy(t, nodes, eg, "release/app.bin", sum, ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT, "direct/", limit)
	tree := runCopy(t, nodes, eg, "release/app.bin", sum, ferryv1.FleetStrategy_FLEET_STRATEGY_TREE, "tree/", limit)

	n := len(nodes) - 1
	t.Logf("%d agents, %s each:", n, mib(size))
	for _, r := range []struct {
		name string
		res  copyResult
	}{{"direct", direct}, {"tree", tree}} {
		eb := "n/a"
		if r.res.egress >= 0 {
			eb = fmt.Sprintf("%s (%.2f copies)", mib(r.res.egress), float64(r.res.egress)/float64(size))
		}
		t.Logf("  %-6s wall %6.2fs  source egress %s  source deliveries %d", r.name, r.res.wall.Seconds(), eb, r.res.copies)
	}
	if direct.copies < int32(n) {
		t.Errorf("direct: the source served %d deliveries, want at least %d", direct.copies, n)
	}
	if tree.copies > 3 {
		t.Errorf("tree: the source served %d deliveries, want at most 3", tree.copies)
	}
	if tree.egress >= 0 {
		// Besides the copies the source sends FTP replies and gRPC answers (to this test's
		// polls too): under 1 MiB here.
		if tree.egress > 3*size+1<<20 {
			t.Errorf("tree: the source sent %s, more than 3 copies of %s", mib(tree.egress), mib(size))
		}
		if direct.egress < int64(n)*size {
			t.Errorf("direct: the source sent %s, less than %d copies: the counter misses traffic", mib(direct.egress), n)
		}
	}
	served := map[string]int{}
	for _, h := range tree.job.GetHosts() {
		served[h.GetServedBy()]++
	}
	if len(served) < 3 {
		t.Errorf("tree: only %v served copies; want relays", served)
	}

	t.Run("collect", func(t *testing.T) {
		sums := map[string]string{}
		for _, nd := range nodes[1:] {
			sums[nd.name] = writeRandom(t, nd.agent().Root, "logs/app.log", 64<<10+int64(len(nd.name)))
		}
		fc := fleetClient(t, nodes[0])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
			Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COLLECT, Destination: nodes[0].fleetAgent(),
			SourcePath: "logs/app.log", Targets: targets(nodes[1:]), DestinationPath: "gathered",
		})
		if err != nil {
			t.Fatal(err)
		}
		job := waitJob(t, nodes[0], resp.GetJob().GetId(), 60*time.Second, nil)
		if job.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_SUCCEEDED {
			t.Fatalf("collect: %s: %s", job.GetState(), job.GetError())
		}
		for _, nd := range nodes[1:] {
			got, err := fileSHA(filepath.Join(nodes[0].agent().Root, "gathered", nd.name, "app.log"))
			if err != nil || got != sums[nd.name] {
				t.Errorf("gathered/%s/app.log: %v sha256 %s, want %s", nd.name, err, got, sums[nd.name])
			}
		}
	})
}

// TestFleetFaults: a receiver that is down is retried and reported failed, naming it, without
// stopping the others; a relay killed while it serves has its children routed to another holder.
func TestFleetFaults(t *testing.T) {
	relayHost := uniqueLoopback()
	nodes := startFleet(t, 9, "", relayHost)
	const size = 16 << 20
	// The relay sends slowly (when nft can shape it), so it is stopped in the middle of a file.
	slow := throttle(t, relayHost, 4<<20)
	sum := writeRandom(t, nodes[0].agent().Root, "rel/big.bin", size)
	down := nodes[8]
	down.agent().Stop()

	fc := fleetClient(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Fanout 1 with a canary of one: n1 is the only copy the source sends at first, so it
	// serves the next hosts; it is stopped as soon as one of them pulls from it.
	resp, err := fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "rel/big.bin",
		Targets: targets(nodes[1:]), DestinationPath: "in/", Strategy: ferryv1.FleetStrategy_FLEET_STRATEGY_TREE,
		Fanout: 1, Canary: 1, MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	relay := nodes[1]
	killed := false
	job := waitJob(t, nodes[0], resp.GetJob().GetId(), 90*time.Second, func(j *ferryv1.FleetJob) {
		if killed {
			return
		}
		for _, h := range j.GetHosts() {
			if h.GetServedBy() != relay.name || h.GetState() != ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING || h.GetTransferId() == "" {
				continue
			}
			// Watch the child's transfer on its own agent and stop the relay once bytes flow.
			var child *node
			for _, n := range nodes {
				if n.name == h.GetName() {
					child = n
				}
			}
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
				tr, err := child.agent().Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: h.GetTransferId()})
				if err != nil {
					return
				}
				p := tr.GetTransfer().GetProgress()
				if (p.GetBytesDone() > 0 && (!slow || p.GetBytesDone() < p.GetBytesTotal())) || tr.GetTransfer().GetState() != ferryv1.TransferState_TRANSFER_STATE_RUNNING &&
					tr.GetTransfer().GetState() != ferryv1.TransferState_TRANSFER_STATE_QUEUED {
					t.Logf("stopping relay %s while %s pulls from it (%d of %d bytes, %s)", relay.name, h.GetName(),
						p.GetBytesDone(), p.GetBytesTotal(), tr.GetTransfer().GetState())
					relay.agent().Stop()
					killed = true
					return
				}
			}
		}
	})
	if !killed {
		t.Fatal("the relay never served anyone")
	}
	if job.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_FAILED || !strings.Contains(job.GetError(), down.name) {
		t.Errorf("job %s %q; want FAILED naming %s", job.GetState(), job.GetError(), down.name)
	}
	rerouted := 0
	for _, h := range job.GetHosts() {
		switch h.GetName() {
		case down.name:
			if h.GetState() != ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED || h.GetAttempt() != 2 {
				t.Errorf("down host: %s after %d attempts (%s); want FAILED after 2", h.GetState(), h.GetAttempt(), h.GetError())
			}
		case relay.name:
			if h.GetState() != ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED || !strings.Contains(h.GetError(), "stopped serving as a relay") {
				t.Errorf("relay: %s %q; want SUCCEEDED and dropped as a relay", h.GetState(), h.GetError())
			}
		default:
			if h.GetState() != ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED {
				t.Errorf("%s: %s (%s)", h.GetName(), h.GetState(), h.GetError())
			}
			// A delivery whose bytes had all left the relay before it stopped may still end
			// well (the SHA-256 check below says whether it did); the others move elsewhere.
			if strings.Contains(h.GetError(), "relay "+relay.name) {
				rerouted++
			}
		}
	}
	if rerouted == 0 {
		t.Errorf("no host says it was routed around relay %s", relay.name)
	}
	t.Logf("job: %s; %d host(s) routed around the stopped relay", job.GetError(), rerouted)
	for _, h := range job.GetHosts() {
		t.Logf("  %s %s attempts %d from %q in %s: %s", h.GetName(), h.GetState(), h.GetAttempt(), h.GetServedBy(),
			h.GetFinishedAt().AsTime().Sub(h.GetStartedAt().AsTime()).Round(time.Millisecond), h.GetError())
	}
	checkCopies(t, nodes[2:8], "in/big.bin", sum)
}

// TestFleetCoordinatorRestart: the coordinator (the source agent) is restarted while the job
// runs; the job resumes from its store and every host ends with an intact copy.
func TestFleetCoordinatorRestart(t *testing.T) {
	nodes := startFleet(t, 7)
	const size = 8 << 20
	sum := writeRandom(t, nodes[0].agent().Root, "rel/app.bin", size)
	fc := fleetClient(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "rel/app.bin",
		Targets: targets(nodes[1:]), DestinationPath: "in/app.bin", Strategy: ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT,
		Concurrency: 2, MaxAttempts: 5, RequestId: "restart-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetJob().GetId()
	restarted := false
	job := waitJob(t, nodes[0], id, 90*time.Second, func(j *ferryv1.FleetJob) {
		if !restarted && j.GetHostsSucceeded() >= 2 {
			t.Logf("restarting the coordinator with %d of %d hosts done", j.GetHostsSucceeded(), j.GetHostsTotal())
			nodes[0].restart(t)
			restarted = true
		}
	})
	if !restarted {
		t.Fatal("the job ended before the restart")
	}
	if job.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_SUCCEEDED {
		t.Fatalf("after restart: %s: %s", job.GetState(), job.GetError())
	}
	checkCopies(t, nodes[1:], "in/app.bin", sum)
	// The same request id finds the same job after the restart.
	fc = fleetClient(t, nodes[0])
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	again, err := fc.StartFleetJob(ctx2, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "rel/app.bin",
		Targets: targets(nodes[1:]), DestinationPath: "in/app.bin", RequestId: "restart-test",
	})
	if err != nil || again.GetJob().GetId() != id {
		t.Errorf("request id after restart: %v, job %s; want %s", err, again.GetJob().GetId(), id)
	}
}

// TestFleetAuth: a viewer may watch but not start a fleet job; a fleet token may start
// deliveries (agent:// into the root) but not uploads.
func TestFleetAuth(t *testing.T) {
	nodes := startFleet(t, 2)
	conn := testagent.Dial(t, nodes[0].agent().GRPC, testagent.ViewerToken)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ferryv1.NewFleetServiceClient(conn).StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "a",
		Targets: targets(nodes[1:]), DestinationPath: "b",
	})
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("viewer StartFleetJob: %v; want PermissionDenied", err)
	}
	fconn := testagent.Dial(t, nodes[1].agent().GRPC, FleetToken)
	defer fconn.Close()
	_, err = ferryv1.NewAgentServiceClient(fconn).StartTransfer(ctx, &ferryv1.StartTransferRequest{
		Source: "secret.txt", Destination: nodes[0].agent().URL("stolen.txt"),
	})
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("fleet token upload: %v; want PermissionDenied", err)
	}
	_, err = ferryv1.NewAgentServiceClient(fconn).StartTransfer(ctx, &ferryv1.StartTransferRequest{
		Source: "ftp://u:p@127.0.0.1:1/x", Destination: "x",
	})
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("fleet token ftp:// source: %v; want PermissionDenied", err)
	}
	_, err = ferryv1.NewFleetServiceClient(fconn).StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{})
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("fleet token StartFleetJob: %v; want PermissionDenied (admins start fleet jobs)", err)
	}
	_, err = ferryv1.NewFleetServiceClient(conn).StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{})
	if err == nil {
		t.Error("empty request accepted")
	}
	// Bad input names the field.
	aconn := testagent.Dial(t, nodes[0].agent().GRPC, testagent.AdminToken)
	defer aconn.Close()
	_, err = ferryv1.NewFleetServiceClient(aconn).StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "../etc/passwd",
		Targets: targets(nodes[1:]), DestinationPath: "b",
	})
	if err == nil || !strings.Contains(err.Error(), "source_path:") {
		t.Errorf("path escaping the root: %v; want InvalidArgument naming source_path", err)
	}
}

// TestFleetCanaryAndCancel: a canary wave whose host fails stops the job before the others
// start; a cancelled job cancels its running delivery on the receiving agent and skips the rest.
func TestFleetCanaryAndCancel(t *testing.T) {
	nodes := startFleet(t, 6)
	sum := writeRandom(t, nodes[0].agent().Root, "rel/a.bin", 8<<20)
	fc := fleetClient(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Canary: the first target is down.
	down := nodes[1]
	down.agent().Stop()
	resp, err := fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "rel/a.bin",
		Targets: targets(nodes[1:]), DestinationPath: "canary/", Canary: 1, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	job := waitJob(t, nodes[0], resp.GetJob().GetId(), 30*time.Second, nil)
	if job.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_FAILED || !strings.Contains(job.GetError(), "canary") {
		t.Errorf("canary job: %s %q", job.GetState(), job.GetError())
	}
	for _, h := range job.GetHosts()[1:] {
		if h.GetState() != ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED || h.GetAttempt() != 0 {
			t.Errorf("%s: %s after %d attempts; want skipped, never tried", h.GetName(), h.GetState(), h.GetAttempt())
		}
	}

	// Cancel: one delivery at a time; cancel once the second one runs.
	resp, err = fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "rel/a.bin",
		Targets: targets(nodes[2:]), DestinationPath: "cancel/", Strategy: ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT,
		Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetJob().GetId()
	var running *ferryv1.FleetHost
	waitJob(t, nodes[0], id, 30*time.Second, func(j *ferryv1.FleetJob) {
		if running != nil {
			return
		}
		for _, h := range j.GetHosts() {
			if h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING && h.GetTransferId() != "" && j.GetHostsSucceeded() >= 1 {
				running = h
				c, err := fc.CancelFleetJob(ctx, &ferryv1.CancelFleetJobRequest{Id: id})
				if err != nil {
					t.Fatalf("cancel: %v", err)
				}
				if c.GetJob().GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_CANCELLED {
					t.Errorf("after cancel: %s", c.GetJob().GetState())
				}
			}
		}
	})
	if running == nil {
		t.Fatal("no delivery was seen running")
	}
	job = waitJob(t, nodes[0], id, 10*time.Second, nil)
	skipped := 0
	for _, h := range job.GetHosts() {
		if h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED {
			skipped++
		}
	}
	if skipped < 2 {
		t.Errorf("%d hosts skipped after cancel; want the running one and the pending ones", skipped)
	}
	// The running delivery was cancelled on its agent (or had just finished).
	for _, n := range nodes {
		if n.name != running.GetName() {
			continue
		}
		tr, err := n.agent().Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: running.GetTransferId()})
		if err != nil {
			t.Fatal(err)
		}
		if st := tr.GetTransfer().GetState(); st != ferryv1.TransferState_TRANSFER_STATE_CANCELLED && st != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			t.Errorf("the running delivery on %s is %s after the cancel", n.name, st)
		}
	}
	checkCopies(t, nodes[2:3], "cancel/a.bin", sum)
}

// TestFleetHostComesBack: a host down when the job starts is retried, and gets its copy once it
// is back, while the others go on.
func TestFleetHostComesBack(t *testing.T) {
	nodes := startFleet(t, 4)
	sum := writeRandom(t, nodes[0].agent().Root, "rel/a.bin", 1<<20)
	late := nodes[3]
	late.agent().Stop()
	fc := fleetClient(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fc.StartFleetJob(ctx, &ferryv1.StartFleetJobRequest{
		Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: nodes[0].fleetAgent(), SourcePath: "rel/a.bin",
		Targets: targets(nodes[1:]), DestinationPath: "in/", MaxAttempts: 6,
	})
	if err != nil {
		t.Fatal(err)
	}
	back := false
	job := waitJob(t, nodes[0], resp.GetJob().GetId(), 60*time.Second, func(j *ferryv1.FleetJob) {
		h := j.GetHosts()[2]
		if !back && h.GetAttempt() >= 1 && h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING {
			if j.GetHostsSucceeded() != 2 {
				return // the others first: they do not wait for the host that is down
			}
			t.Logf("%s failed attempt %d (%s); starting it again", h.GetName(), h.GetAttempt(), h.GetError())
			late.restart(t)
			back = true
		}
	})
	if !back {
		t.Fatal("the down host was never seen waiting for a retry")
	}
	if job.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetState(), job.GetError())
	}
	if h := job.GetHosts()[2]; h.GetAttempt() < 2 || h.GetError() == "" {
		t.Errorf("%s: %d attempts, error %q; want a failed attempt reported, then success", h.GetName(), h.GetAttempt(), h.GetError())
	}
	checkCopies(t, nodes[1:], "in/a.bin", sum)
}
