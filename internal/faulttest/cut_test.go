package faulttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
)

// cut drops every packet in and out of h except on loopback (an nftables table of its own),
// as a pulled cable would; the returned function restores the link.
func cut(t *testing.T, h *testbed.Host) (restore func()) {
	t.Helper()
	rules := `table inet ferry_cut {
	chain in { type filter hook input priority -10; policy accept; iifname != "lo" drop; }
	chain out { type filter hook output priority -10; policy accept; oifname != "lo" drop; }
}
`
	f := filepath.Join(t.TempDir(), "cut.nft")
	must(t, os.WriteFile(f, []byte(rules), 0o644))
	if out, err := h.Exec(context.Background(), "nft", "-f", f); err != nil {
		t.Fatalf("cut: %v\n%s", err, out)
	}
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		if out, err := h.Exec(context.Background(), "nft", "delete", "table", "inet", "ferry_cut"); err != nil {
			t.Errorf("restore the link: %v\n%s", err, out)
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestLinkCut: agents A and B in two namespaces joined by a veth link; mid-transfer the link is
// cut (every packet dropped on B's side) for 10 s or for 90 s, then restored. Both directions:
// A pulls from B (download) and A pushes to B (upload). The transfer must complete with the
// source's SHA-256, resuming the part file. The four cases run in parallel.
//
// Flags: the 10 s cuts run with --stall-timeout 5s so that the cut is detected and the resume
// path is exercised (with the default 60 s, TCP rides out a 10 s cut and nothing is retried).
// The 90 s cuts run with the defaults (--stall-timeout 60s, --retries 5): the stall is detected
// after 60 s; the next attempt's grant request to B then waits about 20 s for a connection that
// cannot open (gRPC's dial timeout), so the retries outlast the cut with room to spare.
func TestLinkCut(t *testing.T) {
	const size = 64 << 20
	for _, c := range []struct {
		name   string
		upload bool
		down   time.Duration
		flags  []string
	}{
		{"download_10s", false, 10 * time.Second, []string{"--stall-timeout", "5s"}},
		{"upload_10s", true, 10 * time.Second, []string{"--stall-timeout", "5s"}},
		{"download_90s", false, 90 * time.Second, nil},
		{"upload_90s", true, 90 * time.Second, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, 40)
			b := startAgent(t, p.b, p.addrB, "", c.flags...)
			a := startAgent(t, p.a, p.addrA, "", c.flags...)
			var (
				id, finalPath, partDir, sha string
			)
			if c.upload {
				sha = writeRandom(t, filepath.Join(a.root, "up.bin"), size)
				finalPath, partDir = filepath.Join(b.root, "in", "up.bin"), filepath.Join(b.root, "in")
				must(t, os.MkdirAll(partDir, 0o755))
				id = a.startCopy("up.bin", b.url("in/up.bin"), "--mode", "passive").GetId()
			} else {
				sha = writeRandom(t, filepath.Join(b.root, "down.bin"), size)
				finalPath, partDir = filepath.Join(a.root, "in", "down.bin"), filepath.Join(a.root, "in")
				id = a.startCopy(b.url("down.bin"), "in/down.bin", "--mode", "passive").GetId()
			}
			w := watchFinal(t, finalPath, size)
			a.waitBytes(id, size*3/10, time.Minute)

			restore := cut(t, p.b)
			cutAt := time.Now()
			time.Sleep(c.down)
			held := partSize(partDir)
			restore()
			restoredAt := time.Now()
			a.waitFinal(id, 3*time.Minute)
			took := time.Since(restoredAt)
			got := a.get(id)
			t.Logf("ferryctl transfers get: %s", brief(got))
			mustSucceed(t, got, sha)
			w.check(t, sha)
			if parts := partFiles(partDir); len(parts) > 0 {
				t.Errorf("part files left after success: %v", parts)
			}
			figure(t, "link cut %v at %.0f%%: detected in %s; done %v after restore; attempts %d; %s",
				c.down, 100*float64(held)/size, a.detection(id, cutAt), took.Round(100*time.Millisecond),
				got.GetAttempt(), resent(held, got.GetBytesResumed(), size))
			t.Logf("failed attempts: %s", fmtFailures(a.failures(id), cutAt))
		})
	}
}

func fmtFailures(fs []attemptFailure, t0 time.Time) string {
	s := ""
	for _, f := range fs {
		s += fmt.Sprintf("\n  +%v attempt %d: %s", f.at.Sub(t0).Round(10*time.Millisecond), f.attempt, excerpt(f.err, 160))
	}
	if s == "" {
		return "none"
	}
	return s
}
