package ftpserver

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLog is an EventSink that keeps what it gets.
type eventLog struct {
	mu sync.Mutex
	ev []Event
}

func (l *eventLog) FTPEvent(e Event) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) wait(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		ev := append([]Event(nil), l.ev...)
		l.mu.Unlock()
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuf is a log destination safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEvents: a session's refused and accepted logins, download, upload, rename, mkdir, rmdir and
// delete each reach Config.Events once, with the session, user, paths under the served root
// (an account's home included) and the bytes moved; the debug log shows the commands with the
// password masked, and the session ends with one summary line.
func TestEvents(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "home", "carol"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, filepath.Join(root, "home", "carol"), "a.bin", 100000)
	sink := &eventLog{}
	var logs syncBuf
	ts := startServer(t, func(c *Config) {
		c.Root = root
		c.Accounts = []Account{{Name: "carol", Hash: bcryptHash(t, "carol-pass"), Home: "home/carol"}}
		c.Events = EventSinks{nil, sink}
		c.LoginDelay = -1
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	f := dialRaw(t, ts)
	if code := f.login("carol", "wrong-secret-1"); code != 530 {
		t.Fatalf("bad password: %d", code)
	}
	if code := f.login("carol", "carol-pass"); code != 230 {
		t.Fatalf("login: %d", code)
	}
	f.expect(200, "TYPE I")
	if b, code := f.retr("a.bin"); code != 226 || len(b) != 100000 {
		t.Fatalf("RETR: %d, %d bytes", code, len(b))
	}
	if code := f.stor("b.bin", make([]byte, 4321)); code != 226 {
		t.Fatalf("STOR: %d", code)
	}
	if code := f.rename("b.bin", "c.bin"); code != 250 {
		t.Fatalf("rename: %d", code)
	}
	f.expect(257, "MKD d")
	f.expect(250, "RMD d")
	f.expect(250, "DELE c.bin")
	f.expect(221, "QUIT")

	want := []struct {
		kind       EventKind
		path, to   string
		bytes      int64
		failed     bool
		modeNeeded bool
	}{
		{kind: EventLoginFailed, failed: true},
		{kind: EventLogin},
		{kind: EventRead, path: "/home/carol/a.bin", bytes: 100000, modeNeeded: true},
		{kind: EventWrite, path: "/home/carol/b.bin", bytes: 4321, modeNeeded: true},
		{kind: EventRename, path: "/home/carol/b.bin", to: "/home/carol/c.bin"},
		{kind: EventMkdir, path: "/home/carol/d"},
		{kind: EventRmdir, path: "/home/carol/d"},
		{kind: EventDelete, path: "/home/carol/c.bin"},
	}
	ev := sink.wait(t, len(want))
	if len(ev) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(ev), len(want), ev)
	}
	for i, w := range want {
		e := ev[i]
		if e.Kind != w.kind || e.Path != w.path || e.To != w.to || e.Bytes != w.bytes || (e.Err != nil) != w.failed {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
		if e.User != "carol" || e.Session == 0 || !e.Remote.IsValid() || e.Time.IsZero() {
			t.Errorf("event %d lacks session fields: %+v", i, e)
		}
		if w.modeNeeded && e.Mode != "passive" {
			t.Errorf("event %d mode = %q, want passive", i, e.Mode)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "msg=\"ftp session\"") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if strings.Contains(out, "carol-pass") || strings.Contains(out, "wrong-secret-1") {
		t.Fatalf("a password reached the log:\n%s", out)
	}
	for _, s := range []string{"cmd=PASS arg=*****", "cmd=RETR arg=a.bin", "cmd=USER arg=carol",
		"msg=\"ftp reply\"", "msg=\"ftp session\"", "bytesSent=100000", "bytesReceived=4321", "failedLogins=1"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
}
