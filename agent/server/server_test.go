package server_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

var modes = []struct {
	name string
	mode ferryv1.TransferMode
}{
	{"passive", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE},
	{"active", ferryv1.TransferMode_TRANSFER_MODE_ACTIVE},
}

// writeRandom creates a file of n random bytes and returns its SHA-256.
func writeRandom(t *testing.T, path string, n int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open result: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// run starts a transfer on a, watches it to the end and returns every snapshot seen.
func run(t *testing.T, a *testagent.Agent, src, dst string, mode ferryv1.TransferMode) []*ferryv1.Transfer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: src, Destination: dst, Mode: mode})
	if err != nil {
		t.Fatalf("StartTransfer(%s, %s): %v", src, dst, err)
	}
	return watch(t, ctx, a, resp.GetTransfer().GetId())
}

func watch(t *testing.T, ctx context.Context, a *testagent.Agent, id string) []*ferryv1.Transfer {
	t.Helper()
	stream, err := a.Client.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: id})
	if err != nil {
		t.Fatalf("WatchTransfer: %v", err)
	}
	var seen []*ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("watch %s: %v", id, err)
		}
		seen = append(seen, m.GetTransfer())
	}
	if len(seen) == 0 {
		t.Fatal("watch stream ended without a snapshot")
	}
	return seen
}

// checkProgress asserts the stream's invariants: bytes never go back, the last snapshot is
// final and succeeded with every byte and file counted.
func checkProgress(t *testing.T, seen []*ferryv1.Transfer, size int64, files int64) *ferryv1.Transfer {
	t.Helper()
	var last int64
	for i, s := range seen {
		if b := s.GetProgress().GetBytesDone(); b < last {
			t.Errorf("snapshot %d: bytes_done went back from %d to %d", i, last, b)
		} else {
			last = b
		}
	}
	final := seen[len(seen)-1]
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("final state %v, error %q", final.GetState(), final.GetError())
	}
	p := final.GetProgress()
	if p.GetBytesDone() != size || p.GetBytesTotal() != size {
		t.Errorf("final bytes %d/%d, want %d", p.GetBytesDone(), p.GetBytesTotal(), size)
	}
	if p.GetFilesDone() != files || p.GetFilesTotal() != files {
		t.Errorf("final files %d/%d, want %d", p.GetFilesDone(), p.GetFilesTotal(), files)
	}
	if final.GetFinishedAt() == nil || final.GetStartedAt() == nil {
		t.Errorf("final snapshot lacks timestamps: %v", final)
	}
	return final
}

func TestFileBetweenAgents(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	const size = 8 << 20
	want := writeRandom(t, filepath.Join(b.Root, "src/big.bin"), size)
	writeRandom(t, filepath.Join(a.Root, "up/small.bin"), 1)
	upWant := writeRandom(t, filepath.Join(a.Root, "up/big.bin"), size)
	ftpB := fmt.Sprintf("ftp://%s:%s@%s", testagent.User, testagent.Password, b.FTP)
	for _, m := range modes {
		cases := []struct {
			name, src, dst string
			check          string // file that must hold the content
			sha            string
		}{
			{"download agent", b.URL("src/big.bin"), "in/" + m.name + "/a.bin", filepath.Join(a.Root, "in", m.name, "a.bin"), want},
			{"download ftp", ftpB + "/src/big.bin", "in/" + m.name + "/", filepath.Join(a.Root, "in", m.name, "big.bin"), want},
			{"upload agent", "up/big.bin", b.URL("got/" + m.name + "/u.bin"), filepath.Join(b.Root, "got", m.name, "u.bin"), upWant},
			{"upload ftp", "up/big.bin", ftpB + "/got/" + m.name + "/f.bin", filepath.Join(b.Root, "got", m.name, "f.bin"), upWant},
		}
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				seen := run(t, a, c.src, c.dst, m.mode)
				final := checkProgress(t, seen, size, 1)
				if got := fileSHA(t, c.check); got != c.sha {
					t.Errorf("sha256 of %s = %s, want %s", c.check, got, c.sha)
				}
				if final.GetSha256() != c.sha {
					t.Errorf("reported sha256 %s, want %s", final.GetSha256(), c.sha)
				}
				if !final.GetVerified() {
					t.Errorf("transfer not verified by the peer's HASH")
				}
				if final.GetMode() != m.mode {
					t.Errorf("mode %v, want %v", final.GetMode(), m.mode)
				}
				if strings.Contains(final.GetSource()+final.GetDestination(), testagent.Password) {
					t.Errorf("password shown in transfer: %s -> %s", final.GetSource(), final.GetDestination())
				}
				parts, _ := filepath.Glob(filepath.Join(filepath.Dir(c.check), ".*.ferry-part"))
				if len(parts) > 0 {
					t.Errorf("part files left: %v", parts)
				}
			})
		}
	}
}

