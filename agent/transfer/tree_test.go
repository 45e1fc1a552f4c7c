package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/transfer"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Tree downloads between agents: the folded path (XTREE RETR with no listing first) and the
// two-step path (XTREE LIST, then XTREE RETR) that filters and comparisons still take.

// commandLog is an agent's debug log, kept to see which FTP commands it served.
type commandLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *commandLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many commands the agent served with this verb and an argument starting
// with argPrefix.
func (l *commandLog) count(cmd, argPrefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		_, rest, ok := strings.Cut(line, " cmd="+cmd+" arg=")
		if ok && strings.HasPrefix(strings.TrimPrefix(rest, `"`), argPrefix) {
			n++
		}
	}
	return n
}

// serving starts an agent whose FTP commands are logged.
func serving(t *testing.T) (*testagent.Agent, *commandLog) {
	l := &commandLog{}
	a := testagent.Start(t, func(c *daemon.Config) {
		c.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	return a, l
}

// treeFile is one file of a test tree.
type treeFile struct {
	body  []byte
	mode  fs.FileMode
	mtime time.Time
}

// makeTree writes a tree with nested and empty directories, an empty file, several modes and
// distinct modification times (to the nanosecond) under dir.
func makeTree(t *testing.T, dir string) map[string]treeFile {
	t.Helper()
	base := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	files := map[string]treeFile{}
	modes := []fs.FileMode{0o600, 0o640, 0o750, 0o755}
	for i, rel := range []string{"top.bin", "empty", "a/one", "a/b/two", "a/b/c/three", "a/b/c/d/four", "x y/ü 名.txt", "big"} {
		n := 1000 * i
		if rel == "empty" {
			n = 0
		}
		if rel == "big" {
			n = 3 << 20
		}
		body := make([]byte, n)
		rand.Read(body)
		f := treeFile{body: body, mode: modes[i%len(modes)], mtime: base.Add(time.Duration(i) * 90 * time.Minute)}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
		files[rel] = f
	}
	for _, d := range []string{"emptydir", "a/b/empty too"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// checkTree verifies that dir holds exactly want's files, with their bytes, modes and times,
// the empty directories, and no part file.
func checkTree(t *testing.T, dir string, want map[string]treeFile) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		w, ok := want[rel]
		if !ok {
			t.Errorf("unexpected file %q", rel)
			return nil
		}
		seen++
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, w.body) {
			t.Errorf("%s: %d bytes (%v), want %d", rel, len(got), err, len(w.body))
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != w.mode {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), w.mode)
		}
		if !fi.ModTime().Equal(w.mtime) {
			t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), w.mtime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Errorf("%d files, want %d", seen, len(want))
	}
	for _, d := range []string{"emptydir", "a/b/empty too"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("empty directory %q: %v", d, err)
		}
	}
}

func copyTree(t *testing.T, a *testagent.Agent, src, dst string, opts *ferryv1.TransferOptions) *ferryv1.Transfer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: src, Destination: dst,
		Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE, Options: opts})
	if err != nil {
		t.Fatalf("StartTransfer(%s, %s): %v", src, dst, err)
	}
	stream, err := a.Client.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: resp.GetTransfer().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var last *ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		last = m.GetTransfer()
	}
	if last == nil {
		t.Fatal("no snapshot")
	}
	return last
}

// TestTreeDownloadFolded: a plain tree download between agents takes one data connection, the
// stream's (no XTREE LIST), and keeps bytes, modes, times and empty directories; the totals
// come from the stream's header and the tree is verified.
func TestTreeDownloadFolded(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	b, log := serving(t)
	want := makeTree(t, filepath.Join(b.Root, "tree"))
	var bytesTotal int64
	for _, f := range want {
		bytesTotal += int64(len(f.body))
	}
	last := copyTree(t, a, b.URL("tree"), "in/", nil)
	p := last.GetProgress()
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || !last.GetVerified() ||
		p.GetFilesDone() != int64(len(want)) || p.GetFilesTotal() != int64(len(want)) || p.GetBytesTotal() != bytesTotal || p.GetBytesDone() != bytesTotal {
		t.Fatalf("%v %s verified=%v progress=%v; want %d files, %d bytes", last.GetState(), last.GetError(), last.GetVerified(), p, len(want), bytesTotal)
	}
	checkTree(t, filepath.Join(a.Root, "in/tree"), want)
	if n, m := log.count("XTREE", "LIST"), log.count("XTREE", "RETR"); n != 0 || m != 1 {
		t.Errorf("the serving agent saw %d XTREE LIST and %d XTREE RETR; want 0 and 1", n, m)
	}
	if n := log.count("ABOR", ""); n != 0 {
		t.Errorf("%d ABOR after a complete stream; want none", n)
	}
}

