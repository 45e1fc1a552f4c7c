// Package wan is `make bench-wan`: Ferry against the FTP tools users would otherwise pick, over
// a wide-area link (testbed.WANLink between two network namespaces), measured side by side in
// one run and printed as one table. It needs root, vsftpd, curl and lftp. CI builds it and never
// runs it (a benchmark, not a test).
//
// Both hosts default to CUBIC (the root namespace allows it first), as most servers do; Ferry
// sets TCP_CONGESTION on its own data sockets (ferry-agent --tcp-congestion, BBR by default), so
// two pairs of agents run side by side: one with default flags, one with --tcp-congestion cubic.
// Rows:
//   - raw TCP: one socket on CUBIC, and one socket with BBR set on it (the ceiling).
//   - vsftpd + curl, lftp pget -n 8 (downloads), lftp put (uploads), lftp mirror --parallel=4.
//   - Ferry agent to agent: "Ferry, 1 stream, CUBIC" (the cubic pair, one stream), "Ferry,
//     1 stream, BBR" (default flags, one stream) and "Ferry defaults" (default flags, parallel
//     streams as the agent chooses): the target row.
//
// The single-stream CUBIC rows crawl at about 0.6 MiB/s (0.1% loss at 100 ms RTT: about 100 s
// each). FERRY_BENCH_CUBIC_MIB (default 64) makes them move less, for a quick look only: their
// first seconds, before losses pull CUBIC's window down, are far faster than the rest (16 MiB
// took 2.0 s where 64 MiB took 98 s), so a smaller size overstates their rate; the rows then
// name their size.
// FERRY_BENCH_CASES=link measures one raw BBR socket at 32, 64 and 256 MiB with the hosts'
// default send buffer limit and with a larger one (see docs/performance.md: the ceiling).
package wan

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