// makeTree writes a small tree and returns relative path -> sha256 and the total size.
func makeTree(t *testing.T, dir string) (map[string]string, int64) {
	files := map[string]int64{"a.bin": 300 << 10, "sub/b.bin": 1 << 20, "sub/deeper/c.bin": 7, "empty.txt": 0}
	out := map[string]string{}
	var total int64
	for rel, n := range files {
		out[rel] = writeRandom(t, filepath.Join(dir, rel), n)
		total += n
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return out, total
}

func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	for rel, sha := range want {
		if got := fileSHA(t, filepath.Join(dir, rel)); got != sha {
			t.Errorf("%s: sha256 %s, want %s", rel, got, sha)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "emptydir")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not copied: %v", err)
	}
}

func TestTreeBetweenAgents(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	wantB, sizeB := makeTree(t, filepath.Join(b.Root, "tree"))
	wantA, sizeA := makeTree(t, filepath.Join(a.Root, "mine"))
	for _, m := range modes {
		t.Run(m.name+"/download", func(t *testing.T) {
			seen := run(t, a, b.URL("tree/"), "dl-"+m.name, m.mode)
			checkProgress(t, seen, sizeB, int64(len(wantB)))
			checkTree(t, filepath.Join(a.Root, "dl-"+m.name), wantB)
		})
		t.Run(m.name+"/upload", func(t *testing.T) {
			dst := fmt.Sprintf("ftp://%s:%s@%s/ul-%s", testagent.User, testagent.Password, b.FTP, m.name)
			seen := run(t, a, "mine/", dst, m.mode)
			checkProgress(t, seen, sizeA, int64(len(wantA)))
			checkTree(t, filepath.Join(b.Root, "ul-"+m.name), wantA)
		})
	}
}

func TestManyWatchersAndLateWatcher(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	const size = 64 << 20
	writeRandom(t, filepath.Join(b.Root, "w.bin"), size)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: b.URL("w.bin"), Destination: "w.bin"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTransfer().GetId()
	// A watcher that goes away at once must not disturb the transfer or the others.
	quitter, qcancel := context.WithCancel(ctx)
	if _, err := a.Client.WatchTransfer(quitter, &ferryv1.WatchTransferRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	qcancel()
	results := make(chan []*ferryv1.Transfer, 4)
	for i := 0; i < 4; i++ {
		go func() { results <- watch(t, ctx, a, id) }()
	}
	for i := 0; i < 4; i++ {
		checkProgress(t, <-results, size, 1)
	}
	// A watcher that arrives after the end gets the final snapshot and the stream ends.
	late := watch(t, ctx, a, id)
	if len(late) != 1 || late[0].GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("late watcher got %d snapshots, last %v", len(late), late[len(late)-1].GetState())
	}
	got, err := a.Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
	if err != nil || got.GetTransfer().GetProgress().GetBytesDone() != size {
		t.Fatalf("GetTransfer: %v %v", got, err)
	}
	list, err := a.Client.ListTransfers(ctx, &ferryv1.ListTransfersRequest{States: []ferryv1.TransferState{ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED}})
	if err != nil || len(list.GetTransfers()) != 1 || list.GetTransfers()[0].GetId() != id {
		t.Fatalf("ListTransfers: %v %v", list, err)
	}
	// Auto mode (the default) must record its choice.
	if tr := got.GetTransfer(); tr.GetMode() != ferryv1.TransferMode_TRANSFER_MODE_PASSIVE || tr.GetModeReason() == "" {
		t.Errorf("auto mode: mode %v reason %q", tr.GetMode(), tr.GetModeReason())
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	// A large sparse file: reading it is cheap, and the transfer lasts long enough to cancel.
	f, err := os.Create(filepath.Join(b.Root, "huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(a.Root, "up.bin"), make([]byte, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(a.Root, "up.bin"), 8<<30); err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		for _, dir := range []string{"download", "upload"} {
			t.Run(m.name+"/"+dir, func(t *testing.T) {
				src, dst, finalPath := b.URL("huge.bin"), "got/huge.bin", filepath.Join(a.Root, "got/huge.bin")
				if dir == "upload" {
					src, dst, finalPath = "up.bin", b.URL("got/up.bin"), filepath.Join(b.Root, "got/up.bin")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: src, Destination: dst, Mode: m.mode})
				if err != nil {
					t.Fatal(err)
				}
				id := resp.GetTransfer().GetId()
				stream, err := a.Client.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: id})
				if err != nil {
					t.Fatal(err)
				}
				for {
					s, err := stream.Recv()
					if err != nil {
						t.Fatalf("stream ended before any progress: %v", err)
					}
					if s.GetTransfer().GetProgress().GetBytesDone() > 0 {
						break
					}
				}
				start := time.Now()
				cr, err := a.Client.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: id})
				if err != nil {
					t.Fatal(err)
				}
				if st := cr.GetTransfer().GetState(); st != ferryv1.TransferState_TRANSFER_STATE_CANCELLED {
					t.Fatalf("state after cancel %v (%s)", st, cr.GetTransfer().GetError())
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("cancel took %v", d)
				}
				if _, err := os.Stat(finalPath); !os.IsNotExist(err) {
					t.Errorf("file at the final name after cancel: %v", err)
				}
				// The part file is removed too (best effort on the remote side, bounded).
				deadline := time.Now().Add(5 * time.Second)
				for {
					parts, _ := filepath.Glob(filepath.Join(filepath.Dir(finalPath), ".*.ferry-part"))
					if len(parts) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("part files left after cancel: %v", parts)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
	}
}

