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

// TestOverhead measures what one call to a plugin costs the agent (a process that does
// nothing: the round trip over go-plugin's gRPC with mTLS, the shims, the timeout and, for
// hooks, the ordered queue) and prints the median and 90th percentile with -v.
func TestOverhead(t *testing.T) {
	h, err := pluginhost.New(pluginhost.Config{Plugins: []pluginhost.Spec{{Path: bin(t, "noop")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	auth, hooks := h.Authenticators()[0], h.Hooks()
	login := ftpserver.Login{User: "u", Password: "p", Remote: netip.MustParseAddrPort("127.0.0.1:5000")}
	s := snapshot()
	ctx := context.Background()
	const n = 1000
	measure := func(name string, f func() error) {
		d := make([]time.Duration, n)
		for i := range d {
			start := time.Now()
			if err := f(); err != nil {
				t.Fatalf("%s call %d: %v", name, i, err)
			}
			d[i] = time.Since(start)
		}
		slices.Sort(d)
		t.Logf("%-28s median %6.1f µs   p90 %6.1f µs   (%d calls)", name,
			float64(d[n/2].Nanoseconds())/1e3, float64(d[n*9/10].Nanoseconds())/1e3, n)
	}
	measure("auth plugin Authenticate", func() error { _, err := auth.Authenticate(ctx, login); return err })
	measure("hook plugin BeforePublish", func() error { return hooks.BeforePublish(ctx, s, "x") })
}

// BenchmarkCopyHook copies 256 MiB from one agent to another, without a hook and with
// hook-exec running a command (/bin/true) for every event and check, in the same run:
//
//	go test -run '^$' -bench CopyHook -benchtime 3x ./agent/pluginhost/
func BenchmarkCopyHook(b *testing.B) {
	const size = 256 << 20
	src := testagent.Start(b)
	writeFile(b, filepath.Join(src.Root, "big.bin"), size)
	trueCmd := "/bin/true"
	for _, c := range []struct {
		name  string
		specs []pluginhost.Spec
	}{
		{"hook-off", nil},
		{"hook-exec-on", []pluginhost.Spec{{Path: bin(b, "hook-exec"), Args: []string{"--", trueCmd}}}},
		{"hook-noop-on", []pluginhost.Spec{{Path: bin(b, "noop")}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			dst := testagent.Start(b, func(cfg *daemon.Config) { cfg.Plugins = c.specs })
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				final := runTransfer(b, dst, src.URL("big.bin"), "big.bin")
				if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
					b.Fatalf("%v: %s", final.GetState(), final.GetError())
				}
				b.StopTimer()
				os.Remove(filepath.Join(dst.Root, "big.bin"))
				b.StartTimer()
			}
		})
	}
}
