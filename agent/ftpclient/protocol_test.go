package ftpclient

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPassiveClosedPort: the server announces a passive port where nothing
// listens. A scripted peer stands in for the server because vsftpd cannot be
// made to announce a dead port on loopback.
func TestPassiveClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	replies := loginReplies()
	replies["EPSV"] = []string{fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", port)}
	replies["SIZE"] = []string{"213 42"}
	srv := startScripted(t, &scriptedServer{Replies: replies})

	c := dial(t, Config{Addr: srv.Addr, User: "u", Password: "p", DataTimeout: 5 * time.Second})
	start := time.Now()
	_, err = c.Retr(testCtx(t, 10*time.Second), "/f", 0)
	var de *DataConnError
	if !errors.As(err, &de) || de.Mode != ModePassive || de.Timeout {
		t.Fatalf("Retr = %v, want a passive (refused, not timeout) *DataConnError", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refused connection took %v", d)
	}
	want := fmt.Sprintf("passive data connection to 127.0.0.1:%d failed: ", port)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "use active mode") {
		t.Fatalf("error %q: want %q, the cause and the fix", err, want)
	}
	if n, err := c.Size(testCtx(t, 5*time.Second), "/f"); err != nil || n != 42 {
		t.Fatalf("control connection unusable after data failure: %d, %v", n, err)
	}
}

// TestReplyParsing covers a 1xx greeting, multi-line replies whose inner
// lines look like replies, and FEAT parsing.
func TestReplyParsing(t *testing.T) {
	replies := loginReplies()
	replies["FEAT"] = []string{"211-Extensions supported:", " MLST type*;size*;modify*;", " SIZE", "211 END"}
	replies["DELE"] = []string{"250-Deleting", "250-still going", "123 not the end", "450 not the end either", "250 done"}
	replies["SIZE"] = []string{"213 7"}
	srv := startScripted(t, &scriptedServer{
		Greeting: []string{"120 ready in a moment", "220-Welcome", "  to the scripted server", "220 ready"},
		Replies:  replies,
	})
	ctx := testCtx(t, 10*time.Second)
	c := dial(t, Config{Addr: srv.Addr})
	if f := c.Features(); f["MLST"] != "type*;size*;modify*;" || len(f) != 2 {
		t.Fatalf("Features = %v", f)
	}
	if err := c.Delete(ctx, "/x"); err != nil {
		t.Fatalf("multi-line 250: %v", err)
	}
	// The reply stream is still in sync.
	if n, err := c.Size(ctx, "/x"); err != nil || n != 7 {
		t.Fatalf("Size = %d, %v", n, err)
	}
	// Default user is anonymous.
	var seen []string
	for len(srv.Seen) > 0 {
		seen = append(seen, <-srv.Seen)
	}
	if len(seen) == 0 || seen[0] != "USER anonymous" {
		t.Fatalf("commands = %q, want USER anonymous first", seen)
	}
}

// TestControlKeepAlive: the control connection has TCP keepalive on, so it
// survives (and notices the loss of) long transfers during which it idles.
func TestControlKeepAlive(t *testing.T) {
	srv := startScripted(t, &scriptedServer{Replies: loginReplies()})
	c := dial(t, Config{Addr: srv.Addr})
	rc, err := c.conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on, idle int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); serr == nil {
			idle, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		}
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if on == 0 || idle != int(controlKeepAlive/time.Second) {
		t.Fatalf("SO_KEEPALIVE = %d, TCP_KEEPIDLE = %d; want on, %v", on, idle, controlKeepAlive)
	}
}

