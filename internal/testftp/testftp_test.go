package testftp

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ftpSession is a minimal control-connection driver for these tests.
type ftpSession struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialSession(t *testing.T, addr string) *ftpSession {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	s := &ftpSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	if got := s.reply(); !strings.HasPrefix(got, "220") {
		t.Fatalf("greeting: %q", got)
	}
	return s
}

// reply returns the last line of the next (possibly multi-line) reply.
func (s *ftpSession) reply() string {
	s.t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading reply: %v", err)
		}
		if len(line) >= 4 && line[3] == ' ' {
			return strings.TrimSpace(line)
		}
	}
}

func (s *ftpSession) cmd(line string) string {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(line + "\r\n")); err != nil {
		s.t.Fatal(err)
	}
	return s.reply()
}

func TestLoginAndWritablePub(t *testing.T) {
	srv := StartVsftpd(t, Options{})
	s := dialSession(t, srv.Addr)
	if got := s.cmd("USER " + srv.User); !strings.HasPrefix(got, "331") {
		t.Fatalf("USER: %q", got)
	}
	if got := s.cmd("PASS " + srv.Password); !strings.HasPrefix(got, "230") {
		t.Fatalf("PASS: %q", got)
	}
	if got := s.cmd("MKD " + srv.Pub + "/made"); !strings.HasPrefix(got, "257") {
		t.Fatalf("MKD: %q", got)
	}
	if fi, err := os.Stat(srv.Local("/pub/made")); err != nil || !fi.IsDir() {
		t.Fatalf("MKD did not create %s: %v", srv.Local("/pub/made"), err)
	}
	if got := s.cmd("RNFR /pub/made"); !strings.HasPrefix(got, "350") {
		t.Fatalf("RNFR: %q", got)
	}
	if got := s.cmd("RNTO /pub/renamed"); !strings.HasPrefix(got, "250") {
		t.Fatalf("RNTO: %q", got)
	}
	if _, err := os.Stat(filepath.Join(srv.Root, "pub", "renamed")); err != nil {
		t.Fatal(err)
	}
	// The root itself is not writable (vsftpd refuses writable chroots).
	if got := s.cmd("MKD /nope"); !strings.HasPrefix(got, "550") {
		t.Fatalf("MKD in root: %q, want 550", got)
	}
}

func TestBadPasswordRejected(t *testing.T) {
	srv := StartVsftpd(t, Options{})
	s := dialSession(t, srv.Addr)
	s.cmd("USER " + srv.User)
	if got := s.cmd("PASS " + srv.BadPassword); !strings.HasPrefix(got, "530") {
		t.Fatalf("PASS with BadPassword: %q, want 530", got)
	}
}

func TestPasvRangeAndAddress(t *testing.T) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := StartVsftpd(t, Options{PasvMin: port, PasvMax: port, PasvAddress: "10.9.8.7"})
	s := dialSession(t, srv.Addr)
	s.cmd("USER " + srv.User)
	s.cmd("PASS " + srv.Password)
	want := fmt.Sprintf("(10,9,8,7,%d,%d)", port>>8, port&0xff)
	if got := s.cmd("PASV"); !strings.Contains(got, want) {
		t.Fatalf("PASV: %q, want %s", got, want)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	c := Config(Options{Dir: "/x", Port: 2121, ListenAddr: "::1", Extra: []string{"ssl_enable=NO"}})
	for _, want := range []string{"listen_ipv6=YES", "listen_address6=::1", "listen_port=2121", "anon_root=/x/root", "ssl_enable=NO", "background=NO"} {
		if !strings.Contains(c, want+"\n") {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}

func TestStopKillsServer(t *testing.T) {
	var (
		addr    string
		session net.Conn
	)
	t.Run("inner", func(t *testing.T) {
		srv := StartVsftpd(t, Options{})
		addr = srv.Addr
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		session = conn
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		for _, step := range []struct{ send, want string }{
			{"", "220"}, {"USER " + srv.User, "331"}, {"PASS " + srv.Password, "230"},
		} {
			if step.send != "" {
				fmt.Fprintf(conn, "%s\r\n", step.send)
			}
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, step.want) {
				t.Fatalf("after %q: %q, %v", step.send, line, err)
			}
		}
	})
	defer session.Close()
	// The inner test's cleanup ran: nothing listens any more...
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("vsftpd still listening on %s after cleanup", addr)
	}
	// ...and the session process (in its own process group) is gone too.
	_ = session.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := session.Read(make([]byte, 1)); err == nil {
		t.Fatal("session still answering after cleanup")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("session process survived cleanup")
	}
}
