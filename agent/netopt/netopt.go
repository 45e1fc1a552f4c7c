// Package netopt sets socket options on the data connections Ferry owns. Today: the TCP
// congestion control of the sending side (--tcp-congestion), BBR by default where the kernel
// offers it, because one BBR stream keeps most of a long lossy link's rate where CUBIC crawls.
//
// Any package that opens data connections (the FTP server's passive and active data
// connections, the FTP client's, the parallel-stream engine's) calls SetCongestion on each with
// the name the agent resolved once at start with Resolve.
package netopt

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

// DefaultCongestion is tried when --tcp-congestion is left empty.
const DefaultCongestion = "bbr"

// System keeps the host's default congestion control (no setsockopt at all).
const System = "system"

// availableFile lists the congestion controls the kernel has loaded.
const availableFile = "/proc/sys/net/ipv4/tcp_available_congestion_control"

// Available returns the congestion controls the kernel offers (nil when unknown).
func Available() []string {
	b, err := os.ReadFile(availableFile)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// ErrUnsupported is returned where congestion control cannot be chosen per socket.
var ErrUnsupported = errors.New("per-socket TCP congestion control is not supported on this system")

// Resolve turns the --tcp-congestion value into the name to set on data connections: "" (the
// default) means DefaultCongestion when the kernel offers it and lets a socket use it, else the
// system default, explained by note (one log line); "system" keeps the system default; any
// other name must work on a probe socket, else err says why, naming the field.
func Resolve(want string) (name, note string, err error) {
	switch want {
	case System:
		return "", "", nil
	case "":
		if perr := probe(DefaultCongestion); perr != nil {
			return "", fmt.Sprintf("tcp congestion control %q unavailable (%v); data connections keep the system default", DefaultCongestion, perr), nil
		}
		return DefaultCongestion, "", nil
	}
	if !validName(want) {
		return "", "", fmt.Errorf("tcp-congestion: %q is not a congestion control name", want)
	}
	if perr := probe(want); perr != nil {
		return "", "", fmt.Errorf("tcp-congestion: %q: %v (available: %s)", want, perr, strings.Join(Available(), " "))
	}
	return want, "", nil
}

// validName: lower-case letters, digits, '_' and '-', at most 15 bytes (TCP_CA_NAME_MAX).
func validName(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// SetCongestion sets the congestion control of c's socket (a *net.TCPConn, or a *tls.Conn over
// one). An empty name does nothing. Other connection types return ErrUnsupported.
func SetCongestion(c net.Conn, name string) error {
	if name == "" {
		return nil
	}
	rc, err := rawConn(c)
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setCongestion(int(fd), name) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set TCP_CONGESTION %q: %w", name, serr)
	}
	return nil
}

// Congestion returns the congestion control c's socket uses.
func Congestion(c net.Conn) (string, error) {
	rc, err := rawConn(c)
	if err != nil {
		return "", err
	}
	var (
		name string
		gerr error
	)
	if err := rc.Control(func(fd uintptr) { name, gerr = getCongestion(int(fd)) }); err != nil {
		return "", err
	}
	return name, gerr
}

func rawConn(c net.Conn) (syscall.RawConn, error) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T: %w", c, ErrUnsupported)
	}
	return sc.SyscallConn()
}
