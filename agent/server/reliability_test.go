package server_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/transfer"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// fifoFeed makes path a FIFO and feeds it data in 64 KiB chunks, one every `every`, stopping
// (with the FIFO held open, so the reader sees no data and no end) after hold bytes until the
// test ends. It returns the number of bytes written so far.
func fifoFeed(t *testing.T, path string, data []byte, every time.Duration, hold int) func() int {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	written := make(chan int, 1)
	written <- 0
	t.Cleanup(func() {
		close(stop)
		if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer f.Close() // unblocks a writer still waiting for a reader
		}
		<-done
	})
	go func() {
		defer close(done)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		n := 0
		for n < len(data) && n < hold {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			end := min(n+64<<10, len(data), hold)
			// Counted before the write: the reader may hold these bytes before
			// Write returns, so the count is what was offered, an upper bound.
			<-written
			written <- end
			if _, err := f.Write(data[n:end]); err != nil {
				return
			}
			n = end
		}
		<-stop
	}()
	return func() int { n := <-written; written <- n; return n }
}

func randomBytes(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// waitFor polls GetTransfer until ok holds (or fails the test after limit).
func waitFor(t *testing.T, a *testagent.Agent, id string, limit time.Duration, what string, ok func(*ferryv1.Transfer) bool) *ferryv1.Transfer {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := a.Client.GetTransfer(context.Background(), &ferryv1.GetTransferRequest{Id: id})
		if err == nil && ok(resp.GetTransfer()) {
			return resp.GetTransfer()
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer %s: %s not within %s (last: %v, err %v)", id, what, limit, resp.GetTransfer(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func start(t *testing.T, a *testagent.Agent, req *ferryv1.StartTransferRequest) *ferryv1.Transfer {
	t.Helper()
	resp, err := a.Client.StartTransfer(context.Background(), req)
	if err != nil {
		t.Fatalf("StartTransfer(%s -> %s): %v", req.GetSource(), req.GetDestination(), err)
	}
	return resp.GetTransfer()
}

func noParts(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(d.Name(), ".ferry-part") {
			t.Errorf("part file left: %s", p)
		}
		return nil
	})
}

func stateDir(dir string) func(*daemon.Config) {
	return func(c *daemon.Config) { c.StateDir = dir }
}

// TestResumeAfterShutdown: an agent shut down mid-transfer checkpoints the job (a shutdown is
// not a cancel: watchers are told Unavailable), and after the restart on the same state dir the
// job goes on by itself from its part file, proven current by the peer's range hash.
func TestResumeAfterShutdown(t *testing.T) {
	b := testagent.Start(t)
	a := testagent.Start(t, stateDir(t.TempDir()))
	data, want := randomBytes(t, 4<<20)
	fed := fifoFeed(t, filepath.Join(b.Root, "big.bin"), data, 10*time.Millisecond, len(data))
	tr := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("big.bin"), Destination: "in/big.bin", Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	id := tr.GetId()
	conn := testagent.Dial(t, a.GRPC, testagent.AdminToken) // its own connection: Stop closes a.Client's
	defer conn.Close()
	stream, err := ferryv1.NewAgentServiceClient(conn).WatchTransfer(context.Background(), &ferryv1.WatchTransferRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, id, 20*time.Second, "1 MiB moved", func(x *ferryv1.Transfer) bool { return x.GetProgress().GetBytesDone() >= 1<<20 })

	a.Stop()
	var werr error
	for werr == nil {
		_, werr = stream.Recv()
	}
	if status.Code(werr) != codes.Unavailable || !strings.Contains(werr.Error(), "shutting down") {
		t.Errorf("watch of a transfer during shutdown ended with %v, want Unavailable saying the agent shuts down", werr)
	}
	before := fed()
	if _, err := os.Stat(filepath.Join(a.Root, "in/big.bin")); err == nil {
		t.Fatal("a partial file stands under the final name after the shutdown")
	}
	// The source becomes a plain file with the same bytes (a FIFO cannot be reopened at an offset).
	if err := os.Remove(filepath.Join(b.Root, "big.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	a2 := a.Restart(t)
	final := waitFor(t, a2, id, 30*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
		return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	})
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("after the restart: %v %s", final.GetState(), final.GetError())
	}
	if got := fileSHA(t, filepath.Join(a.Root, "in/big.bin")); got != want || final.GetSha256() != want || !final.GetVerified() {
		t.Fatalf("sha256 %s (reported %s, verified %v), want %s", got, final.GetSha256(), final.GetVerified(), want)
	}
	resumed := final.GetBytesResumed()
	t.Logf("fed %d bytes before the shutdown; resumed %d of %d (re-sent %d)", before, resumed, len(data), int64(before)-resumed)
	if resumed < 1<<20 || resumed > int64(before) {
		t.Errorf("bytes_resumed %d, want between 1 MiB and the %d bytes sent before the shutdown", resumed, before)
	}
	noParts(t, a.Root)
}