// TestTreeDownloadTwoStep: options that need the remote listing first (a filter; --update on a
// destination that exists) still list it (XTREE LIST), then stream; both do as asked.
func TestTreeDownloadTwoStep(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	b, log := serving(t)
	want := makeTree(t, filepath.Join(b.Root, "tree"))
	last := copyTree(t, a, b.URL("tree"), "ex/", &ferryv1.TransferOptions{Exclude: []string{"big", "c"}})
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("exclude: %v %s", last.GetState(), last.GetError())
	}
	for _, rel := range []string{"big", "a/b/c/three", "a/b/c/d/four"} {
		if _, err := os.Stat(filepath.Join(a.Root, "ex/tree", rel)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("excluded %s: %v", rel, err)
		}
	}
	if _, err := os.ReadFile(filepath.Join(a.Root, "ex/tree/a/one")); err != nil {
		t.Errorf("a/one: %v", err)
	}
	if n := log.count("XTREE", "LIST"); n != 1 {
		t.Errorf("exclude: %d XTREE LIST; want 1", n)
	}
	// --update into an existing destination compares with it: listed first.
	first := copyTree(t, a, b.URL("tree"), "up/", nil)
	if first.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("first copy: %v %s", first.GetState(), first.GetError())
	}
	last = copyTree(t, a, b.URL("tree"), "up/", &ferryv1.TransferOptions{Update: true, Sync: true})
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || last.GetFilesSkipped() != int64(len(want)) {
		t.Fatalf("sync --update: %v %s skipped %d, want %d", last.GetState(), last.GetError(), last.GetFilesSkipped(), len(want))
	}
	if n := log.count("XTREE", "LIST"); n != 2 {
		t.Errorf("after sync into an existing tree: %d XTREE LIST; want 2", n)
	}
	checkTree(t, filepath.Join(a.Root, "up/tree"), want)
	// The same options into a destination that does not exist yet: nothing to compare, folded.
	last = copyTree(t, a, b.URL("tree"), "new/", &ferryv1.TransferOptions{Update: true, Sync: true, Delete: true})
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || last.GetProgress().GetFilesDone() != int64(len(want)) {
		t.Fatalf("sync into a new destination: %v %s", last.GetState(), last.GetError())
	}
	if n := log.count("XTREE", "LIST"); n != 2 {
		t.Errorf("sync into a new destination listed the tree (%d XTREE LIST; want 2)", n)
	}
	checkTree(t, filepath.Join(a.Root, "new/tree"), want)
}

// failOnce vetoes one publication with a transient error: the attempt fails there, as if the
// stream had been cut after the files before it were published.
type failOnce struct {
	after int32 // files published before the failure
	seen  atomic.Int32
	fired atomic.Bool
}

func (f *failOnce) Observe(transfer.Event) {}

func (f *failOnce) BeforeStart(context.Context, transfer.Snapshot) error { return nil }

func (f *failOnce) BeforePublish(_ context.Context, _ transfer.Snapshot, path string) error {
	if f.seen.Add(1) > f.after && !f.fired.Swap(true) {
		return fmt.Errorf("publish %s: %w", path, io.ErrUnexpectedEOF)
	}
	return nil
}

// TestTreeDownloadFoldedResume: when a folded stream's attempt fails midway, the retry keeps
// the files already published (the checkpoint: not sent again, counted as resumed) and moves
// the rest; nothing partial is left, and the tree is whole.
func TestTreeDownloadFoldedResume(t *testing.T) {
	t.Parallel()
	gate := &failOnce{after: 5} // four, three, two, one and big (names in walk order)
	a := testagent.Start(t, func(c *daemon.Config) { c.Observers = append(c.Observers, gate) })
	b, log := serving(t)
	want := makeTree(t, filepath.Join(b.Root, "tree"))
	last := copyTree(t, a, b.URL("tree"), "in/", nil)
	p := last.GetProgress()
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || last.GetAttempt() != 2 {
		t.Fatalf("%v %s attempt %d; want success on attempt 2", last.GetState(), last.GetError(), last.GetAttempt())
	}
	if p.GetFilesDone() != int64(len(want)) || last.GetBytesResumed() == 0 {
		t.Errorf("files done %d (want %d), bytes resumed %d (want > 0)", p.GetFilesDone(), len(want), last.GetBytesResumed())
	}
	if last.GetVerified() {
		t.Errorf("verified, though 5 files were checked by the first attempt only")
	}
	checkTree(t, filepath.Join(a.Root, "in/tree"), want)
	// The retry lists the tree and asks for the files not yet published alone.
	if n, m, k := log.count("XTREE", "LIST"), log.count("XTREE", "RETR"), log.count("XTREE", "SEL"); n != 1 || m != 2 || k != 1 {
		t.Errorf("%d XTREE LIST, %d XTREE RETR, %d XTREE SEL; want 1, 2, 1", n, m, k)
	}
	log.mu.Lock()
	sent := grepLines(log.buf.String(), "tree stream sent")
	log.mu.Unlock()
	if !strings.Contains(sent, fmt.Sprintf("files=%d ", len(want)-5)) {
		t.Errorf("the retry was not sent the %d files left alone:\n%s", len(want)-5, sent)
	}
}

