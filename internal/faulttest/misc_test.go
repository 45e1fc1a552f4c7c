package faulttest

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestTwoWritersOneDestination: while A pulls one.bin into in/x.bin, a second copy of two.bin
// to the same in/x.bin is refused at once (exit 1, the error names the first job's id); the
// final file is whole and is one.bin.
func TestTwoWritersOneDestination(t *testing.T) {
	const size = 32 << 20
	p := newPair(t, 100)
	b := startAgent(t, p.b, p.addrB, "")
	sha1 := writeRandom(t, filepath.Join(b.root, "one.bin"), size)
	writeRandom(t, filepath.Join(b.root, "two.bin"), size)
	a := startAgent(t, p.a, p.addrA, "")

	id := a.startCopy(b.url("one.bin"), "in/x.bin", "--mode", "passive").GetId()
	w := watchFinal(t, filepath.Join(a.root, "in", "x.bin"), size)
	a.waitBytes(id, size/10, time.Minute)
	began := time.Now()
	r := a.ctl(30*time.Second, "copy", b.url("two.bin"), "in/x.bin", "--mode", "passive")
	took := time.Since(began)
	t.Logf("second copy to the same destination: exit %d after %v:\n%s", r.code, took.Round(time.Millisecond), r.out)
	if r.code != 1 {
		t.Errorf("second copy to in/x.bin: exit %d, want 1", r.code)
	}
	if !strings.Contains(r.out, id) {
		t.Errorf("second copy's error does not name the first job %s:\n%s", id, r.out)
	}
	if took > 10*time.Second {
		t.Errorf("second copy refused after %v, want at once", took)
	}
	got := a.waitFinal(id, time.Minute)
	mustSucceed(t, got, sha1)
	w.check(t, sha1)
	list := a.ctl(10*time.Second, "transfers", "list", "-o", "json")
	if n := strings.Count(list.out, "two.bin"); n > 0 {
		t.Errorf("transfers list shows a job for two.bin, which was refused:\n%s", list.out)
	}
	figure(t, "second writer for one destination: refused in %v with exit %d", took.Round(time.Millisecond), r.code)
}

// TestRequestID: the same --request-id twice returns the same transfer, and so it does after a
// graceful restart and after a kill -9 of the agent.
func TestRequestID(t *testing.T) {
	const size = 1 << 20
	p := newPair(t, 0)
	b := startAgent(t, p.b, p.addrB, "")
	sha := writeRandom(t, filepath.Join(b.root, "f.bin"), size)
	a := startAgent(t, p.a, p.addrA, "")
	const rid = "nightly-2026-12-01"

	first := a.startCopy(b.url("f.bin"), "in/f.bin", "--request-id", rid, "--mode", "passive")
	second := a.startCopy(b.url("f.bin"), "in/f.bin", "--request-id", rid, "--mode", "passive")
	if second.GetId() != first.GetId() {
		t.Errorf("same request id twice: ids %s and %s, want the same", first.GetId(), second.GetId())
	}
	if second.GetRequestId() != rid {
		t.Errorf("request_id %q, want %q", second.GetRequestId(), rid)
	}
	mustSucceed(t, a.waitFinal(first.GetId(), time.Minute), sha)

	a.term()
	a.start()
	third := a.startCopy(b.url("f.bin"), "in/f.bin", "--request-id", rid, "--mode", "passive")
	if third.GetId() != first.GetId() {
		t.Errorf("same request id after a restart (SIGTERM): id %s, want %s", third.GetId(), first.GetId())
	}

	a.kill9()
	a.start()
	fourth := a.startCopy(b.url("f.bin"), "in/f.bin", "--request-id", rid, "--mode", "passive")
	if fourth.GetId() != first.GetId() {
		t.Errorf("same request id after a kill -9 and restart: id %s, want %s", fourth.GetId(), first.GetId())
	}
	if got := a.get(first.GetId()); got.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Errorf("the transfer after the restarts: %s, want SUCCEEDED", brief(got))
	}
	list := a.ctl(10*time.Second, "transfers", "list", "-o", "json")
	if n := strings.Count(list.out, "\"request_id\":\""+rid+"\""); n != 1 {
		t.Errorf("transfers list shows %d transfers with request id %s, want 1:\n%s", n, rid, list.out)
	}
}