// TestStallIsRetried: a data connection that stops moving fails the attempt after the stall
// timeout; the retry resumes from the part file and completes.
func TestStallIsRetried(t *testing.T) {
	b := testagent.Start(t)
	a := testagent.Start(t, func(c *daemon.Config) { c.StallTimeout = time.Second })
	data, want := randomBytes(t, 2<<20)
	src := filepath.Join(b.Root, "s.bin")
	fed := fifoFeed(t, src, data, time.Millisecond, 256<<10) // sends 256 KiB, then nothing
	tr := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("s.bin"), Destination: "s.bin", Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	// Waited for at the feeder, not in the progress: the copy may count the bytes only once the
	// read that stalls fails, and the retry follows at once (closing a session costs it no
	// wait), so the progress may show them too briefly to be seen.
	for deadline := time.Now().Add(10 * time.Second); fed() < 256<<10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server read %d bytes of the FIFO within 10s, want 256 KiB", fed())
		}
	}
	stalled := time.Now()
	// The server holds the FIFO open; the next attempt opens the same name: a plain file now.
	if err := os.Rename(src, src+".fifo"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	x := waitFor(t, a, tr.GetId(), 10*time.Second, "the stall detected", func(x *ferryv1.Transfer) bool { return x.GetLastError() != "" })
	detect := time.Since(stalled)
	if !strings.Contains(x.GetLastError(), "no data for") {
		t.Errorf("last_error %q, want the stall named", x.GetLastError())
	}
	final := waitFor(t, a, tr.GetId(), 20*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
		return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	})
	t.Logf("stall detected after %s; attempts %d; resumed %d bytes", detect.Round(time.Millisecond), final.GetAttempt(), final.GetBytesResumed())
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || final.GetAttempt() < 2 {
		t.Fatalf("final %v after %d attempts: %s", final.GetState(), final.GetAttempt(), final.GetError())
	}
	if detect > 4*time.Second {
		t.Errorf("stall detected after %s with a 1s stall timeout", detect)
	}
	if final.GetBytesResumed() != 256<<10 {
		t.Errorf("bytes_resumed %d, want the 256 KiB received before the stall", final.GetBytesResumed())
	}
	if got := fileSHA(t, filepath.Join(a.Root, "s.bin")); got != want {
		t.Fatalf("sha256 %s, want %s", got, want)
	}
}

// TestResumeChecksPrefix: a part file whose bytes are the source's is resumed; one whose bytes
// differ (the source changed) is detected by the peer's range hash and the file moves whole.
// Both directions.
func TestResumeChecksPrefix(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	data, want := randomBytes(t, 3<<20)
	for _, dir := range []string{"download", "upload"} {
		for _, good := range []bool{true, false} {
			name := dir + map[bool]string{true: "-good", false: "-stale"}[good]
			t.Run(name, func(t *testing.T) {
				var src, dst, srcRoot, dstRoot string
				if dir == "download" {
					src, dst, srcRoot, dstRoot = b.URL(name+".bin"), name+".bin", b.Root, a.Root
				} else {
					src, dst, srcRoot, dstRoot = name+".bin", b.URL(name+".bin"), a.Root, b.Root
				}
				if err := os.WriteFile(filepath.Join(srcRoot, name+".bin"), data, 0o644); err != nil {
					t.Fatal(err)
				}
				part, err := transfer.PartFile(src, dst, name+".bin")
				if err != nil {
					t.Fatal(err)
				}
				prefix := append([]byte(nil), data[:1<<20]...)
				if !good {
					prefix[4096] ^= 0xff
				}
				if err := os.WriteFile(filepath.Join(dstRoot, part), prefix, 0o644); err != nil {
					t.Fatal(err)
				}
				final := checkProgress(t, run(t, a, src, dst, ferryv1.TransferMode_TRANSFER_MODE_PASSIVE), int64(len(data)), 1)
				wantResumed := map[bool]int64{true: 1 << 20, false: 0}[good]
				if final.GetBytesResumed() != wantResumed {
					t.Errorf("bytes_resumed %d, want %d", final.GetBytesResumed(), wantResumed)
				}
				if got := fileSHA(t, filepath.Join(dstRoot, name+".bin")); got != want || !final.GetVerified() {
					t.Fatalf("sha256 %s verified %v, want %s", got, final.GetVerified(), want)
				}
				noParts(t, dstRoot)
			})
		}
	}
}

