package fleet

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestScaleFigures measures what docs/fleet.md quotes: the coordinator's memory per host of a
// job (every field filled as after a delivery) and the size of one snapshot per host, with
// 10,000 hosts, and holds them to bounds.
func TestScaleFigures(t *testing.T) {
	const n = 10000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	hosts := make([]*hostRecord, n)
	now := time.Now()
	for i := range hosts {
		hosts[i] = &hostRecord{
			Name: fmt.Sprintf("edge-%05d.eu-west", i), Address: fmt.Sprintf("10.%d.%d.%d:7070", i>>16, (i>>8)&255, i&255),
			State: ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED, Wave: 2, Attempt: 1,
			RequestID: fmt.Sprintf("fleet-0123456789abcdef-%d-1", i), TransferID: fmt.Sprintf("%016x", i),
			ServedBy: fmt.Sprintf("edge-%05d.eu-west", i/3), ServerAddr: fmt.Sprintf("10.0.%d.%d:7070", (i/3)>>8&255, i/3&255),
			Runner: fmt.Sprintf("edge-%05d.eu-west", i), RunnerAddr: fmt.Sprintf("10.%d.%d.%d:7070", i>>16, (i>>8)&255, i&255),
			SHA256: strings.Repeat("ab", 32), BytesDone: 1 << 30, BytesTotal: 1 << 30, Started: now, Finished: now,
		}
	}
	j := newJob(jobRecord{ID: "0123456789abcdef", Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY,
		Source: Agent{Name: "origin", Address: "10.0.0.1:7070"}, SourcePath: "release/app.tar", DestPath: "releases/",
		State: ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING, Hosts: n}, hosts)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perHost := float64(after.HeapAlloc-before.HeapAlloc) / n
	snap := j.snapshot(true)
	snapPerHost := float64(proto.Size(snap)) / n
	rec := float64(len(marshal(hosts[0])))
	t.Logf("%d hosts: %.0f B of memory per host, %.0f B per host in a snapshot (%.1f MiB), %.0f B stored per host",
		n, perHost, snapPerHost, float64(proto.Size(snap))/(1<<20), rec)
	if perHost > 1024 {
		t.Errorf("memory per host %.0f B; docs/fleet.md says under 1 KiB", perHost)
	}
	if snapPerHost > 300 {
		t.Errorf("snapshot per host %.0f B; docs/fleet.md says under 300 B", snapPerHost)
	}
	runtime.KeepAlive(j)
}

// TestScheduleScale: one scheduling pass over 10,000 hosts (half of them holders) picks at most
// the concurrency, never more than fanout per holder, and takes well under the poll interval.
func TestScheduleScale(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 10000
	hosts := make([]*hostRecord, n)
	for i := range hosts {
		hosts[i] = &hostRecord{Name: fmt.Sprintf("h%d", i), Address: fmt.Sprintf("10.0.%d.%d:7070", i>>8, i&255),
			State: ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING, Wave: 2}
		if i%2 == 0 {
			hosts[i].State = ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED
		}
	}
	j := newJob(jobRecord{ID: "x", Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: Agent{Name: "src", Address: "10.1.0.1:7070"},
		Strategy: ferryv1.FleetStrategy_FLEET_STRATEGY_TREE, Fanout: 3, Concurrency: 1024, MaxAttempts: 3, Hosts: n}, hosts)
	for round := 0; round < 3; round++ {
		start := time.Now()
		picked := c.schedule(j)
		took := time.Since(start)
		load := map[string]int{}
		running := 0
		for _, h := range j.hosts {
			if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING {
				running++
				load[h.ServerAddr]++
			}
		}
		for addr, l := range load {
			if l > 3 {
				t.Fatalf("%s serves %d at once; fanout is 3", addr, l)
			}
		}
		if running > 1024 || (round == 0 && len(picked) != 1024) {
			t.Fatalf("round %d: picked %d, running %d; want 1024", round, len(picked), running)
		}
		if took > 200*time.Millisecond {
			t.Errorf("round %d: a scheduling pass took %s", round, took)
		}
		t.Logf("round %d: picked %d in %s", round, len(picked), took)
	}
	if j.rec.SourceCopies != 0 {
		t.Errorf("the source served %d while relays were free", j.rec.SourceCopies)
	}
}
