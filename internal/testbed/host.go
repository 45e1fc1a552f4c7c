package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
)

// Host is one network namespace of a bed.
type Host struct {
	Name string // as given to Bed.Host
	NS   string // the namespace, for "ip netns exec NS ..." or "ip -n NS ..."

	bed *Bed

	mu     sync.Mutex
	ifaces []Iface
	nat    natRules
}

// Iface is one end of a link, as seen from the host that owns it.
type Iface struct {
	Name     string       // interface name inside the host: eth0, eth1, … or wan0
	Peer     *Host        // the host at the other end
	Prefix   netip.Prefix // the link's IPv4 subnet
	Addr     netip.Addr   // this end's IPv4 address
	PeerAddr netip.Addr   // the other end's IPv4 address
	// IPv6, when the link has it (LinkOpts.IPv6); zero otherwise.
	Prefix6   netip.Prefix
	Addr6     netip.Addr
	PeerAddr6 netip.Addr
}

func (h *Host) String() string { return h.Name }

// Ifaces returns the host's link ends in creation order.
func (h *Host) Ifaces() []Iface {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Iface(nil), h.ifaces...)
}

// Iface returns the host's first link end toward peer; the test fails if there is none.
func (h *Host) Iface(peer *Host) Iface {
	h.bed.t.Helper()
	for _, i := range h.Ifaces() {
		if i.Peer == peer {
			return i
		}
	}
	h.bed.t.Fatalf("testbed: %s has no link to %s", h, peer)
	return Iface{}
}

func (h *Host) addIface(i Iface) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ifaces = append(h.ifaces, i)
}

// nextIfaceName names the host's next veth: eth0, eth1, …
func (h *Host) nextIfaceName() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, i := range h.ifaces {
		if i.Name != wanIface {
			n++
		}
	}
	return fmt.Sprintf("eth%d", n)
}

// Exec runs a command inside the host ("ip netns exec") and returns its combined output. A
// context without a deadline gets one of 30 s; when it ends the command's whole process group is
// killed. A non-zero exit is an error that includes the end of the output.
func (h *Host) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := output(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	if err != nil {
		err = fmt.Errorf("on %s: %w", h, err)
	}
	return out, err
}

// Route adds (or replaces) a route to dst through the gateway via.
func (h *Host) Route(dst netip.Prefix, via netip.Addr) {
	h.bed.t.Helper()
	h.bed.must(h.ip(ipFamily(via), "route", "replace", dst.Masked().String(), "via", via.String()))
}

// DefaultVia sets the host's default route (IPv4 or IPv6, as gw is) through gw.
func (h *Host) DefaultVia(gw netip.Addr) {
	h.bed.t.Helper()
	h.bed.must(h.ip(ipFamily(gw), "route", "replace", "default", "via", gw.String()))
}

func ipFamily(a netip.Addr) string {
	if a.Is4() {
		return "-4"
	}
	return "-6"
}

// ip runs "ip -n NS args..." with the default timeout.
func (h *Host) ip(args ...string) error {
	return run(context.Background(), nil, "ip", append([]string{"-n", h.NS}, args...)...)
}

// Dial connects from inside the host, from the test process itself: the socket is created in the
// host's namespace and can then be used from any goroutine. Addresses must be IP literals (there
// is no DNS in a bed); ctx bounds the connect.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if err := literal(network, address); err != nil {
		return nil, err
	}
	var conn net.Conn
	err := h.do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", h, err)
	}
	return conn, nil
}

// Listen listens inside the host, from the test process itself: the listener and the connections
// it accepts belong to the host's namespace. Addresses must be IP literals (or empty hosts).
func (h *Host) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if err := literal(network, address); err != nil {
		return nil, err
	}
	var ln net.Listener
	err := h.do(func() error {
		var lc net.ListenConfig
		var err error
		ln, err = lc.Listen(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", h, err)
	}
	return ln, nil
}

// literal refuses host names for IP networks: resolving them would happen on other threads, in
// the machine's namespace.
func literal(network, address string) error {
	switch network {
	case "unix", "unixgram", "unixpacket":
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("testbed: %q: want an IP literal, not a host name", address)
	}
	return nil
}

// do runs fn on a locked OS thread switched into the host's namespace. Sockets fn creates stay in
// that namespace. If the thread cannot switch back, it is left locked so the runtime discards it.
func (h *Host) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		target, err := os.Open(filepath.Join(netnsDir, h.NS))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", h.NS, err)
			return
		}
		ferr := fn()
		if err := setns(home); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err)) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(f *os.File) error {
	if _, _, errno := syscall.Syscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// sysctl writes /proc/sys/<key> inside the host, key as a path ("net/ipv4/ip_forward").
func (h *Host) sysctl(key, value string) error {
	err := h.do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("on %s: sysctl %s=%s: %w", h, key, value, err)
	}
	return nil
}
