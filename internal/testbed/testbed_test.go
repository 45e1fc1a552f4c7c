package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// servePeer listens on addr:port inside h (from the test process) and answers each connection
// with the peer address it sees, then closes it.
func servePeer(t *testing.T, h *Host, addr netip.Addr, port uint16) netip.AddrPort {
	t.Helper()
	ap := netip.AddrPortFrom(addr, port)
	ln, err := h.Listen(context.Background(), "tcp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s", c.RemoteAddr())
			c.Close()
		}
	}()
	return ap
}

// peerSeen connects from h to ap and returns the peer address the server reported.
func peerSeen(ctx context.Context, h *Host, ap netip.AddrPort) (netip.Addr, error) {
	c, err := h.Dial(ctx, "tcp", ap.String())
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return netip.Addr{}, err
	}
	seen, err := netip.ParseAddrPort(string(b))
	return seen.Addr().Unmap(), err
}

// mustBlackhole asserts that connecting from h to ap times out (dropped) rather than failing fast.
func mustBlackhole(t *testing.T, h *Host, ap netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	c, err := h.Dial(ctx, "tcp", ap.String())
	if err == nil {
		c.Close()
		t.Fatalf("%s → %s: connected, want a timeout", h, ap)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s → %s: %v after %v, want a timeout (dropped, not refused)", h, ap, err, time.Since(start))
	}
}