const (
	bigSize    = 64 << 20
	smallFiles = 500
	smallSize  = 4 << 10
	grpcPort   = 7070
	ftpPort    = 2121
	runLimit   = 4 * time.Minute // any one measurement
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// row is one measurement.
type row struct {
	section, name string
	took          time.Duration
	amount        float64 // bytes or files
	files         bool
	err           error
}

func (r row) rate() float64 {
	if r.err != nil || r.took <= 0 {
		return 0
	}
	if r.files {
		return r.amount / r.took.Seconds()
	}
	return r.amount / r.took.Seconds() / (1 << 20)
}

// BenchmarkWAN runs the whole table once, whatever b.N (use -benchtime 1x).
func BenchmarkWAN(b *testing.B) {
	for _, bin := range []string{testftp.Binary, "curl", "lftp"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("%s is not installed", bin)
		}
	}
	cubicSize := cubicBytes(b)
	benchCases = os.Getenv("FERRY_BENCH_CASES")
	hideBenchEnv(b)
	bed := testbed.New(b)
	binDir := testbin.Dir(b)
	cli, srv := bed.Host("fs-cli"), bed.Host("fs-srv")
	big := testbed.WANOpts{RTT: 100 * time.Millisecond, LossPct: 0.1, RateMbit: 200}
	link := bed.WANLink(cli, srv, big)
	allowCubic(b)
	for _, h := range []*testbed.Host{cli, srv} {
		setCC(b, h, "cubic")
	}

	// Two pairs of agents: default flags (BBR on their data sockets), and --tcp-congestion cubic.
	a := startAgent(b, cli, binDir, 0)
	s := startAgent(b, srv, binDir, 0)
	ac := startAgent(b, cli, binDir, 1, "--tcp-congestion", "cubic")
	sc := startAgent(b, srv, binDir, 1, "--tcp-congestion", "cubic")
	v := testftp.StartVsftpdCmd(b, testftp.Options{
		ListenAddr: "0.0.0.0", Host: link.AddrC.String(), Port: 21, PasvMin: 30000, PasvMax: 30009, Dial: srv.Dial,
	}, []string{"ip", "netns", "exec", srv.NS})
	data := randomBytes(b, bigSize)
	for _, p := range []string{filepath.Join(s.root, "big.bin"), filepath.Join(sc.root, "big.bin"), v.Local(v.Pub + "/big.bin"),
		filepath.Join(a.root, "up.bin"), filepath.Join(ac.root, "up.bin")} {
		must(b, os.WriteFile(p, data, 0o644))
	}
	must(b, os.WriteFile(filepath.Join(sc.root, "small.bin"), data[:cubicSize], 0o644))
	must(b, os.WriteFile(filepath.Join(ac.root, "small.bin"), data[:cubicSize], 0o644))
	for _, d := range []string{filepath.Join(s.root, "tree"), filepath.Join(sc.root, "tree"), v.Local(v.Pub + "/tree")} {
		makeTree(b, d)
	}
	srvURL := fmt.Sprintf("ftp://%s", net.JoinHostPort(link.AddrC.String(), "21"))
	work := b.TempDir()
	must(b, os.Chmod(work, 0o777))

	var rows []row
	add := func(r row) {
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "bench-wan: %s / %s: %v\n", r.section, r.name, r.err)
		} else {
			fmt.Fprintf(os.Stderr, "bench-wan: %s / %s: %v\n", r.section, r.name, r.took.Round(time.Millisecond))
		}
		rows = append(rows, r)
	}
	b.ResetTimer()

	// 64 MiB down (server to client) and up, at 100 ms RTT, 0.1% loss, 200 Mbit/s.
	cubicName := func(s string) string {
		if cubicSize == bigSize {
			return s
		}
		return fmt.Sprintf("%s (%d MiB: overstated)", s, cubicSize>>20)
	}
	for _, dir := range []string{"download", "upload"} {
		if !wanted(dir) {
			continue
		}
		sec := "64 MiB " + dir + ", 100 ms, 0.1% loss, 200 Mbit/s, hosts on CUBIC"
		sender, receiver, recvAddr := srv, cli, link.AddrA
		if dir == "upload" {
			sender, receiver, recvAddr = cli, srv, link.AddrC
		}
		add(row{section: sec, name: cubicName("raw TCP, 1 socket, CUBIC"), amount: float64(cubicSize),
			took: rawCopy(b, sender, receiver, recvAddr, "", cubicSize)})
		add(row{section: sec, name: "raw TCP, 1 socket, BBR (ceiling)", amount: bigSize, took: rawCopy(b, sender, receiver, recvAddr, "bbr", bigSize)})
		if dir == "download" {
			add(timed(sec, "vsftpd + curl", bigSize, func(ctx context.Context) error {
				_, err := cli.Exec(ctx, "curl", "-sS", "--fail", "-o", "/dev/null", ftpURL(srvURL, v, "big.bin"))
				return err
			}))
			add(timed(sec, "vsftpd + lftp pget -n 8", bigSize, func(ctx context.Context) error {
				out := filepath.Join(work, "pget")
				must(b, os.MkdirAll(out, 0o755))
				defer os.RemoveAll(out)
				return lftp(ctx, cli, srvURL, v, fmt.Sprintf("pget -n 8 -O %s %s/big.bin", out, v.Pub))
			}))
		} else {
			add(timed(sec, "vsftpd + curl", bigSize, func(ctx context.Context) error {
				_, err := cli.Exec(ctx, "curl", "-sS", "--fail", "-T", filepath.Join(a.root, "up.bin"), ftpURL(srvURL, v, "up-curl.bin"))
				return err
			}))
			add(timed(sec, "vsftpd + lftp put", bigSize, func(ctx context.Context) error {
				return lftp(ctx, cli, srvURL, v, fmt.Sprintf("put -O %s %s -o up-lftp.bin", v.Pub, filepath.Join(a.root, "up.bin")))
			}))
		}
		n := 0
		ferry := func(name string, client, server *agent, file string, size int, streams int32) {
			n++
			src, dst := server.url(file), fmt.Sprintf("in/%d/", n)
			if dir == "upload" {
				src, dst = file, server.url(fmt.Sprintf("in/%d/", n))
			}
			var tr *ferryv1.Transfer
			r := timed(sec, name, float64(size), func(ctx context.Context) error {
				var err error
				tr, err = client.copy(ctx, src, dst, streams)
				return err
			})
			if tr != nil && streams == 0 {
				r.name += fmt.Sprintf(" [%d streams]", tr.GetStreams())
			}
			add(r)
		}
		small, full := "small.bin", "big.bin"
		if dir == "upload" {
			full = "up.bin"
		}
		ferry(cubicName("Ferry, 1 stream, CUBIC"), ac, sc, small, cubicSize, 1)
		ferry("Ferry, 1 stream, BBR (default cc)", a, s, full, bigSize, 1)
		ferry("Ferry defaults", a, s, full, bigSize, 0)
	}

	// Parallel streams, default flags (BBR), 1 to 8 (FERRY_BENCH_CASES=streams).
	if benchCases != "" && wanted("streams") {
		sec := "64 MiB download, 100 ms, 0.1% loss, 200 Mbit/s, Ferry default flags (BBR)"
		for _, n := range []int32{1, 2, 4, 8} {
			add(timed(sec, fmt.Sprintf("Ferry, %d streams", n), bigSize, func(ctx context.Context) error {
				_, err := a.copy(ctx, s.url("big.bin"), fmt.Sprintf("sweep%d/", n), n)
				return err
			}))
		}
	}

	// One raw BBR socket at three sizes, with the hosts' default send buffer limit and with a
	// larger one (FERRY_BENCH_CASES=link): startup against steady state, and what limits it.
	if benchCases != "" && wanted("link") {
		def := tcpWmem(b, srv)
		for _, wmem := range []string{def, "4096 16384 33554432"} {
			f := strings.Fields(wmem)
			sec := fmt.Sprintf("raw TCP, 1 BBR socket, download, 100 ms, 0.1%% loss, 200 Mbit/s; tcp_wmem max %s MiB", mib(f[len(f)-1]))
			for _, h := range []*testbed.Host{cli, srv} {
				sysctl(b, h, "net.ipv4.tcp_wmem", wmem)
			}
			var took [3]time.Duration
			for i, size := range []int{32 << 20, 64 << 20, 256 << 20} {
				ac0, ca0 := link.Stats() // a is cli, c is srv
				q0 := tunDrops(b, srv)
				took[i] = rawCopy(b, srv, cli, link.AddrA, "bbr", size)
				ac1, ca1 := link.Stats()
				fmt.Fprintf(os.Stderr, "bench-wan: link, %d MiB: srv>cli %d packets, %d lost, %d overflowed, %d dropped by the TUN queue; cli>srv %d packets, %d lost, %d overflowed\n",
					size>>20, ca1.Packets-ca0.Packets, ca1.Lost-ca0.Lost, ca1.Overflow-ca0.Overflow, tunDrops(b, srv)-q0,
					ac1.Packets-ac0.Packets, ac1.Lost-ac0.Lost, ac1.Overflow-ac0.Overflow)
				add(row{section: sec, name: fmt.Sprintf("%d MiB", size>>20), amount: float64(size), took: took[i]})
			}
			add(row{section: sec, name: "steady state: (256 - 64 MiB) / time difference", amount: 192 << 20, took: took[2] - took[1]})
		}
		for _, h := range []*testbed.Host{cli, srv} {
			sysctl(b, h, "net.ipv4.tcp_wmem", def)
		}
	}
	if !wanted("files") {
		b.StopTimer()
		printTable(rows)
		return
	}
	// 500 files of 4 KiB down, at 50 ms RTT.
	link.SetOpts(testbed.WANOpts{RTT: 50 * time.Millisecond, RateMbit: 200})
	sec := fmt.Sprintf("%d x 4 KiB files download, 50 ms, 200 Mbit/s, hosts on CUBIC", smallFiles)
	add(timed(sec, "vsftpd + lftp mirror --parallel=4", smallFiles, func(ctx context.Context) error {
		out := filepath.Join(work, "mirror")
		defer os.RemoveAll(out)
		return lftp(ctx, cli, srvURL, v, fmt.Sprintf("mirror --parallel=4 %s/tree %s", v.Pub, out))
	}))
	rows[len(rows)-1].files = true
	for i, p := range []struct {
		name   string
		client *agent
		server *agent
	}{{"Ferry defaults", a, s}, {"Ferry, --tcp-congestion cubic", ac, sc}} {
		r := timed(sec, p.name, smallFiles, func(ctx context.Context) error {
			_, err := p.client.copy(ctx, p.server.url("tree"), fmt.Sprintf("trees/%d/", i), 0)
			return err
		})
		r.files = true
		add(r)
	}
	b.StopTimer()
	printTable(rows)
}