// TestLongName: a file with a 250-byte name copied both ways between agents (its part name must
// stay within the 255-byte limit).
func TestLongName(t *testing.T) {
	const size = 4 << 20
	name := strings.Repeat("n", 246) + ".bin"
	if len(name) != 250 {
		t.Fatalf("name is %d bytes", len(name))
	}
	p := newPair(t, 0)
	b := startAgent(t, p.b, p.addrB, "")
	a := startAgent(t, p.a, p.addrA, "")

	t.Run("download", func(t *testing.T) {
		sha := writeRandom(t, filepath.Join(b.root, name), size)
		w := watchFinal(t, filepath.Join(a.root, "in", name), size)
		id := a.startCopy(b.url(name), "in/"+name, "--mode", "passive").GetId()
		got := a.waitFinal(id, time.Minute)
		mustSucceed(t, got, sha)
		w.check(t, sha)
	})
	t.Run("upload", func(t *testing.T) {
		sha := writeRandom(t, filepath.Join(a.root, "out", name), size)
		must(t, os.MkdirAll(filepath.Join(b.root, "up"), 0o755))
		w := watchFinal(t, filepath.Join(b.root, "up", name), size)
		id := a.startCopy("out/"+name, b.url("up/"+name), "--mode", "passive").GetId()
		got := a.waitFinal(id, time.Minute)
		mustSucceed(t, got, sha)
		w.check(t, sha)
	})
}

// TestHostileServer: a copy from a hostile FTP server (hostileServer, written for the test) with
// an endless listing, an endless reply line or an endless multi-line reply must fail with a clear
// error and without retries (the client's caps make these permanent errors: ErrListTooLarge,
// ErrReplyTooLong), the agent's RSS must stay under 300 MB throughout, and the agent must stay
// healthy: it answers `agent info` and completes a real transfer afterwards. Each case has a
// fresh agent, so that one case's heap does not count against the next. The agents run with
// --retries 1: a permanent error wrongly retried shows as attempt 2 without 31 s of backoff.
func TestHostileServer(t *testing.T) {
	const maxRSS = 300 << 20
	for _, c := range []struct {
		name  string
		kind  hostileKind
		src   string
		wants []string // the error says one of these
	}{
		{"endless_listing", endlessListing, "dir/", []string{"listing too large"}},
		{"endless_reply_line", endlessLine, "f.bin", []string{"reply too long"}},
		{"endless_multiline_reply", endlessMultiline, "f.bin", []string{"reply too long"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bed := newBed(t)
			h := bed.Host("h")
			a := startAgent(t, h, netip.MustParseAddr("127.0.0.1"), "", "--retries", "1")
			sha := writeRandom(t, filepath.Join(a.root, "small.bin"), 1<<20)
			const addr = "127.0.0.1:2200"
			srv := startHostile(t, h, addr, c.kind)
			src := "ftp://u:p@" + addr + "/" + c.src
			dst := "in/" + c.name
			if strings.HasSuffix(c.src, "/") {
				dst += "/"
			}

			idle := a.rss()
			var peak int64
			var mu sync.Mutex
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if r := a.rss(); r > 0 {
						mu.Lock()
						peak = max(peak, r)
						mu.Unlock()
					}
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			began := time.Now()
			id := a.startCopy(src, dst, "--mode", "passive").GetId()
			got := a.waitFinal(id, 2*time.Minute)
			took := time.Since(began)
			close(stop)
			wg.Wait()
			t.Logf("%s: %s", c.name, brief(got))
			if got.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED {
				t.Errorf("copy from a hostile server: %s, want FAILED", brief(got))
			}
			clear := false
			for _, w := range c.wants {
				clear = clear || strings.Contains(strings.ToLower(got.GetError()), w)
			}
			if !clear {
				t.Errorf("error %q does not name the cause (want one of %q)", got.GetError(), c.wants)
			}
			if got.GetAttempt() != 1 {
				t.Errorf("attempt = %d (error_code %q): a hostile server's %q was retried, want a permanent failure at once",
					got.GetAttempt(), got.GetErrorCode(), c.wants[0])
			}
			if peak > maxRSS {
				t.Errorf("agent RSS peaked at %s (idle %s), want under %s", mib(peak), mib(idle), mib(maxRSS))
			}
			if res := a.ctl(10*time.Second, "agent", "info"); res.code != 0 {
				t.Errorf("agent info after the hostile server: exit %d\n%s", res.code, res.out)
			}
			// A real transfer through the agent's own FTP server still works.
			ok := a.startCopy(a.ftpURL("small.bin"), "after.bin", "--mode", "passive").GetId()
			mustSucceed(t, a.waitFinal(ok, time.Minute), sha)
			figure(t, "hostile server: failed after %v, attempts %d, error_code %q, server flooded %s, agent RSS idle %s peak %s; error %q",
				took.Round(10*time.Millisecond), got.GetAttempt(), got.GetErrorCode(), mib(srv.flooded()), mib(idle), mib(peak),
				excerpt(got.GetError(), 140))
		})
	}
}