func TestBadRequests(t *testing.T) {
	a := testagent.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cases := []struct {
		name      string
		req       *ferryv1.StartTransferRequest
		wantField string
	}{
		{"empty source", &ferryv1.StartTransferRequest{Destination: "x"}, "source"},
		{"empty destination", &ferryv1.StartTransferRequest{Source: "agent://h:1/x"}, "destination"},
		{"escape root", &ferryv1.StartTransferRequest{Source: "agent://h:1/x", Destination: "../../etc/passwd"}, "destination"},
		{"escape peer root", &ferryv1.StartTransferRequest{Source: "agent://h:1/../x", Destination: "x"}, "source"},
		{"bad scheme", &ferryv1.StartTransferRequest{Source: "http://h/x", Destination: "x"}, "source"},
		{"both local", &ferryv1.StartTransferRequest{Source: "a", Destination: "b"}, "destination"},
		{"both remote", &ferryv1.StartTransferRequest{Source: "ftp://h/a", Destination: "agent://h:1/b"}, "destination"},
		{"bad mode", &ferryv1.StartTransferRequest{Source: "ftp://h/a", Destination: "b", Mode: 42}, "mode"},
		{"agent with password", &ferryv1.StartTransferRequest{Source: "agent://u:p@h:1/a", Destination: "b"}, "source"},
	}
	// A missing local source is not found (as a missing remote one), naming the field.
	_, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: "nope.bin", Destination: "ftp://h/x"})
	if status.Code(err) != codes.NotFound || !strings.HasPrefix(status.Convert(err).Message(), "source:") {
		t.Errorf("missing local source: %v, want NotFound naming source", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.Client.StartTransfer(ctx, c.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, c.wantField+":") {
				t.Errorf("message %q does not name field %q", msg, c.wantField)
			}
		})
	}
	if _, err := a.Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetTransfer unknown: %v", err)
	}
	if _, err := a.Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetTransfer empty id: %v", err)
	}
	if _, err := a.Client.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("CancelTransfer unknown: %v", err)
	}
	if _, err := a.Client.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "../x", Access: ferryv1.Access_ACCESS_READ}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GrantAccess escaping path: %v", err)
	}
	if _, err := a.Client.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GrantAccess without access: %v", err)
	}
}

func TestFailedTransferReportsCause(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	seen := run(t, a, b.URL("missing.bin"), "m.bin", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
	final := seen[len(seen)-1]
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), "missing.bin") {
		t.Fatalf("state %v error %q", final.GetState(), final.GetError())
	}
	if _, err := os.Stat(filepath.Join(a.Root, "m.bin")); !os.IsNotExist(err) {
		t.Errorf("file at final name after failure: %v", err)
	}
	bad := run(t, a, "ftp://ferry:wrong@"+b.FTP+"/x", "x.bin", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
	last := bad[len(bad)-1]
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || strings.Contains(last.GetError(), "wrong") {
		t.Fatalf("bad login: state %v error %q", last.GetState(), last.GetError())
	}
}