// cubicBytes is FERRY_BENCH_CUBIC_MIB in bytes: the size the single-stream CUBIC rows move
// (default and at most the big file's 64 MiB).
func cubicBytes(b *testing.B) int {
	v := os.Getenv("FERRY_BENCH_CUBIC_MIB")
	if v == "" {
		return bigSize
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > bigSize>>20 {
		b.Fatalf("FERRY_BENCH_CUBIC_MIB: want 1 to %d, got %q", bigSize>>20, v)
	}
	return n << 20
}

// wanted reports whether FERRY_BENCH_CASES (a comma-separated list of download, upload, files,
// streams, link) selects the case; unset selects all but streams and link.
func wanted(c string) bool {
	return benchCases == "" || slices.Contains(strings.Split(benchCases, ","), c)
}

// benchCases is FERRY_BENCH_CASES, read before hideBenchEnv.
var benchCases string

// hideBenchEnv unsets the FERRY_BENCH_* variables for the benchmark's duration: the agents it
// starts inherit the environment and would warn about FERRY_* variables that name no flag.
func hideBenchEnv(b *testing.B) {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FERRY_BENCH_") {
			os.Unsetenv(k)
			b.Cleanup(func() { os.Setenv(k, v) })
		}
	}
}

// linkMiBs is the 64 MiB cases' link rate, 200 Mbit/s, in MiB/s.
const linkMiBs = 200e6 / 8 / (1 << 20)

