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