// TestOneWriterPerDestination: a second transfer to a destination an unfinished one writes is
// refused at once with FailedPrecondition naming that job; the first one's file is what stands.
func TestOneWriterPerDestination(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	data, _ := randomBytes(t, 1<<20)
	fifoFeed(t, filepath.Join(b.Root, "slow.bin"), data, 20*time.Millisecond, len(data))
	writeRandom(t, filepath.Join(b.Root, "other.bin"), 1000)
	first := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("slow.bin"), Destination: "in/x.bin"})
	for _, dst := range []string{"in/x.bin", "/in/./x.bin"} {
		_, err := a.Client.StartTransfer(context.Background(), &ferryv1.StartTransferRequest{Source: b.URL("other.bin"), Destination: dst})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), first.GetId()) {
			t.Errorf("second transfer to %s: %v, want FailedPrecondition naming %s", dst, err, first.GetId())
		}
	}
	if _, err := a.Client.CancelTransfer(context.Background(), &ferryv1.CancelTransferRequest{Id: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	// Once the first has ended, the destination is free.
	checkProgress(t, run(t, a, b.URL("other.bin"), "in/x.bin", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE), 1000, 1)
}

// TestRequestID: the same request_id returns the same transfer, also after a restart.
func TestRequestID(t *testing.T) {
	b := testagent.Start(t)
	a := testagent.Start(t, stateDir(t.TempDir()))
	writeRandom(t, filepath.Join(b.Root, "f.bin"), 100000)
	req := &ferryv1.StartTransferRequest{Source: b.URL("f.bin"), Destination: "f.bin", RequestId: "nightly-1"}
	first := start(t, a, req)
	if again := start(t, a, req); again.GetId() != first.GetId() {
		t.Fatalf("same request_id gave %s then %s", first.GetId(), again.GetId())
	}
	waitFor(t, a, first.GetId(), 20*time.Second, "success", func(x *ferryv1.Transfer) bool {
		return x.GetState() == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	})
	a2 := a.Restart(t)
	after := start(t, a2, req)
	if after.GetId() != first.GetId() || after.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || after.GetRequestId() != "nightly-1" {
		t.Fatalf("after restart: %s %v (request_id %q), want %s succeeded", after.GetId(), after.GetState(), after.GetRequestId(), first.GetId())
	}
	list, err := a2.Client.ListTransfers(context.Background(), &ferryv1.ListTransfersRequest{})
	if err != nil || len(list.GetTransfers()) != 1 {
		t.Fatalf("history after restart: %v, %v", list.GetTransfers(), err)
	}
	_, err = a2.Client.StartTransfer(context.Background(), &ferryv1.StartTransferRequest{Source: b.URL("f.bin"), Destination: "g.bin", RequestId: strings.Repeat("x", 129)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "request_id") {
		t.Errorf("oversized request_id: %v", err)
	}
}

// TestLongNames: a file whose name has 250 bytes moves both ways (its part name fits in 255).
func TestLongNames(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	name := strings.Repeat("n", 246) + ".bin"
	want := writeRandom(t, filepath.Join(b.Root, name), 300000)
	checkProgress(t, run(t, a, b.URL(name), "in/", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE), 300000, 1)
	if got := fileSHA(t, filepath.Join(a.Root, "in", name)); got != want {
		t.Fatalf("download: sha256 %s, want %s", got, want)
	}
	checkProgress(t, run(t, a, "in/"+name, b.URL("up/"), ferryv1.TransferMode_TRANSFER_MODE_ACTIVE), 300000, 1)
	if got := fileSHA(t, filepath.Join(b.Root, "up", name)); got != want {
		t.Fatalf("upload: sha256 %s, want %s", got, want)
	}
}

// TestQueueOrder: beyond --max-transfers, transfers wait QUEUED and start in order.
func TestQueueOrder(t *testing.T) {
	b := testagent.Start(t)
	a := testagent.Start(t, func(c *daemon.Config) { c.MaxTransfers = 1 })
	data, _ := randomBytes(t, 1<<20)
	fifoFeed(t, filepath.Join(b.Root, "slow.bin"), data, 20*time.Millisecond, len(data))
	writeRandom(t, filepath.Join(b.Root, "q1.bin"), 1000)
	writeRandom(t, filepath.Join(b.Root, "q2.bin"), 1000)
	first := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("slow.bin"), Destination: "slow.bin"})
	waitFor(t, a, first.GetId(), 5*time.Second, "running", func(x *ferryv1.Transfer) bool {
		return x.GetState() == ferryv1.TransferState_TRANSFER_STATE_RUNNING
	})
	q1 := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("q1.bin"), Destination: "q1.bin"})
	q2 := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("q2.bin"), Destination: "q2.bin"})
	time.Sleep(200 * time.Millisecond)
	for _, q := range []*ferryv1.Transfer{q1, q2} {
		if x := waitFor(t, a, q.GetId(), time.Second, "known", func(*ferryv1.Transfer) bool { return true }); x.GetState() != ferryv1.TransferState_TRANSFER_STATE_QUEUED {
			t.Fatalf("%s is %v while the only slot is taken, want QUEUED", q.GetId(), x.GetState())
		}
	}
	if _, err := a.Client.CancelTransfer(context.Background(), &ferryv1.CancelTransferRequest{Id: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	done := func(x *ferryv1.Transfer) bool { return x.GetState() == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED }
	x1 := waitFor(t, a, q1.GetId(), 10*time.Second, "success", done)
	x2 := waitFor(t, a, q2.GetId(), 10*time.Second, "success", done)
	if x2.GetStartedAt().AsTime().Before(x1.GetStartedAt().AsTime()) {
		t.Errorf("queued transfers started out of order: %s before %s", q2.GetId(), q1.GetId())
	}
}

// TestOrphanedPartsSwept: part files older than --part-ttl are removed at start; fresh ones stay.
func TestOrphanedPartsSwept(t *testing.T) {
	root := t.TempDir()
	old := filepath.Join(root, "in", ".x.bin.0123abcd.ferry-part")
	fresh := filepath.Join(root, "in", ".y.bin.0123abcd.ferry-part")
	for _, p := range []string{old, fresh} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	testagent.Start(t, func(c *daemon.Config) { c.Root = root; c.PartTTL = 24 * time.Hour })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(old); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an orphaned part file older than --part-ttl was not removed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a fresh part file was removed: %v", err)
	}
}