// printTable prints the rows, each with its ratio to the section's ceiling and to each peer.
func printTable(rows []row) {
	fmt.Printf("\n%-52s %10s %14s %8s %6s  %s\n", "case", "time", "rate", "/ceiling", "/link", "vs peers")
	last := ""
	for _, r := range rows {
		if r.section != last {
			fmt.Printf("\n%s\n", r.section)
			last = r.section
		}
		unit := "MiB/s"
		if r.files {
			unit = "files/s"
		}
		if r.err != nil {
			fmt.Printf("  %-50s failed: %v\n", r.name, r.err)
			continue
		}
		ceiling, vs := 0.0, []string{}
		for _, o := range rows {
			if o.section != r.section || o.err != nil || o.rate() == 0 {
				continue
			}
			if strings.Contains(o.name, "ceiling") {
				ceiling = o.rate()
			}
			if strings.HasPrefix(o.name, "vsftpd") && o.name != r.name && !strings.HasPrefix(r.name, "vsftpd") && !strings.HasPrefix(r.name, "raw") {
				vs = append(vs, fmt.Sprintf("%.2fx %s", r.rate()/o.rate(), strings.TrimPrefix(o.name, "vsftpd + ")))
			}
		}
		ratio, link := "-", "-"
		if ceiling > 0 {
			ratio = fmt.Sprintf("%.2f", r.rate()/ceiling)
		}
		if !r.files {
			link = fmt.Sprintf("%.2f", r.rate()/linkMiBs)
		}
		fmt.Printf("  %-50s %10v %6.2f %-7s %8s %6s  %s\n", r.name, r.took.Round(10*time.Millisecond), r.rate(), unit, ratio, link, strings.Join(vs, ", "))
	}
	fmt.Printf("\nlink rate 200 Mbit/s = %.2f MiB/s (/link); ceiling: one raw TCP socket with BBR, on the hosts' default\n", linkMiBs)
	fmt.Println("send buffer limit (tcp_wmem max 4 MiB; see docs/performance.md); Ferry moves its data sockets to BBR by default")
}

func timed(section, name string, amount float64, f func(ctx context.Context) error) row {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	return row{section: section, name: name, took: time.Since(start), amount: amount, err: err}
}

// rawCopy sends size bytes over one TCP connection from sender to a listener on receiver
// (at addr) and returns the time until the receiver had them all; cc, if set, is the sending
// socket's congestion control.
func rawCopy(b *testing.B, sender, receiver *testbed.Host, addr netip.Addr, cc string, size int) time.Duration {
	ln, err := receiver.Listen(context.Background(), "tcp", netip.AddrPortFrom(addr, 9100).String())
	must(b, err)
	defer ln.Close()
	got := make(chan time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- time.Time{}
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c)
		got <- time.Now()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	start := time.Now()
	c, err := sender.Dial(ctx, "tcp", ln.Addr().String())
	must(b, err)
	defer c.Close()
	if cc != "" {
		must(b, setSockCC(c, cc))
	}
	c.SetDeadline(time.Now().Add(runLimit))
	buf := make([]byte, 1<<20)
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatalf("raw copy: %v", err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	end := <-got
	return end.Sub(start)
}

// setSockCC sets TCP_CONGESTION on one socket (the benchmark's raw copy).
func setSockCC(c net.Conn, cc string) error {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, cc)
	})
	if err != nil {
		return err
	}
	return serr
}

// allowCubic lets namespaces choose CUBIC (and BBR): the root namespace's allowed list, put
// back when the benchmark ends.
func allowCubic(b *testing.B) {
	const key = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"
	old, err := os.ReadFile(key)
	must(b, err)
	must(b, os.WriteFile(key, []byte("reno bbr cubic"), 0o644))
	b.Cleanup(func() { _ = os.WriteFile(key, old, 0o644) })
}

