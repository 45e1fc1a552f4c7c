package ftpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
	"github.com/ferry-dev/ferry/agent/treestream"
)

// dataDialer dials the control connection, then treats data connections as fail says: nil
// dials, else the error after the delay (a refused port at once, a dropped SYN after the
// context ends).
type dataDialer struct {
	dials atomic.Int32
	fail  error
	drop  bool
}

func (d *dataDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.dials.Add(1) > 1 {
		if d.drop {
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
		}
		if d.fail != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: d.fail}
		}
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func treeClient(t *testing.T, ts *testServer, d ftpclient.ContextDialer) *ftpclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ftpclient.Dial(ctx, ftpclient.Config{Addr: ts.Addr().String(), User: testUser, Password: testPass,
		Dialer: d, DataTimeout: time.Second, ReplyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !c.HasTree() {
		t.Fatal("no XTREE in FEAT")
	}
	return c
}

// TestStatTree: MLST, EPSV and XTREE RETR in one flight. A directory's stream arrives whole; a
// file is refused as a tree (no transfer aborted) and the same session then retrieves it; a
// missing path fails as MLST does and the session goes on.
func TestStatTree(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	want := writeRandom(t, ts.root, "t/sub/f.bin", 5000)
	writeRandom(t, ts.root, "t/g.bin", 10)
	c := treeClient(t, ts, &net.Dialer{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	e, rc, err := c.StatTree(ctx, "t")
	if err != nil || !e.IsDir || rc == nil {
		t.Fatalf("StatTree(dir): %+v, stream %v, %v", e, rc != nil, err)
	}
	dst, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	res, err := treestream.Receive(rc, dst, "in", treestream.Options{PartName: func(f string) string { return storage.PartName(f, "k") }})
	if err != nil || res.Files != 2 {
		t.Fatalf("receive: %d files, %v", res.Files, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("close after the whole stream: %v", err)
	}
	if got := fileSHA256(t, filepath.Join(dst.Dir(), "in/sub/f.bin")); got != want {
		t.Errorf("sub/f.bin: sha256 %s, want %s", got, want)
	}

	e, rc, err = c.StatTree(ctx, "t/sub/f.bin")
	if err != nil || e.IsDir || e.Size != 5000 || rc != nil {
		t.Fatalf("StatTree(file): %+v, stream %v, %v", e, rc != nil, err)
	}
	r, err := c.Retr(ctx, "t/sub/f.bin", 0)
	if err != nil {
		t.Fatalf("Retr after a refused tree: %v", err)
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || sha256Hex(b) != want {
		t.Fatalf("Retr: %v, match %v", err, sha256Hex(b) == want)
	}

	_, rc, err = c.StatTree(ctx, "nothing")
	var re *ftpclient.ReplyError
	if !errors.As(err, &re) || re.Code != 550 || rc != nil {
		t.Fatalf("StatTree(missing): %v, want 550", err)
	}
	if _, err := c.Stat(ctx, "t/g.bin"); err != nil {
		t.Fatalf("session after a missing source: %v", err)
	}
}

// TestTreeEagerDataFailure: with the data dial under way while XTREE is sent, a data port
// that refuses or drops the connection fails the stream at once (refused) or after the data
// timeout (dropped), with a DataConnError (auto mode's cue), not after the reply timeout.
func TestTreeEagerDataFailure(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	writeRandom(t, ts.root, "t/f.bin", 10)
	for _, tc := range []struct {
		name  string
		d     *dataDialer
		limit time.Duration
	}{
		{"refused", &dataDialer{fail: syscall.ECONNREFUSED}, 3 * time.Second},
		{"dropped", &dataDialer{drop: true}, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := treeClient(t, ts, tc.d)
			start := time.Now()
			_, err := c.TreeRetr(context.Background(), "t")
			var de *ftpclient.DataConnError
			if !errors.As(err, &de) {
				t.Fatalf("TreeRetr: %v, want a DataConnError", err)
			}
			if took := time.Since(start); took > tc.limit {
				t.Errorf("failed after %v; want within %v", took, tc.limit)
			}
		})
	}
}

// TestTreeSel: XTREE SEL makes the next XTREE RETR of that directory send the selected files
// alone (and every directory); it is used once, and only for its own directory.
func TestTreeSel(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, rel := range []string{"t/a", "t/sub/b", "t/sub/c", "u/x"} {
		writeRandom(t, ts.root, rel, 100)
	}
	c := treeClient(t, ts, &net.Dialer{})
	if !c.HasTreeSel() {
		t.Fatal("FEAT does not offer XTREE SEL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	files := func(dir string) []string {
		t.Helper()
		r, err := c.TreeRetr(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := storage.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		var got []string
		_, err = treestream.Receive(r, dst, "in", treestream.Options{PartName: func(f string) string { return storage.PartName(f, "k") },
			Published: func(rel string, _ int64) { got = append(got, rel) }})
		io.Copy(io.Discard, r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dst.Dir(), "in/sub")); err != nil {
			t.Errorf("directory sub not sent: %v", err)
		}
		return got
	}
	if err := c.TreeSel(ctx, "t", []string{"sub/c", "not/there"}); err != nil {
		t.Fatal(err)
	}
	if got := files("t"); len(got) != 1 || got[0] != "sub/c" {
		t.Errorf("after SEL: %q, want [sub/c]", got)
	}
	if got := files("t"); len(got) != 3 {
		t.Errorf("second RETR: %q, want the whole tree (a selection is used once)", got)
	}
	if err := c.TreeSel(ctx, "u", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got := files("t"); len(got) != 3 {
		t.Errorf("RETR t after SEL u: %q, want the whole tree", got)
	}
}
