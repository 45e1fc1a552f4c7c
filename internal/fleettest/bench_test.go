package fleettest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

var (
	benchOn  = flag.Bool("fleet.bench", false, "run TestFleetBench (make bench-fleet): wall time and source egress against N")
	benchNs  = flag.String("fleet.bench.n", "5,10,20,40", "receiving agents per run, comma-separated")
	benchMiB = flag.Int64("fleet.bench.mib", 200, "file size in MiB")
	benchCap = flag.Int("fleet.bench.uplink", 0, "MB/s each agent may send (nftables, per address); 0: loopback as is")
)

// TestFleetBench pushes one file from a source to N agents with direct and with tree, for each
// N, and prints wall time and the source's egress (nftables counter) for both, with the ratios
// direct/tree measured in the same run. Off unless -fleet.bench (make bench-fleet).
func TestFleetBench(t *testing.T) {
	if !*benchOn {
		t.Skip("a benchmark: run with -fleet.bench (make bench-fleet)")
	}
	var ns []int
	for _, s := range strings.Split(*benchNs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			t.Fatalf("-fleet.bench.n: %q", s)
		}
		ns = append(ns, n)
	}
	size := *benchMiB << 20
	type row struct {
		n                int
		dWall, tWall     time.Duration
		dEgress, tEgress int64
		dCopies, tCopies int32
	}
	var rows []row
	for _, n := range ns {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			srcHost := uniqueLoopback()
			hosts := []string{srcHost}
			if *benchCap > 0 { // every agent on its own address, so each can be capped
				for len(hosts) < n+1 {
					if h := uniqueLoopback(); !slices.Contains(hosts, h) {
						hosts = append(hosts, h)
					}
				}
			}
			nodes := startFleet(t, n+1, hosts...)
			eg := newEgress(t, srcHost)
			if *benchCap > 0 && !shapeEach(t, hosts, *benchCap<<20) {
				t.Skip("-fleet.bench.uplink needs nft (root)")
			}
			sum := writeRandom(t, nodes[0].agent().Root, "release/app.bin", size)
			limit := 10*time.Minute + time.Duration(n)*time.Duration(*benchMiB)*20*time.Millisecond
			d := runCopy(t, nodes, eg, "release/app.bin", sum, ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT, "direct/", limit)
			for _, nd := range nodes[1:] { // keep the disk free for the next run
				os.RemoveAll(filepath.Join(nd.agent().Root, "direct"))
			}
			tr := runCopy(t, nodes, eg, "release/app.bin", sum, ferryv1.FleetStrategy_FLEET_STRATEGY_TREE, "tree/", limit)
			for _, nd := range nodes[1:] {
				os.RemoveAll(filepath.Join(nd.agent().Root, "tree"))
			}
			rows = append(rows, row{n, d.wall, tr.wall, d.egress, tr.egress, d.copies, tr.copies})
		})
	}
	var b strings.Builder
	uplink := "as is"
	if *benchCap > 0 {
		uplink = fmt.Sprintf("each agent's uplink capped at %d MiB/s", *benchCap)
	}
	fmt.Fprintf(&b, "fleet fan-out, %d MiB file, loopback (%s), %d CPU(s)\n", *benchMiB, uplink, runtime.NumCPU())
	fmt.Fprintf(&b, "%6s  %10s %12s %7s  %10s %12s %7s  %8s %9s\n", "N", "direct s", "egress MiB", "copies", "tree s", "egress MiB", "copies", "wall d/t", "egress d/t")
	for _, r := range rows {
		fmt.Fprintf(&b, "%6d  %10.1f %12.0f %7d  %10.1f %12.0f %7d  %8.2f %9.1f\n", r.n,
			r.dWall.Seconds(), float64(r.dEgress)/(1<<20), r.dCopies, r.tWall.Seconds(), float64(r.tEgress)/(1<<20), r.tCopies,
			r.dWall.Seconds()/r.tWall.Seconds(), float64(r.dEgress)/float64(max(r.tEgress, 1)))
	}
	fmt.Print(b.String())
}