// TestPermanentFailuresAreNotRetried: a missing source fails at once with its kind.
func TestPermanentFailuresAreNotRetried(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	seen := run(t, a, b.URL("missing.bin"), "m.bin", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
	final := seen[len(seen)-1]
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || final.GetAttempt() != 1 || final.GetErrorCode() != "not_found" {
		t.Fatalf("missing source: %v after %d attempts, code %q: %s", final.GetState(), final.GetAttempt(), final.GetErrorCode(), final.GetError())
	}
	if _, err := io.ReadAll(strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
}

// TestSessionsPerHost: with --max-sessions-per-host 1, a second transfer from the same server
// waits for the first one's session: it moves nothing until the first has ended.
func TestSessionsPerHost(t *testing.T) {
	b := testagent.Start(t)
	a := testagent.Start(t, func(c *daemon.Config) { c.MaxSessionsPerHost = 1 })
	data, _ := randomBytes(t, 1<<20)
	fifoFeed(t, filepath.Join(b.Root, "slow.bin"), data, 20*time.Millisecond, len(data))
	writeRandom(t, filepath.Join(b.Root, "small.bin"), 1000)
	first := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("slow.bin"), Destination: "slow.bin", Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	waitFor(t, a, first.GetId(), 5*time.Second, "moving", func(x *ferryv1.Transfer) bool { return x.GetProgress().GetBytesDone() > 0 })
	second := start(t, a, &ferryv1.StartTransferRequest{Source: b.URL("small.bin"), Destination: "small.bin", Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	time.Sleep(500 * time.Millisecond)
	if x := waitFor(t, a, second.GetId(), time.Second, "known", func(*ferryv1.Transfer) bool { return true }); x.GetState() != ferryv1.TransferState_TRANSFER_STATE_RUNNING || x.GetProgress().GetFilesDone() != 0 {
		t.Fatalf("second transfer %v with %d files done while the only session to the server is taken", x.GetState(), x.GetProgress().GetFilesDone())
	}
	if _, err := a.Client.CancelTransfer(context.Background(), &ferryv1.CancelTransferRequest{Id: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, second.GetId(), 10*time.Second, "success once the session is free", func(x *ferryv1.Transfer) bool {
		return x.GetState() == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	})
}