// TestFileDownloadAfterTreeAsk: a single file from an agent comes whole over the usual path.
// The peer's grant describes the source as a file, so the engine asks for no tree stream (nor
// MLST) at all; no transfer is aborted. (A peer whose grant says nothing is asked for the
// stream in the same flight as MLST and refuses it: ftpserver's TestStatTree.)
func TestFileDownloadAfterTreeAsk(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	b, log := serving(t)
	body := make([]byte, 100<<10)
	rand.Read(body)
	if err := os.WriteFile(filepath.Join(b.Root, "one.bin"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	last := copyTree(t, a, b.URL("one.bin"), "in/", nil)
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || !last.GetVerified() || last.GetAttempt() != 1 {
		t.Fatalf("%v %s verified=%v attempt=%d", last.GetState(), last.GetError(), last.GetVerified(), last.GetAttempt())
	}
	if got, err := os.ReadFile(filepath.Join(a.Root, "in/one.bin")); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("in/one.bin: %d bytes, %v", len(got), err)
	}
	if n, m, x, st := log.count("XTREE", "RETR"), log.count("RETR", "one.bin"), log.count("ABOR", ""), log.count("MLST", ""); n != 0 || m != 1 || x != 0 || st != 0 {
		t.Errorf("%d XTREE RETR, %d RETR, %d ABOR, %d MLST; want 0, 1, 0, 0", n, m, x, st)
	}
}

// TestTreeUploadSync: a sync up to an agent compares with the tree already there through one
// XTREE LIST (no MLSD per directory), then sends only what differs.
func TestTreeUploadSync(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	b, log := serving(t)
	want := makeTree(t, filepath.Join(a.Root, "tree"))
	first := copyTree(t, a, "tree", b.URL("up/"), nil)
	if first.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || !first.GetVerified() {
		t.Fatalf("upload: %v %s verified=%v", first.GetState(), first.GetError(), first.GetVerified())
	}
	checkTree(t, filepath.Join(b.Root, "up/tree"), want)
	changed := []byte("changed")
	if err := os.WriteFile(filepath.Join(a.Root, "tree/a/one"), changed, 0o600); err != nil {
		t.Fatal(err)
	}
	last := copyTree(t, a, "tree", b.URL("up/"), &ferryv1.TransferOptions{Sync: true})
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || last.GetProgress().GetFilesTotal() != 1 ||
		last.GetFilesSkipped() != int64(len(want)-1) {
		t.Fatalf("sync: %v %s files %d skipped %d; want 1 and %d", last.GetState(), last.GetError(),
			last.GetProgress().GetFilesTotal(), last.GetFilesSkipped(), len(want)-1)
	}
	if got, _ := os.ReadFile(filepath.Join(b.Root, "up/tree/a/one")); !bytes.Equal(got, changed) {
		t.Errorf("a/one on the agent: %q, want %q", got, changed)
	}
	if n, m := log.count("XTREE", "LIST"), log.count("MLSD", ""); n != 1 || m != 0 {
		t.Errorf("%d XTREE LIST and %d MLSD; want 1 and 0", n, m)
	}
}

// TestTreeDownloadSyncSelects: a sync down from an agent where one file changed sends that
// file alone (XTREE SEL, then XTREE RETR), not the whole tree to be dropped on receipt.
func TestTreeDownloadSyncSelects(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	b, log := serving(t)
	want := makeTree(t, filepath.Join(b.Root, "tree"))
	if first := copyTree(t, a, b.URL("tree"), "in/", nil); first.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("first copy: %v %s", first.GetState(), first.GetError())
	}
	changed := treeFile{body: []byte("changed on the agent"), mode: 0o640, mtime: time.Now().Add(time.Hour).Truncate(time.Second)}
	p := filepath.Join(b.Root, "tree/a/b/two")
	if err := os.WriteFile(p, changed.body, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, changed.mtime, changed.mtime); err != nil {
		t.Fatal(err)
	}
	want["a/b/two"] = changed
	last := copyTree(t, a, b.URL("tree"), "in/", &ferryv1.TransferOptions{Sync: true})
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || last.GetProgress().GetFilesTotal() != 1 {
		t.Fatalf("sync: %v %s files %d", last.GetState(), last.GetError(), last.GetProgress().GetFilesTotal())
	}
	checkTree(t, filepath.Join(a.Root, "in/tree"), want)
	if n := log.count("XTREE", "SEL"); n != 1 {
		t.Errorf("%d XTREE SEL; want 1", n)
	}
	log.mu.Lock()
	sent := log.buf.String()
	log.mu.Unlock()
	if !strings.Contains(sent, fmt.Sprintf("tree stream sent\" part=ftp dir=tree files=1 bytes=%d", len(changed.body))) {
		t.Errorf("the agent did not send the changed file alone:\n%s", grepLines(sent, "tree stream sent"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