func TestListFiles(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	writeRandom(t, filepath.Join(b.Root, "d/one.bin"), 10)
	if err := os.MkdirAll(filepath.Join(b.Root, "d/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{b.URL("d"), "ftp://" + testagent.User + ":" + testagent.Password + "@" + b.FTP + "/d"} {
		resp, err := a.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: url})
		if err != nil {
			t.Fatalf("ListFiles(%s): %v", url, err)
		}
		got := map[string]bool{}
		for _, e := range resp.GetEntries() {
			got[e.GetName()] = e.GetIsDir()
			if e.GetName() == "one.bin" && e.GetSize() != 10 {
				t.Errorf("one.bin size %d", e.GetSize())
			}
		}
		if len(got) != 2 || got["one.bin"] || !got["sub"] {
			t.Errorf("ListFiles(%s) = %v", url, got)
		}
	}
	if _, err := a.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: b.URL("nope")}); status.Code(err) != codes.NotFound {
		t.Errorf("ListFiles missing: %v", err)
	}
}

// TestProgressIsRateLimited moves a tree of many small files: watchers must get a few snapshots a
// second at most, not one per file.
func TestProgressIsRateLimited(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	const files = 300
	for i := 0; i < files; i++ {
		writeRandom(t, filepath.Join(b.Root, "many", fmt.Sprintf("f%03d", i)), 100)
	}
	start := time.Now()
	seen := run(t, a, b.URL("many"), "many", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
	elapsed := time.Since(start)
	checkProgress(t, seen, files*100, files)
	// 4 ticks a second, plus the state changes (queued, running, final) and one tick of slack.
	limit := int(elapsed/(250*time.Millisecond)) + 5
	if len(seen) > limit {
		t.Errorf("%d snapshots in %v for %d files, want at most %d", len(seen), elapsed, files, limit)
	}
	t.Logf("%d files in %v: %d snapshots", files, elapsed, len(seen))
}

func TestDiagnoseAndReverseRequests(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, url := range []string{"local/path", "http://x/y", ""} {
		if _, err := a.Client.Diagnose(ctx, &ferryv1.DiagnoseRequest{Url: url}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Diagnose(%q): %v, want InvalidArgument", url, err)
		}
	}
	if _, err := a.Client.Diagnose(ctx, &ferryv1.DiagnoseRequest{Url: b.URL(""), Timeout: durationpb.New(-time.Second)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Diagnose with a negative timeout: %v", err)
	}
	d, err := a.Client.Diagnose(ctx, &ferryv1.DiagnoseRequest{Url: b.URL("")})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetSuggestedMode() != ferryv1.TransferMode_TRANSFER_MODE_PASSIVE || len(d.GetChecks()) != 5 || d.GetFtpAddress() != b.FTP {
		t.Errorf("Diagnose between loopback agents: %v", d)
	}
	good := &ferryv1.ReverseTransferRequest{Path: "x.bin", Direction: ferryv1.Direction_DIRECTION_DOWNLOAD, FtpPort: 21, User: "u", Password: "p", RemotePath: "x.bin"}
	bad := map[string]func(r *ferryv1.ReverseTransferRequest){
		"direction": func(r *ferryv1.ReverseTransferRequest) { r.Direction = 0 },
		"port":      func(r *ferryv1.ReverseTransferRequest) { r.FtpPort = 0 },
		"user":      func(r *ferryv1.ReverseTransferRequest) { r.User = "" },
		"escape":    func(r *ferryv1.ReverseTransferRequest) { r.Path = "../x" },
		"url":       func(r *ferryv1.ReverseTransferRequest) { r.Path = "ftp://h/x" },
		"remote":    func(r *ferryv1.ReverseTransferRequest) { r.RemotePath = "" },
	}
	for name, f := range bad {
		r := proto.Clone(good).(*ferryv1.ReverseTransferRequest)
		f(r)
		if _, err := a.Client.ReverseTransfer(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ReverseTransfer with bad %s: %v, want InvalidArgument", name, err)
		}
	}
	// A valid request starts a transfer from the caller's address (loopback here).
	resp, err := a.Client.ReverseTransfer(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if src := resp.GetTransfer().GetSource(); !strings.HasPrefix(src, "ftp://u:xxxxx@127.0.0.1:21/x.bin") {
		t.Errorf("reverse transfer source %q", src)
	}
}