func needBin(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed", b)
			}
			t.Skipf("%s not installed", b)
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func TestLinkBothWays(t *testing.T) {
	t.Parallel()
	needBin(t, "curl", "/usr/bin/python3")
	b := New(t)
	a, c := b.Host("a"), b.Host("c")
	addrA, addrC := b.Link(a, c, LinkOpts{IPv6: true, CDefaultViaA: true})
	ctx := t.Context()
	for _, gw := range []netip.Addr{addrA, a.Iface(c).Addr6} {
		out, err := c.Exec(ctx, "ip", ipFamily(gw), "route", "show", "default")
		if err != nil || !strings.Contains(string(out), "default via "+gw.String()+" ") {
			t.Errorf("default route of c: %q, %v; want via %v", out, err, gw)
		}
	}

	for _, tc := range []struct {
		from, to *Host
		fromAddr netip.Addr
		toAddr   netip.Addr
	}{
		{a, c, addrA, addrC},
		{c, a, addrC, addrA},
		{a, c, a.Iface(c).Addr6, c.Iface(a).Addr6},
		{c, a, c.Iface(a).Addr6, a.Iface(c).Addr6},
	} {
		ap := servePeer(t, tc.to, tc.toAddr, 8000)
		seen, err := peerSeen(ctx, tc.from, ap)
		if err != nil {
			t.Fatalf("%s → %s: %v", tc.from, ap, err)
		}
		if seen != tc.fromAddr {
			t.Errorf("%s → %s: server saw %v, want %v", tc.from, ap, seen, tc.fromAddr)
		}
	}

	// The same through subprocesses: an HTTP server in c, curl in a.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.txt"), []byte("hello from c\n"), 0o644)
	srv := c.Start(t, "/usr/bin/python3", "-u", "-m", "http.server", "--bind", addrC.String(), "--directory", dir, "8080")
	if err := srv.WaitOutput(ctx, "Serving HTTP"); err != nil {
		t.Fatal(err)
	}
	out, err := a.Exec(ctx, "curl", "-sS", "--connect-timeout", "2", "-m", "5", fmt.Sprintf("http://%s:8080/x.txt", addrC))
	if err != nil || string(out) != "hello from c\n" {
		t.Fatalf("curl: %q, %v", out, err)
	}
	// The bed has no way out: a listener in the machine's own namespace, on its own address, is
	// unreachable from a host. (The other direction proves nothing where the machine's network
	// accepts every connect, as behind a transparent proxy.)
	if out := machineAddr(); out.IsValid() {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(out, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if c, err := a.Dial(ctx, "tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Errorf("host %s reached %s in the machine's namespace", a, ln.Addr())
		}
	}
}

// machineAddr is a non-loopback IPv4 address of the machine's own namespace, if it has one.
func machineAddr() netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

func TestFirewallDropsAllButOpenPorts(t *testing.T) {
	t.Parallel()
	needBin(t, "curl")
	b := New(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	cliAddr, srvAddr := b.Link(cli, srv, LinkOpts{})
	srv.Firewall(Firewall{InboundTCP: []PortRange{Port(21), Ports(30000, 30009)}})
	open21 := servePeer(t, srv, srvAddr, 21)
	open30005 := servePeer(t, srv, srvAddr, 30005)
	blocked := servePeer(t, srv, srvAddr, 2121)

	for _, ap := range []netip.AddrPort{open21, open30005} {
		if _, err := peerSeen(t.Context(), cli, ap); err != nil {
			t.Fatalf("allowed port: %v", err)
		}
	}
	mustBlackhole(t, cli, blocked)
	// curl says the same: exit 28 (timeout), not 7 (refused).
	start := time.Now()
	_, err := cli.Exec(t.Context(), "curl", "-sS", "--connect-timeout", "2", fmt.Sprintf("telnet://%s", blocked))
	if code := exitCode(err); code != 28 || time.Since(start) > 4*time.Second {
		t.Fatalf("curl to blocked port: exit %d after %v (%v), want 28 (timeout) after ~2s", code, time.Since(start), err)
	}
	// Outbound is not filtered: the server reaches the client.
	if _, err := peerSeen(t.Context(), srv, servePeer(t, cli, cliAddr, 2121)); err != nil {
		t.Fatalf("outbound from firewalled host: %v", err)
	}
	// Replacing the rules opens the port; clearing them too.
	srv.Firewall(Firewall{InboundTCP: []PortRange{Port(2121)}})
	if _, err := peerSeen(t.Context(), cli, blocked); err != nil {
		t.Fatalf("after opening 2121: %v", err)
	}
	srv.Firewall(Firewall{DropAllInbound: true, InboundTCP: []PortRange{Port(2121)}})
	mustBlackhole(t, cli, blocked)
	srv.ClearFirewall()
	if _, err := peerSeen(t.Context(), cli, blocked); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
}

func TestClientBehindNAT(t *testing.T) {
	t.Parallel()
	b := New(t)
	cli, rtr, srv := b.Host("cli"), b.Host("rtr"), b.Host("srv")
	n := b.NAT(cli, rtr, srv)

	seen, err := peerSeen(t.Context(), cli, servePeer(t, srv, n.OutsideAddr, 21))
	if err != nil {
		t.Fatal(err)
	}
	if seen != n.RouterOutside {
		t.Fatalf("server saw the client as %v, want the router's %v", seen, n.RouterOutside)
	}
	// From outside, the client's private address is unreachable: at once without a route ...
	private := servePeer(t, cli, n.InsideAddr, 2020)
	if _, err := peerSeen(t.Context(), srv, private); err == nil {
		t.Fatal("server reached the client's private address")
	}
	// ... and dropped by the router with one.
	srv.DefaultVia(n.RouterOutside)
	mustBlackhole(t, srv, private)
}

func TestServerBehindNATPortForward(t *testing.T) {
	t.Parallel()
	b := New(t)
	srv, rtr, cli := b.Host("srv"), b.Host("rtr"), b.Host("cli")
	n := b.NAT(srv, rtr, cli)
	n.Forward("tcp", Port(21))
	n.Forward("tcp", Ports(30000, 30009))
	servePeer(t, srv, n.InsideAddr, 21)
	servePeer(t, srv, n.InsideAddr, 30009)

	for _, port := range []uint16{21, 30009} {
		seen, err := peerSeen(t.Context(), cli, netip.AddrPortFrom(n.RouterOutside, port))
		if err != nil {
			t.Fatalf("port %d via the router: %v", port, err)
		}
		if seen != n.OutsideAddr {
			t.Errorf("port %d: server saw %v, want the client's %v", port, seen, n.OutsideAddr)
		}
	}
	// The server's outbound connections are masqueraded.
	seen, err := peerSeen(t.Context(), srv, servePeer(t, cli, n.OutsideAddr, 2020))
	if err != nil || seen != n.RouterOutside {
		t.Fatalf("outbound from the server: seen as %v (%v), want %v", seen, err, n.RouterOutside)
	}
	// The private address the server would announce in PASV is a black hole for the client.
	cli.DefaultVia(n.RouterOutside)
	mustBlackhole(t, cli, netip.AddrPortFrom(n.InsideAddr, 30009))
}

const ftpContent = "ferry over the wall\n"

// startVsftpd runs vsftpd in srv on addr:21, anonymous read-only, passive ports 30000-30009, and
// waits until client gets its banner. It returns the URL of a file holding ftpContent.
func startVsftpd(t *testing.T, srv *Host, addr netip.Addr, client *Host) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "pub")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil { // vsftpd drops to user ftp inside the chroot
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file.txt"), []byte(ftpContent), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/var/run/vsftpd/empty", 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "vsftpd.conf")
	err := os.WriteFile(conf, []byte(strings.Join([]string{
		"listen=YES", "listen_ipv6=NO", "background=NO", "listen_address=" + addr.String(),
		"anonymous_enable=YES", "no_anon_password=YES", "anon_root=" + root, "local_enable=NO", "write_enable=NO",
		"pasv_enable=YES", "pasv_min_port=30000", "pasv_max_port=30009", "port_enable=YES", "connect_from_port_20=YES",
		"seccomp_sandbox=NO", "isolate_network=NO", "secure_chroot_dir=/var/run/vsftpd/empty",
		"syslog_enable=NO", "xferlog_enable=YES", "vsftpd_log_file=" + filepath.Join(dir, "vsftpd.log"),
	}, "\n")+"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	vs := srv.Start(t, "vsftpd", conf)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "vsftpd.log"))
			t.Logf("vsftpd.log:\n%s", log)
		}
	})
	waitBanner(t, client, netip.AddrPortFrom(addr, 21), vs)
	return fmt.Sprintf("ftp://%s/file.txt", addr)
}