// tcpWmem is h's net.ipv4.tcp_wmem (min, default and max send buffer of a TCP socket).
func tcpWmem(b *testing.B, h *testbed.Host) string {
	out, err := h.Exec(context.Background(), "sysctl", "-n", "net.ipv4.tcp_wmem")
	if err != nil {
		b.Fatalf("%s: %v %s", h, err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// tunDrops is the count of packets h's WAN device dropped before the link's forwarder read them.
func tunDrops(b *testing.B, h *testbed.Host) int64 {
	out, err := h.Exec(context.Background(), "cat", "/sys/class/net/wan0/statistics/tx_dropped")
	if err != nil {
		b.Fatalf("%s: %v %s", h, err, out)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n
}

// sysctl sets key to value inside h.
func sysctl(b *testing.B, h *testbed.Host, key, value string) {
	if out, err := h.Exec(context.Background(), "sysctl", "-qw", key+"="+value); err != nil {
		b.Fatalf("%s: %v %s", h, err, out)
	}
}

// mib prints a byte count in MiB.
func mib(bytes string) string {
	n, _ := strconv.ParseFloat(bytes, 64)
	return strconv.FormatFloat(n/(1<<20), 'f', -1, 64)
}

// setCC makes cc the default congestion control of new sockets in h.
func setCC(b *testing.B, h *testbed.Host, cc string) {
	if out, err := h.Exec(context.Background(), "sysctl", "-qw", "net.ipv4.tcp_congestion_control="+cc); err != nil {
		b.Fatalf("%s: %v %s", h, err, out)
	}
}

func ftpURL(base string, v *testftp.Server, name string) string {
	return fmt.Sprintf("ftp://%s:%s@%s%s/%s", url.QueryEscape(v.User), url.QueryEscape(v.Password), strings.TrimPrefix(base, "ftp://"), v.Pub, name)
}

// lftp runs one lftp command against vsftpd from cli, failing on any error.
func lftp(ctx context.Context, h *testbed.Host, base string, v *testftp.Server, cmd string) error {
	script := fmt.Sprintf("set cmd:fail-exit yes; set net:max-retries 2; set ftp:passive-mode on; set xfer:clobber on; open -u %s,%s %s; %s",
		v.User, v.Password, base, cmd)
	out, err := h.Exec(ctx, "lftp", "-c", script)
	if err != nil {
		return fmt.Errorf("lftp %s: %w: %s", cmd, err, out)
	}
	return nil
}

// makeTree writes smallFiles files of smallSize bytes under dir, in 10 subdirectories.
func makeTree(b *testing.B, dir string) {
	buf := randomBytes(b, smallSize)
	for i := range smallFiles {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%10))
		must(b, os.MkdirAll(d, 0o777))
		must(b, os.Chmod(d, 0o777))
		must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d.bin", i)), buf, 0o644))
	}
	must(b, os.Chmod(dir, 0o777))
}

func randomBytes(b *testing.B, n int) []byte {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return p
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// agent is a ferry-agent in a bed host, driven over gRPC from the benchmark.
type agent struct {
	root string
	addr string // gRPC, as peers reach it
	api  ferryv1.AgentServiceClient
	proc *testbed.Proc
}

// startAgent starts ferry-agent number i (0, 1, ...) of host h, on ports of its own, with extra
// flags.
func startAgent(b *testing.B, h *testbed.Host, binDir string, i int, flags ...string) *agent {
	root := b.TempDir()
	addr := h.Ifaces()[0].Addr
	port := grpcPort + i
	args := append([]string{
		"--root", root, "--state-dir", b.TempDir(),
		"--token-file", testagent.TokenFile(b), "--peer-token-file", testagent.PeerTokenFile(b),
		"--insecure", "--grpc-listen", fmt.Sprintf(":%d", port), "--ftp-listen", fmt.Sprintf(":%d", ftpPort+i),
		"--passive-ports", fmt.Sprintf("%d-%d", 30010+30*i, 30039+30*i), "--log-level", "warn"}, flags...)
	p := h.Start(b, filepath.Join(binDir, "ferry-agent"), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	must(b, p.WaitOutput(ctx, "ferry-agent ready"))
	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(testagent.AdminToken)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return h.Dial(ctx, "tcp", a) }))
	must(b, err)
	b.Cleanup(func() { conn.Close() })
	return &agent{root: root, addr: net.JoinHostPort(addr.String(), strconv.Itoa(port)), api: ferryv1.NewAgentServiceClient(conn), proc: p}
}

func (a *agent) url(p string) string { return "agent://" + a.addr + "/" + p }

// copy runs one transfer on the agent (passive mode) and waits for its end.
func (a *agent) copy(ctx context.Context, src, dst string, streams int32) (*ferryv1.Transfer, error) {
	last, err := testagent.RunTransfer(ctx, a.api, &ferryv1.StartTransferRequest{Source: src, Destination: dst, Streams: streams,
		Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	if err != nil {
		return nil, err
	}
	if last == nil || last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		return last, fmt.Errorf("transfer %s -> %s: %v %s", src, dst, last.GetState(), last.GetError())
	}
	return last, nil
}
