package pluginhost_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/pluginhost"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// BenchmarkPluginCall measures what one call to a plugin costs the agent (a process that does
// nothing: the round trip over go-plugin's gRPC with mTLS, the shims, the timeout and, for
// hooks, the ordered queue), and hook-exec running /bin/true, and reports the median and 90th
// percentile of the b.N calls in microseconds:
//
//	go test -run '^$' -bench PluginCall -benchtime 1000x ./agent/pluginhost/
func BenchmarkPluginCall(b *testing.B) {
	h, err := pluginhost.New(pluginhost.Config{Plugins: []pluginhost.Spec{{Path: bin(b, "noop")}}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	he, err := pluginhost.New(pluginhost.Config{Plugins: []pluginhost.Spec{{Path: bin(b, "hook-exec"), Args: []string{"--", "/bin/true"}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer he.Close()
	auth, hooks := h.Authenticators()[0], h.Hooks()
	login := ftpserver.Login{User: "u", Password: "p", Remote: netip.MustParseAddrPort("127.0.0.1:5000")}
	s := snapshot()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		f    func() error
	}{
		{"auth", func() error { _, err := auth.Authenticate(ctx, login); return err }},
		{"hook", func() error { return hooks.BeforePublish(ctx, s, "x") }},
		{"hook-exec", func() error { return he.Hooks().BeforePublish(ctx, s, "x") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := c.f(); err != nil {
					b.Fatalf("call %d: %v", i, err)
				}
				d = append(d, time.Since(start))
			}
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "median-µs")
			b.ReportMetric(float64(d[len(d)*9/10].Nanoseconds())/1e3, "p90-µs")
		})
	}
}

// BenchmarkCopyHook copies 256 MiB from one agent to another, without a hook, with hook-exec
// running a command (/bin/true) for every event and check, and with a hook that does nothing,
// interleaved in the same run (the machine's load drifts), and reports each one's MB/s (median
// of the b.N copies) and their ratio to no hook:
//
//	go test -run '^$' -bench CopyHook -benchtime 5x ./agent/pluginhost/
func BenchmarkCopyHook(b *testing.B) {
	const size = 256 << 20
	src := testagent.Start(b)
	writeFile(b, filepath.Join(src.Root, "big.bin"), size)
	variants := []struct {
		name  string
		specs []pluginhost.Spec
		dst   *testagent.Agent
		mbs   []float64
	}{
		{name: "off"},
		{name: "exec", specs: []pluginhost.Spec{{Path: bin(b, "hook-exec"), Args: []string{"--", "/bin/true"}}}},
		{name: "noop", specs: []pluginhost.Spec{{Path: bin(b, "noop")}}},
	}
	for i := range variants {
		v := &variants[i]
		v.dst = testagent.Start(b, func(cfg *daemon.Config) { cfg.Plugins = v.specs })
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range variants {
			v := &variants[j]
			start := time.Now()
			final := runTransfer(b, v.dst, src.URL("big.bin"), "big.bin")
			if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
				b.Fatalf("%s: %v: %s", v.name, final.GetState(), final.GetError())
			}
			v.mbs = append(v.mbs, size/1e6/time.Since(start).Seconds())
			os.Remove(filepath.Join(v.dst.Root, "big.bin"))
		}
	}
	b.StopTimer()
	median := func(x []float64) float64 { slices.Sort(x); return x[len(x)/2] }
	off := median(variants[0].mbs)
	for _, v := range variants {
		m := median(v.mbs)
		b.ReportMetric(m, "MB/s-hook-"+v.name)
		if v.name != "off" {
			b.ReportMetric(m/off, "ratio-"+v.name)
		}
	}
}
