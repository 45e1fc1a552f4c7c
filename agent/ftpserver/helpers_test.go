package ftpserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testUser = "alice"
	testPass = "correct-horse-battery-staple"
)

type testServer struct {
	*Server
	root string
	host string
	port int
}

// startServer runs a Server on 127.0.0.1:0 serving a fresh temp directory
// (unless mut sets Root) and stops it at cleanup.
func startServer(t *testing.T, mut func(*Config)) *testServer {
	t.Helper()
	cfg := Config{
		Listen:      "127.0.0.1:0",
		Root:        t.TempDir(),
		Users:       []User{{Name: testUser, Password: testPass}},
		IdleTimeout: time.Minute,
	}
	if mut != nil {
		mut(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after Close", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
	})
	ta := s.Addr().(*net.TCPAddr)
	return &testServer{Server: s, root: cfg.Root, host: ta.IP.String(), port: ta.Port}
}

func (ts *testServer) url(p string) string {
	return fmt.Sprintf("ftp://%s:%d/%s", ts.host, ts.port, strings.TrimPrefix(p, "/"))
}

// writeRandom writes n random bytes to root/rel and returns their SHA-256.
func writeRandom(t *testing.T, root, rel string, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rawFTP is a minimal FTP client written for these tests, to send exactly
// the commands under test (clients like curl normalize paths).
type rawFTP struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

const rawTimeout = 30 * time.Second

func dialRaw(t *testing.T, ts *testServer) *rawFTP {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(rawTimeout))
	f := &rawFTP{t: t, conn: c, tp: textproto.NewConn(c)}
	t.Cleanup(func() { _ = f.tp.Close() })
	code, msg := f.read()
	if code != 220 || !strings.Contains(msg, welcomeBanner) {
		t.Fatalf("banner = %d %q", code, msg)
	}
	return f
}

func (f *rawFTP) read() (int, string) {
	f.t.Helper()
	code, msg, err := f.tp.ReadResponse(0)
	if err != nil {
		f.t.Fatalf("read response: %v", err)
	}
	return code, msg
}

// cmd sends one command and returns the reply.
func (f *rawFTP) cmd(format string, args ...any) (int, string) {
	f.t.Helper()
	if err := f.tp.PrintfLine(format, args...); err != nil {
		f.t.Fatalf("send %q: %v", format, err)
	}
	return f.read()
}

// expect sends a command and fails the test unless the reply code is want.
func (f *rawFTP) expect(want int, format string, args ...any) string {
	f.t.Helper()
	code, msg := f.cmd(format, args...)
	if code != want {
		f.t.Fatalf("%s: got %d %q, want %d", fmt.Sprintf(format, args...), code, msg, want)
	}
	return msg
}

// login returns the PASS reply code.
func (f *rawFTP) login(user, pass string) int {
	f.t.Helper()
	f.expect(331, "USER %s", user)
	code, _ := f.cmd("PASS %s", pass)
	return code
}

var epsvRe = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)

func (f *rawFTP) openData() net.Conn {
	f.t.Helper()
	msg := f.expect(229, "EPSV")
	m := epsvRe.FindStringSubmatch(msg)
	if m == nil {
		f.t.Fatalf("bad EPSV reply %q", msg)
	}
	port, _ := strconv.Atoi(m[1])
	host, _, _ := net.SplitHostPort(f.conn.RemoteAddr().String())
	d, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		f.t.Fatalf("dial data: %v", err)
	}
	_ = d.SetDeadline(time.Now().Add(rawTimeout))
	return d
}

// retr downloads p; it returns the data and the final reply code (or the
// preliminary code when the transfer was refused).
func (f *rawFTP) retr(p string) ([]byte, int) {
	f.t.Helper()
	d := f.openData()
	defer d.Close()
	code, _ := f.cmd("RETR %s", p)
	if code != 150 {
		return nil, code
	}
	b, err := io.ReadAll(d)
	if err != nil {
		f.t.Fatalf("read data: %v", err)
	}
	code, _ = f.read()
	return b, code
}

// stor uploads data to p and returns the final (or refusal) reply code.
func (f *rawFTP) stor(p string, data []byte) int {
	f.t.Helper()
	d := f.openData()
	code, _ := f.cmd("STOR %s", p)
	if code != 150 {
		d.Close()
		return code
	}
	if _, err := io.Copy(d, bytes.NewReader(data)); err != nil {
		f.t.Fatalf("write data: %v", err)
	}
	d.Close()
	code, _ = f.read()
	return code
}

// list runs a listing command (LIST, MLSD, NLST) and returns its output.
func (f *rawFTP) list(verb, p string) (string, int) {
	f.t.Helper()
	d := f.openData()
	defer d.Close()
	code, _ := f.cmd("%s %s", verb, p)
	if code != 150 {
		return "", code
	}
	b, _ := io.ReadAll(d)
	code, _ = f.read()
	return string(b), code
}

// rename returns the RNFR reply code if it was refused, else the RNTO one.
func (f *rawFTP) rename(from, to string) int {
	f.t.Helper()
	code, _ := f.cmd("RNFR %s", from)
	if code != 350 {
		return code
	}
	code, _ = f.cmd("RNTO %s", to)
	return code
}

func itoa(i int) string { return strconv.Itoa(i) }

var zeroTime time.Time