// curlFTP fetches url with curl in h (bounded: 3 s to connect, 8 s in all).
func curlFTP(t *testing.T, h *Host, url string, args ...string) (string, time.Duration, error) {
	start := time.Now()
	args = append([]string{"-sS", "--connect-timeout", "3", "-m", "8"}, append(args, url)...)
	out, err := h.Exec(t.Context(), "curl", args...)
	return string(out), time.Since(start), err
}

// TestVsftpdPassiveBlockedByFirewall is issue cases 2/3: a server firewall that opens only port
// 21 lets the control connection through but drops passive data connections; active mode works.
func TestVsftpdPassiveBlockedByFirewall(t *testing.T) {
	t.Parallel()
	needBin(t, "vsftpd", "curl")
	b := New(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	cliAddr, srvAddr := b.Link(cli, srv, LinkOpts{})
	srv.Firewall(Firewall{InboundTCP: []PortRange{Port(21)}})
	url := startVsftpd(t, srv, srvAddr, cli)

	out, took, err := curlFTP(t, cli, url, "-v", "--ftp-pasv")
	if err == nil {
		t.Fatalf("passive through a port-21-only firewall worked: %q", out)
	}
	if !strings.Contains(out, "229 Entering Extended Passive Mode") && !strings.Contains(out, "227 Entering Passive Mode") {
		t.Fatalf("passive: the control connection did not get as far as EPSV/PASV:\n%s", out)
	}
	t.Logf("passive failed as expected after %v (curl exit %d)", took.Round(time.Millisecond), exitCode(err))

	out, took, err = curlFTP(t, cli, url, "-P", cliAddr.String())
	if err != nil || out != ftpContent {
		t.Fatalf("active: %q, %v", out, err)
	}
	t.Logf("active worked in %v", took.Round(time.Millisecond))

	for _, fw := range []Firewall{
		{InboundTCP: []PortRange{Port(21)}, FTPHelperPorts: []uint16{21}},
		{InboundTCP: []PortRange{Port(21), Ports(30000, 30009)}},
	} {
		srv.Firewall(fw)
		if out, _, err := curlFTP(t, cli, url, "--ftp-pasv"); err != nil || out != ftpContent {
			t.Fatalf("passive with firewall %+v: %q, %v", fw, out, err)
		}
	}
}

// TestVsftpdClientBehindNAT: behind a NAT, active mode announces the client's private address
// and fails, unless the router has an FTP ALG; passive works either way.
func TestVsftpdClientBehindNAT(t *testing.T) {
	t.Parallel()
	needBin(t, "vsftpd", "curl")
	b := New(t)
	cli, rtr, srv := b.Host("cli"), b.Host("rtr"), b.Host("srv")
	n := b.NAT(cli, rtr, srv)
	url := startVsftpd(t, srv, n.OutsideAddr, cli)

	if out, _, err := curlFTP(t, cli, url, "--ftp-pasv"); err != nil || out != ftpContent {
		t.Fatalf("passive from behind NAT: %q, %v", out, err)
	}
	out, took, err := curlFTP(t, cli, url, "-v", "-P", "-")
	if err == nil {
		t.Fatalf("active from behind NAT without ALG worked: %q", out)
	}
	if !strings.Contains(out, "PORT "+strings.ReplaceAll(n.InsideAddr.String(), ".", ",")) &&
		!strings.Contains(out, "EPRT |1|"+n.InsideAddr.String()) {
		t.Fatalf("active: curl did not announce its private address:\n%s", out)
	}
	t.Logf("active without ALG failed as expected after %v (curl exit %d)", took.Round(time.Millisecond), exitCode(err))

	rtr.FTPALG(21)
	if out, _, err := curlFTP(t, cli, url, "-P", "-"); err != nil || out != ftpContent {
		t.Fatalf("active from behind NAT with ALG: %q, %v", out, err)
	}
}

// waitBanner waits until an FTP server at ap greets a client from h.
func waitBanner(t *testing.T, h *Host, ap netip.AddrPort, p *Proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		c, err := h.Dial(ctx, "tcp", ap.String())
		cancel()
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line := make([]byte, 3)
			_, err = io.ReadFull(c, line)
			c.Close()
			if err == nil && string(line) == "220" {
				return
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("%s exited: %v\n%s", p, p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no FTP banner from %s: %v", ap, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUnixSocketAcrossNamespaces(t *testing.T) {
	t.Parallel()
	needBin(t, "/usr/bin/python3")
	b := New(t)
	h := b.Host("agent")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	const server = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(os.readlink("/proc/self/ns/net").encode() + b" " + c.recv(100)); c.close()
`
	p := h.Start(t, "/usr/bin/python3", "-c", server, sock)
	if err := p.WaitOutput(t.Context(), "ready"); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("unix", sock, 2*time.Second) // from the test process, in the machine's namespace
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	theirNS, msg, _ := strings.Cut(string(reply), " ")
	ourNS, _ := os.Readlink("/proc/self/ns/net")
	if msg != "ping" || theirNS == ourNS {
		t.Fatalf("reply %q from namespace %s; ours is %s", msg, theirNS, ourNS)
	}
}

func TestCleanupRemovesEverything(t *testing.T) {
	t.Parallel()
	var names []string
	var pid int
	var id string
	t.Run("bed", func(t *testing.T) {
		b := New(t)
		id = b.ID()
		x, y := b.Host("x"), b.Host("y")
		b.Link(x, y, LinkOpts{IPv6: true, RateMbit: 50})
		x.Firewall(Firewall{})
		b.NAT(b.Host("in"), b.Host("rtr"), y)
		pid = x.Start(t, "sleep", "600").Pid()
		for _, h := range b.Hosts() {
			names = append(names, h.NS)
		}
	})
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s survived its bed:\n%s", ns, out)
		}
		if _, err := os.Stat(filepath.Join(etcDir, ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/%s survived its bed: %v", etcDir, ns, err)
		}
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d survived its bed: %v", pid, err)
	}
	if _, err := os.Stat(filepath.Join(ownerDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner file of bed %s survived: %v", id, err)
	}
}

func TestSweepStale(t *testing.T) {
	t.Parallel()
	Require(t)
	// A namespace of a bed whose owner file is gone, as after a killed test binary.
	ns := nsPrefix + "zz" + strconv.Itoa(os.Getpid()%1000) + "-stale"
	if err := exec.Command("ip", "netns", "add", ns).Run(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNS(ns) })
	p := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		if slices.Contains(strings.Fields(string(out)), strconv.Itoa(p.Process.Pid)) {
			break // sleep runs in the namespace
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep never showed up in %s", ns)
		}
	}
	sweepStale(t)
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s not swept: %v", ns, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("process in the stale namespace not killed")
		p.Process.Kill()
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := New(t)
	a, c := b.Host("a"), b.Host("c")
	_, addrC := b.Link(a, c, LinkOpts{RateMbit: 20})
	ln, err := c.Listen(t.Context(), "tcp", netip.AddrPortFrom(addrC, 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	conn, err := a.Dial(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 1 << 20 // 0.42 s at 20 Mbit/s
	start := time.Now()
	conn.SetDeadline(start.Add(10 * time.Second))
	if _, err := conn.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, conn) // until the server has read everything and closed
	took := time.Since(start)
	mbit := float64(size*8) / took.Seconds() / 1e6
	t.Logf("1 MiB in %v: %.1f Mbit/s", took.Round(time.Millisecond), mbit)
	if mbit > 25 || mbit < 10 {
		t.Errorf("rate %.1f Mbit/s through a 20 Mbit/s link", mbit)
	}
}

func TestWAN(t *testing.T) {
	t.Parallel()
	b := New(t)
	a, c := b.Host("a"), b.Host("c")
	l := b.WANLink(a, c, WANOpts{RTT: 40 * time.Millisecond, RateMbit: 40})
	ap := servePeer(t, c, l.AddrC, 9000)
	var best time.Duration
	for range 3 {
		start := time.Now()
		conn, err := a.Dial(t.Context(), "tcp", ap.String())
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if best == 0 || took < best {
			best = took
		}
	}
	t.Logf("TCP connect over a 40 ms WAN: %v", best.Round(time.Millisecond))
	if best < 39*time.Millisecond || best > 150*time.Millisecond {
		t.Errorf("connect took %v, want about 40 ms", best)
	}

	// The rate cap: 3 MiB through a 40 Mbit/s link, after a warm-up that opens the window. The
	// link is a user-space forwarder in this (race-instrumented) process: on a loaded machine it
	// may get too little CPU to carry the rate, so the floor is on the best of up to 3 runs, and
	// the cap holds on every run.
	sink, err := c.Listen(t.Context(), "tcp", netip.AddrPortFrom(l.AddrC, 9002).String())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	measure := func() float64 {
		conn, err := a.Dial(t.Context(), "tcp", sink.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := conn.Write(make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		const size = 3 << 20
		start := time.Now()
		if _, err := conn.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		conn.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, conn) // until the server has read everything and closed
		took := time.Since(start)
		mbit := float64(size*8) / took.Seconds() / 1e6
		t.Logf("3 MiB in %v: %.1f Mbit/s", took.Round(time.Millisecond), mbit)
		return mbit
	}
	var bestRate float64
	for range 3 {
		mbit := measure()
		if mbit > 42 {
			t.Fatalf("rate %.1f Mbit/s through a 40 Mbit/s link", mbit)
		}
		bestRate = max(bestRate, mbit)
		if bestRate >= 20 {
			break
		}
	}
	if bestRate < 20 {
		t.Errorf("rate at best %.1f Mbit/s through a 40 Mbit/s link in 3 runs, want at least 20", bestRate)
	}
}

// TestWANLoss sends datagrams through a link that drops 5% of them and counts what arrives.
func TestWANLoss(t *testing.T) {
	t.Parallel()
	b := New(t)
	a, c := b.Host("a"), b.Host("c")
	l := b.WANLink(a, c, WANOpts{RTT: 2 * time.Millisecond, LossPct: 5})
	pc, err := c.ListenPacket(t.Context(), "udp", netip.AddrPortFrom(l.AddrC, 9001).String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.(*net.UDPConn).SetReadBuffer(8 << 20)
	got := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for {
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	conn, err := a.Dial(t.Context(), "udp", netip.AddrPortFrom(l.AddrC, 9001).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = 4000
	for i := range sent {
		if _, err := conn.Write(make([]byte, 200)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(2 * time.Millisecond) // stay clear of socket buffer drops
		}
	}
	n := <-got
	loss := 100 * float64(sent-n) / sent
	ab, _ := l.Stats()
	t.Logf("%d of %d datagrams arrived: %.2f%% lost (link: %+v)", n, sent, loss, ab)
	if loss < 3.5 || loss > 6.5 {
		t.Errorf("lost %.2f%%, want about 5%%", loss)
	}
	if ab.Overflow != 0 {
		t.Errorf("link overflowed %d packets with no rate limit", ab.Overflow)
	}
}
