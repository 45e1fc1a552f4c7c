package ftpclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testftp"
)

var modes = []Mode{ModePassive, ModeActive}

// testCtx returns a context bounded so that no test can hang.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func vsftpdConfig(srv *testftp.Server, mode Mode) Config {
	return Config{
		Addr:         srv.Addr,
		User:         srv.User,
		Password:     srv.Password,
		Mode:         mode,
		DialTimeout:  5 * time.Second,
		DataTimeout:  5 * time.Second,
		ReplyTimeout: 10 * time.Second,
	}
}

// dial connects and registers Close as cleanup.
func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Dial(testCtx(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// randomFile writes n random bytes to a new local file and returns its path
// and SHA-256.
func randomFile(t *testing.T, n int64) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "random.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// upload copies the local file to path with Stor(offset) via io.Copy, which
// goes through the writer's ReadFrom.
func upload(ctx context.Context, c *Client, local, path string, offset int64) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	w, err := c.Stor(ctx, path, offset)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// download returns the SHA-256 and length of path read from offset.
func download(ctx context.Context, c *Client, path string, offset int64) (string, int64, error) {
	r, err := c.Retr(ctx, path, offset)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func wantReplyCode(t *testing.T, err error, code int) {
	t.Helper()
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != code {
		t.Fatalf("error = %v, want a *ReplyError with code %d", err, code)
	}
}

// rewriteDialer dials normally and lets a test rewrite (or observe) each
// command the client writes on the control connection. Commands are written
// one per Write call.
type rewriteDialer struct {
	mu      sync.Mutex
	control bool // the first dial is the control connection
	rewrite func(cmd string) string
	block   func(addr string) bool // data dials to block (simulated firewall drop)
}

func (d *rewriteDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	first := !d.control
	d.control = true
	d.mu.Unlock()
	if !first && d.block != nil && d.block(addr) {
		<-ctx.Done() // SYN dropped: nothing comes back
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil || !first || d.rewrite == nil {
		return conn, err
	}
	return &rewriteConn{Conn: conn, rewrite: d.rewrite}, nil
}

type rewriteConn struct {
	net.Conn
	rewrite func(cmd string) string
}

func (c *rewriteConn) Write(p []byte) (int, error) {
	cmd := strings.TrimSuffix(string(p), "\r\n")
	out := c.rewrite(cmd) + "\r\n"
	if _, err := io.WriteString(c.Conn, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// scriptedServer is a fake FTP control peer that answers commands from a
// table. It is used only for failures and protocol corner cases that a real
// server cannot be made to produce on loopback.
type scriptedServer struct {
	Addr string
	// Greeting lines sent on connect (default "220 scripted").
	Greeting []string
	// Replies maps a command verb to the raw reply lines; missing verbs get
	// "502 not implemented".
	Replies map[string][]string
	// Seen receives every command received.
	Seen chan string
}

func startScripted(t *testing.T, s *scriptedServer) *scriptedServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	if s.Seen == nil {
		s.Seen = make(chan string, 100)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(conn)
			}()
		}
	}()
	return s
}

func (s *scriptedServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	greet := s.Greeting
	if greet == nil {
		greet = []string{"220 scripted"}
	}
	for _, l := range greet {
		fmt.Fprintf(conn, "%s\r\n", l)
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		select {
		case s.Seen <- line:
		default:
		}
		verb, _, _ := strings.Cut(line, " ")
		replies, ok := s.Replies[strings.ToUpper(verb)]
		if !ok {
			replies = []string{"502 not implemented"}
		}
		for _, l := range replies {
			fmt.Fprintf(conn, "%s\r\n", l)
		}
		if verb == "QUIT" {
			return
		}
	}
}

// loginReplies are the replies a scripted server needs for Dial to succeed.
func loginReplies() map[string][]string {
	return map[string][]string{
		"USER": {"331 password please"},
		"PASS": {"230 logged in"},
		"TYPE": {"200 binary"},
		"FEAT": {"211-Features:", " EPSV", " PASV", "211 End"},
		"QUIT": {"221 bye"},
	}
}
