package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/ftpserver"
)

// The end of a segmented download, against a real FTP server (Ferry's) and real client
// sessions. The only thing added is a probe around each session (tailProbe): it holds the
// data of some ranges, and makes Close wait, so the order of events is fixed without timing.

// tailLog is the serving FTP server's debug log: the commands it was sent.
type tailLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *tailLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *tailLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *tailLog) count(cmd string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), " cmd="+cmd+" ")
}

// tailProbe wraps the job's sessions. Ranges starting at holdBelow or later (the job's
// session's) wait for lastGate before their first read, the others for firstGate, the one at
// 0 for zeroGate (nil: no wait); holders of the ranges before holdBelow make allHeld close
// once their transfers have started. HashSize notes whether firstGate was still shut, and on
// which session it came; Close waits for closeGate.
type tailProbe struct {
	holdBelow  int64
	lastGate   chan struct{}
	firstGate  chan struct{}
	zeroGate   chan struct{}
	holders    int
	held       atomic.Int32
	allHeld    chan struct{} // closed once holders transfers wait for firstGate (allOnce)
	allOnce    sync.Once
	released   atomic.Bool   // firstGate was opened
	hashed     chan struct{} // closed at the first HashSize (hashOnce)
	hashOnce   sync.Once
	early      atomic.Bool  // HashSize was called while the first ranges were held
	hashedFrom atomic.Int64 // the first range offset of the session HashSize came on
	closeGate  chan struct{}
	opened     atomic.Int32
	closed     atomic.Int32 // Close returned
}

func (p *tailProbe) hash() { p.hashOnce.Do(func() { close(p.hashed) }) }

type probeSession struct {
	Session
	p     *tailProbe
	first atomic.Int64 // offset of its first RETR, -1 before
}

func (s *probeSession) Retr(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	s.first.CompareAndSwap(-1, offset)
	r, err := s.Session.Retr(ctx, p, offset)
	if err != nil {
		return r, err
	}
	gate := s.p.lastGate
	if offset < s.p.holdBelow {
		gate = s.p.firstGate
		if offset == 0 {
			gate = s.p.zeroGate
		}
		if s.p.held.Add(1) == int32(s.p.holders) {
			s.p.allOnce.Do(func() { close(s.p.allHeld) })
		}
	}
	if gate == nil {
		return r, nil
	}
	return &heldReader{ReadCloser: r, ctx: ctx, gate: gate}, nil
}

func (s *probeSession) HashSize(ctx context.Context, p string, size int64) (string, error) {
	s.p.hashOnce.Do(func() {
		s.p.early.Store(!s.p.released.Load())
		s.p.hashedFrom.Store(s.first.Load())
		close(s.p.hashed)
	})
	return s.Session.HashSize(ctx, p, size)
}

// Usable is the client's (sessionUsable looks for it).
func (s *probeSession) Usable() bool { return sessionUsable(s.Session) }

func (s *probeSession) Close() error {
	defer s.p.closed.Add(1)
	select {
	case <-s.p.closeGate:
	case <-time.After(30 * time.Second): // the test has failed already; end anyway
	}
	return s.Session.Close()
}

// heldReader waits for gate to close before its first read.
type heldReader struct {
	io.ReadCloser
	ctx  context.Context
	gate chan struct{}
	open bool
}

func (r *heldReader) Read(b []byte) (int, error) {
	if !r.open {
		select {
		case <-r.gate:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
		r.open = true
	}
	return r.ReadCloser.Read(b)
}

// TestSegmentedDownloadTail: a 4 MiB file over 4 streams (ranges of 1 MiB: none is worth
// splitting, so no session moves a second range). The job's session moves the last range once
// the others have started; those are held until the server's digest was asked for. So: (1) the digest is asked for by
// the first session with nothing left to move, while other ranges still wait (before, only
// after the last byte); (2) no stream sends ABOR, as none is used again (before, each did and
// waited for the replies); (3) the job reports success while every session's Close still waits
// (before, it waited for each QUIT's reply), and the job is done only once they are closed.
// The file is whole and verified.
func TestSegmentedDownloadTail(t *testing.T) {
	t.Parallel()
	p := &tailProbe{holdBelow: 3 << 20, holders: 3, allHeld: make(chan struct{}), firstGate: make(chan struct{}),
		hashed: make(chan struct{}), closeGate: make(chan struct{})}
	p.lastGate, p.zeroGate = p.allHeld, p.firstGate
	releaseData := sync.OnceFunc(func() {
		p.released.Store(true)
		close(p.firstGate)
		p.allOnce.Do(func() { close(p.allHeld) })
	})
	openClose := sync.OnceFunc(func() { close(p.closeGate) })
	m, j, body, log := startTail(t, p, 4<<20, func() { releaseData(); openClose() })
	sum := sha256.Sum256(body)
	dstDir := m.cfg.Root
	select {
	case <-p.hashed:
	case <-time.After(20 * time.Second):
	}
	if !p.early.Load() {
		t.Error("the server's digest was not asked for while ranges were still to move")
	}
	releaseData()

	// Success is reported while every session's Close (its QUIT) still waits.
	var last Snapshot
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if last = j.b.snapshot(); last.State.Final() || time.Now().After(deadline) {
			break
		}
	}
	if last.State != StateSucceeded || !last.Verified || last.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("with every Close waiting: state %v (err %q), verified %v, sha256 %s; want a verified success", last.State, last.Err, last.Verified, last.SHA256)
	}
	select {
	case <-j.done:
		t.Error("the job was done before its sessions were closed")
	default:
	}
	openClose()
	select {
	case <-j.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the job was not done 20s after its sessions could close")
	}
	if o, c := p.opened.Load(), p.closed.Load(); o != 4 || c != o {
		t.Errorf("%d sessions opened, %d closed; want 4 and all", o, c)
	}
	got, err := os.ReadFile(filepath.Join(dstDir, "big.bin"))
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("big.bin: %d bytes (%v), want the source's %d", len(got), err, len(body))
	}
	if ents, _ := os.ReadDir(dstDir); len(ents) != 1 {
		t.Errorf("destination holds %d entries, want big.bin alone", len(ents))
	}
	// The job's session moved the last range to the end of the file: its 226 carried the
	// file's digest (XDIGEST), so the early digest took no HASH at all.
	if a, h, r, q := log.count("ABOR"), log.count("HASH"), log.count("RETR"), log.count("QUIT"); a != 0 || h != 0 || r != 4 || q != 4 {
		t.Errorf("the server saw %d ABOR, %d HASH, %d RETR, %d QUIT; want 0, 0, 4, 4 (the digest came with the last range's 226; every session says QUIT)", a, h, r, q)
	}
}