func Test421MarksBroken(t *testing.T) {
	replies := loginReplies()
	replies["DELE"] = []string{"421 Timeout, closing control connection."}
	srv := startScripted(t, &scriptedServer{Replies: replies})
	ctx := testCtx(t, 10*time.Second)
	c := dial(t, Config{Addr: srv.Addr})
	err := c.Delete(ctx, "/x")
	wantReplyCode(t, err, 421)
	if err := c.Mkdir(ctx, "/y"); !errors.Is(err, errBroken) {
		t.Fatalf("after 421: %v, want the broken-connection error", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCommandInjectionRejected(t *testing.T) {
	srv := startScripted(t, &scriptedServer{Replies: loginReplies()})
	c := dial(t, Config{Addr: srv.Addr})
	ctx := testCtx(t, 10*time.Second)
	if err := c.Delete(ctx, "/a\r\nDELE /b"); err == nil {
		t.Fatal("path with CRLF accepted")
	}
	if _, err := c.Retr(ctx, "/a\nQUIT", 0); err == nil {
		t.Fatal("path with LF accepted")
	}
	if _, err := Dial(ctx, Config{Addr: srv.Addr, Password: "x\r\nDELE /"}); err == nil || strings.Contains(err.Error(), "DELE") {
		t.Fatalf("password with CRLF: %v", err)
	}
}

func TestAcceptFromFiltersForeignIP(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	foreign := dialFrom("127.0.0.2")
	good := dialFrom("127.0.0.1")
	conn, err := acceptFrom(ln, netip.MustParseAddr("127.0.0.1"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.RemoteAddr().String() != good.LocalAddr().String() {
		t.Fatalf("accepted %v, want %v", conn.RemoteAddr(), good.LocalAddr())
	}
	_ = foreign.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := foreign.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("foreign connection not closed: %v", err)
	}

	// Only foreign connections: time out with a diagnostic error.
	dialFrom("127.0.0.2")
	start := time.Now()
	_, err = acceptFrom(ln, netip.MustParseAddr("127.0.0.1"), 200*time.Millisecond)
	var de *DataConnError
	if !errors.As(err, &de) || !de.Timeout || de.Mode != ModeActive || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("acceptFrom = %v, want an active timeout *DataConnError", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v, want ~200ms", d)
	}
	for _, want := range []string{"did not connect back to 127.0.0.1:", "within 200ms", "firewall or NAT", "use passive mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestListenRange(t *testing.T) {
	ip := netip.MustParseAddr("127.0.0.1")
	// Occupy one port of a two-port range: the other one must be used.
	busy, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := busy.Addr().(*net.TCPAddr).Port
	lo, hi := p, p+1
	if p == 65535 {
		lo, hi = p-1, p
	}
	for range 5 {
		ln, err := listenRange(ip, PortRange{lo, hi})
		if err != nil {
			t.Skipf("neighbour port busy too: %v", err)
		}
		got := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if got == p || got < lo || got > hi {
			t.Fatalf("listened on %d, want the free port of %d-%d", got, lo, hi)
		}
	}
	if _, err := listenRange(ip, PortRange{p, p}); err == nil || !strings.Contains(err.Error(), "no free port") {
		t.Fatalf("single busy port: %v", err)
	}
}

func TestParseLIST(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		line string
		ok   bool
		want Entry
	}{
		{"total 8", false, Entry{}},
		{"", false, Entry{}},
		{"-rw-r--r--    1 0        0         5242880 Mar 02 12:34 big.bin", true,
			Entry{Name: "big.bin", Size: 5242880, ModTime: time.Date(2026, 3, 2, 12, 34, 0, 0, time.UTC)}},
		{"drwxr-xr-x    2 102      105          4096 Dec 31 23:59 sub dir", true,
			Entry{Name: "sub dir", Size: 4096, IsDir: true, ModTime: time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC)}},
		{"-rw-------    1 ftp      ftp             3 Jan 05  2021  two  spaces ", true,
			Entry{Name: " two  spaces ", Size: 3, ModTime: time.Date(2021, 1, 5, 0, 0, 0, 0, time.UTC)}},
		{"lrwxrwxrwx    1 0        0               7 Mar 01 10:00 link -> target", true,
			Entry{Name: "link", Size: 7, ModTime: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}},
		{"-rw-r--r-- 1 owner 99 Mar 11 00:00 nogroup", true, // within tomorrow: this year
			Entry{Name: "nogroup", Size: 99, ModTime: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)}},
		{"01-02-24  10:00AM       <DIR>          dos", false, Entry{}},
	}
	for _, tt := range tests {
		got, ok, err := parseLIST(tt.line, now)
		if tt.ok && (err != nil || !ok || got != tt.want) {
			t.Errorf("parseLIST(%q) = %+v, %v, %v; want %+v", tt.line, got, ok, err, tt.want)
		}
		if !tt.ok && ok {
			t.Errorf("parseLIST(%q) = %+v, want no entry", tt.line, got)
		}
	}
}

func TestParseReplies(t *testing.T) {
	if p, err := parseEPSV("Entering Extended Passive Mode (|||6446|)"); err != nil || p != 6446 {
		t.Errorf("parseEPSV = %d, %v", p, err)
	}
	if p, err := parseEPSV("ok (!!!21!)"); err != nil || p != 21 {
		t.Errorf("parseEPSV other delimiter = %d, %v", p, err)
	}
	for _, bad := range []string{"no parens", "(|||0|)", "(|||70000|)", "(||x|)"} {
		if _, err := parseEPSV(bad); err == nil {
			t.Errorf("parseEPSV(%q) succeeded", bad)
		}
	}
	ip, port, err := parsePASV("Entering Passive Mode (10,0,0,2,195,80).")
	if err != nil || ip != netip.MustParseAddr("10.0.0.2") || port != 195*256+80 {
		t.Errorf("parsePASV = %v %d %v", ip, port, err)
	}
	if ip, port, err := parsePASV("=192,168,1,1,0,21"); err != nil || ip.String() != "192.168.1.1" || port != 21 {
		t.Errorf("parsePASV without parens = %v %d %v", ip, port, err)
	}
	if _, _, err := parsePASV("(1,2,3,4,5)"); err == nil {
		t.Error("parsePASV accepted 5 numbers")
	}
	if d, err := parsePWD(`"/a ""q"" b" is the current directory`); err != nil || d != `/a "q" b` {
		t.Errorf("parsePWD = %q, %v", d, err)
	}
	e, ok, err := parseMLSx("type=file;size=12;modify=20240102030405.123;UNIX.mode=0644; a file")
	if err != nil || !ok || e.Name != "a file" || e.Size != 12 || e.IsDir ||
		!e.ModTime.Equal(time.Date(2024, 1, 2, 3, 4, 5, 123e6, time.UTC)) {
		t.Errorf("parseMLSx = %+v %v %v", e, ok, err)
	}
	if e, _, _ := parseMLSx("type=cdir;modify=20240102030405; /x"); e.Name != "." || !e.IsDir {
		t.Errorf("parseMLSx cdir = %+v", e)
	}
	algo, sum, err := parseHash(&reply{Code: 213, Lines: []string{"Computing", "SHA-256 0-3 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789 f n"}})
	if err != nil || algo != "SHA-256" || sum != "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" {
		t.Errorf("parseHash = %s %s %v", algo, sum, err)
	}
	if _, _, err := parseHash(&reply{Code: 213, Lines: []string{"SHA-256 0-3 abc f"}}); err == nil {
		t.Error("parseHash accepted a short SHA-256")
	}
}

func TestErrors(t *testing.T) {
	re := &ReplyError{Code: 550, Msg: "No such file.\nSecond line"}
	if re.Error() != "ftp 550: No such file.; Second line" {
		t.Errorf("ReplyError = %q", re.Error())
	}
	wrapped := fmt.Errorf("op: %w", re)
	if !IsPermanent(wrapped) || IsPermanent(&ReplyError{Code: 450}) || IsPermanent(io.EOF) {
		t.Error("IsPermanent wrong")
	}
	de := &DataConnError{Mode: ModePassive, Addr: "10.0.0.2:50012", Timeout: true, Err: &timeoutError{10 * time.Second}}
	want := "passive data connection to 10.0.0.2:50012 failed: timed out after 10s: the data port is unreachable: the server's firewall probably blocks its passive port range"
	if !strings.HasPrefix(de.Error(), want) || !strings.HasSuffix(de.Error(), "open the server's passive port range on its firewall, or use active mode") {
		t.Errorf("passive DataConnError = %q", de.Error())
	}
	var ne net.Error
	if !errors.As(de, &ne) || !ne.Timeout() || !errors.Is(de, os.ErrDeadlineExceeded) {
		t.Error("timeout DataConnError does not unwrap to a timeout")
	}
	de = &DataConnError{Mode: ModeActive, Addr: "10.0.0.1:40001", Timeout: true, Err: &timeoutError{10 * time.Second}}
	want = "active data connection: the server did not connect back to 10.0.0.1:40001 within 10s: a firewall or NAT in front of this client blocks inbound connections; use passive mode, or open/forward the active port range (--active-ports) and announce the reachable address (--active-addr)"
	if de.Error() != want {
		t.Errorf("active DataConnError =\n%q\nwant\n%q", de.Error(), want)
	}
	de = &DataConnError{Mode: ModeActive, Refused: true, Addr: "192.168.1.5:40001", Err: &ReplyError{Code: 501, Msg: "bounce refused"}}
	if msg := de.Error(); !strings.Contains(msg, "refused to connect back to 192.168.1.5:40001") ||
		!strings.Contains(msg, "behind NAT") || !strings.Contains(msg, "use passive mode") {
		t.Errorf("refused active DataConnError = %q", msg)
	}
	if ModePassive.String() != "passive" || ModeActive.String() != "active" || Mode(7).String() != "Mode(7)" {
		t.Error("Mode.String")
	}
}
