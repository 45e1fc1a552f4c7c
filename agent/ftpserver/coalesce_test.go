package ftpserver

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// segsIn is the number of TCP segments c has received (TCP_INFO tcpi_segs_in).
func segsIn(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if gerr == nil {
			n = info.Segs_in
		}
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return n
}

// TestPipelinedRepliesCoalesce: the library writes every reply line on its own; a pipelined
// login (USER, PASS, TYPE, FEAT with its ~25 lines, OPTS) used to come back as ~30 TCP
// segments, three times the initial congestion window (a round trip lost on a long link). The
// filter coalesces them: fewer segments than the initial window of 10, every reply whole and in
// order. A client that sends one command at a time still gets each reply at once.
func TestPipelinedRepliesCoalesce(t *testing.T) {
	ts := startServer(t, nil)
	f := dialRaw(t, ts)
	before := segsIn(t, f.conn)
	if _, err := fmt.Fprintf(f.conn, "USER %s\r\nPASS %s\r\nTYPE I\r\nFEAT\r\nOPTS UTF8 ON\r\n", testUser, testPass); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{331, 230, 200, 211, 200} {
		code, msg := f.read()
		if code != want {
			t.Fatalf("reply %d %q, want %d", code, msg, want)
		}
		if want == 211 && !strings.Contains(msg, "EPSV") {
			t.Fatalf("FEAT reply cut short: %q", msg)
		}
	}
	if n := segsIn(t, f.conn) - before; n >= 10 {
		t.Errorf("the pipelined login's replies came in %d segments, want fewer than 10 (the initial window)", n)
	} else {
		t.Logf("the pipelined login's replies came in %d segments", n)
	}
	// One command at a time: each reply arrives without waiting for another command.
	f.expect(257, "PWD")
	f.expect(211, "FEAT")
	f.expect(200, "NOOP")
}