// TestSegmentedDownloadStreamDigest: a 32 MiB file over 4 streams; every range but the first
// is held until the digest was asked for. The stream of the first range, done with it while the
// job's session has not moved, asks for the digest: it ABORs its transfer (24 MiB were still to
// come: more than the socket buffers hold, so the server answers 426), which leaves the session
// usable, and sends HASH on it. The file is whole and verified.
func TestSegmentedDownloadStreamDigest(t *testing.T) {
	t.Parallel()
	p := &tailProbe{holdBelow: 24 << 20, holders: 3, allHeld: make(chan struct{}), hashed: make(chan struct{}), closeGate: make(chan struct{})}
	p.lastGate, p.firstGate = p.hashed, p.hashed
	close(p.closeGate)
	m, j, body, log := startTail(t, p, 32<<20, p.hash)
	sum := sha256.Sum256(body)
	select {
	case <-j.done:
	case <-time.After(20 * time.Second):
		p.hash()
		<-j.done
		t.Error("the job was not done within 20s (its session waited for a digest nobody asked for)")
	}
	last := j.b.snapshot()
	if last.State != StateSucceeded || !last.Verified || last.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("state %v (err %q), verified %v, sha256 %s; want a verified success", last.State, last.Err, last.Verified, last.SHA256)
	}
	if from := p.hashedFrom.Load(); from != 0 {
		t.Errorf("HASH came on the session of the range at %d, want the first range's stream", from)
	}
	if got, err := os.ReadFile(filepath.Join(m.cfg.Root, "big.bin")); err != nil || !bytes.Equal(got, body) {
		t.Errorf("big.bin: %d bytes (%v), want the source's %d", len(got), err, len(body))
	}
	// The stream that asked ABORted first, its transfer cut short: the server answered it with
	// a failure (426, or 550 when it saw the data connection reset first). Idle streams that
	// split a range afterwards ABOR too.
	cut := len(regexp.MustCompile(`line="[45][0-9][0-9] `).FindAllString(log.text(), -1))
	if a, h, r := log.count("ABOR"), log.count("HASH"), log.count("RETR"); a < 1 || h != 1 || r < 4 || cut < 1 {
		t.Errorf("the server saw %d ABOR, %d HASH, %d RETR and sent %d failure replies; want 1 or more, 1, 4 or more, 1 or more", a, h, r, cut)
	}
}

// startTail serves a file of size bytes over real FTP and starts its download over 4 streams,
// every session wrapped in p. unblock (run at cleanup, before the manager closes) opens p's
// gates.
func startTail(t *testing.T, p *tailProbe, size int, unblock func()) (*Manager, *job, []byte, *tailLog) {
	t.Helper()
	srvDir, dstDir := t.TempDir(), t.TempDir()
	body := make([]byte, size)
	rand.Read(body)
	if err := os.WriteFile(filepath.Join(srvDir, "big.bin"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	log := &tailLog{}
	srv, err := ftpserver.New(ftpserver.Config{
		Listen: "127.0.0.1:0", Root: srvDir, LoginDelay: -1,
		Users:  []ftpserver.User{{Name: "tail", Password: "tail-pw"}},
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	m, err := NewManager(Config{Root: dstDir, MaxSessionsPerHost: 8, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	t.Cleanup(unblock) // first: a failed test still lets its sessions end
	connect := m.dialer.connect
	m.dialer.connect = func(ctx context.Context, cfg ftpclient.Config) (Session, error) {
		s, err := connect(ctx, cfg)
		if err != nil {
			return nil, err
		}
		p.opened.Add(1)
		ps := &probeSession{Session: s, p: p}
		ps.first.Store(-1)
		return ps, nil
	}

	snap, err := m.Start(Spec{Source: fmt.Sprintf("ftp://tail:tail-pw@%s/big.bin", srv.Addr()), Destination: "big.bin",
		Mode: ModePassive, ModeSet: true, Streams: 4})
	if err != nil {
		t.Fatal(err)
	}
	j, err := m.job(snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	return m, j, body, log
}
