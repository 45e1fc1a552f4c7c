package loopback

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbin"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Settings, from the environment (a benchmark has no flags of its own):
//
//	FERRY_BENCH_SIZE   bytes of the large file (default 1 GiB; "256M" works)
//	FERRY_BENCH_FILES  number of 4 KiB files (default 10000; 0 skips that row)
//	FERRY_BENCH_DIR    where the files live (default /dev/shm when writable: the disk's fsync
//	                   speed is not what the table compares; set it to a disk path to include it)
func settings(b *testing.B) (size int64, files int, dir string) {
	size = 1 << 30
	if v := os.Getenv("FERRY_BENCH_SIZE"); v != "" {
		n, err := parseSize(v)
		if err != nil {
			b.Fatalf("FERRY_BENCH_SIZE: %v", err)
		}
		size = n
	}
	files = 10000
	if v := os.Getenv("FERRY_BENCH_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("FERRY_BENCH_FILES: want a count, got %q", v)
		}
		files = n
	}
	base := os.Getenv("FERRY_BENCH_DIR")
	if base == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			base = "/dev/shm"
		}
	}
	d, err := os.MkdirTemp(base, "ferry-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	_ = os.Chmod(d, 0o755) // vsftpd reads below it
	return size, files, d
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a size such as 1G or 256M, got %q", s)
	}
	return n * mult, nil
}

// row is one line of the table.
type row struct {
	name, dir string
	secs      float64
	units     float64 // bytes, or files for the small-files row
	files     bool
	agents    []usage // the agents' peak RSS and CPU (Ferry rows)
	peer      string  // the row the ratio column compares with
}

func (r row) rate() float64 {
	if r.files {
		return r.units / r.secs
	}
	return r.units / r.secs / (1 << 20)
}

// BenchmarkLoopback runs every case once and prints the table (run it with -benchtime 1x, as
// `make bench` does).
func BenchmarkLoopback(b *testing.B) {
	if b.N > 1 {
		b.Skip("one run per invocation: use -benchtime 1x")
	}
	for _, tool := range []string{"curl", "lftp"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not installed: apt-get install %s", tool, tool)
		}
	}
	size, nfiles, dir := settings(b)
	bin := filepath.Join(testbin.Dir(b), "ferry-agent")
	src := filepath.Join(dir, "src.bin")
	writeRandom(b, src, size)
	var rows []row

	// The ceiling: sendfile into a loopback socket, read into a file.
	secs := timed(func() error { return rawCopy(src, filepath.Join(dir, "raw.bin")) }, b)
	os.Remove(filepath.Join(dir, "raw.bin"))
	rows = append(rows, row{name: "raw socket copy", dir: "-", secs: secs, units: float64(size)})

	// vsftpd with curl and lftp (plain FTP, passive).
	v := testftp.StartVsftpd(b, testftp.Options{Dir: mkdir(b, dir, "vsftpd")})
	if err := os.Link(src, v.Local(v.Pub+"/src.bin")); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("ftp://%s%s/", v.Addr, v.Pub)
	cred := v.User + ":" + v.Password
	dl := filepath.Join(dir, "curl.bin")
	secs = timed(func() error { return run("curl", "-sS", "--ftp-pasv", "-u", cred, "-o", dl, url+"src.bin") }, b)
	os.Remove(dl)
	rows = append(rows, row{name: "vsftpd + curl", dir: "download", secs: secs, units: float64(size)})
	secs = timed(func() error { return run("curl", "-sS", "--ftp-pasv", "-u", cred, "-T", src, url+"up.bin") }, b)
	os.Remove(v.Local(v.Pub + "/up.bin"))
	rows = append(rows, row{name: "vsftpd + curl", dir: "upload", secs: secs, units: float64(size)})
	lftpDst := mkdir(b, dir, "lftp")
	secs = timed(func() error {
		return run("lftp", "-u", cred, "-e", fmt.Sprintf("set ftp:passive-mode on; pget -n 8 -O %s %s/src.bin; quit", lftpDst, v.Pub), "ftp://"+v.Addr)
	}, b)
	os.RemoveAll(lftpDst)
	rows = append(rows, row{name: "lftp pget -n 8 (vsftpd)", dir: "download", secs: secs, units: float64(size)})

	// Ferry agent to agent, each agent its own process.
	for _, fc := range []struct {
		name  string
		flags []string
	}{
		{"ferry defaults (FTPS, bbr)", nil},
		{"ferry plain FTP, bbr", []string{"--ftp-tls", "off"}},
		{"ferry 1 stream, cubic, FTPS", []string{"--tcp-congestion", "cubic"}},
		{"ferry 1 stream, cubic, plain", []string{"--tcp-congestion", "cubic", "--ftp-tls", "off"}},
	} {
		a := startAgent(b, bin, dir, "a", fc.flags)
		p := startAgent(b, bin, dir, "p", fc.flags)
		if err := os.Link(src, filepath.Join(a.root, "src.bin")); err != nil {
			b.Fatal(err)
		}
		if err := os.Link(src, filepath.Join(p.root, "src.bin")); err != nil {
			b.Fatal(err)
		}
		for _, d := range []struct{ dir, from, to string }{
			{"download", "agent://" + p.grpc + "/src.bin", "dl.bin"},
			{"upload", "src.bin", "agent://" + p.grpc + "/up.bin"},
		} {
			us := measure([]*agent{a, p}, func() error { return a.copy(d.from, d.to) }, b)
			rows = append(rows, row{name: fc.name, dir: d.dir, secs: us.secs, units: float64(size), agents: us.agents, peer: "vsftpd + curl"})
		}
		os.Remove(filepath.Join(a.root, "dl.bin"))
		os.Remove(filepath.Join(p.root, "up.bin"))
		a.stop()
		p.stop()
	}

	// Many small files: a tree pulled agent to agent vs lftp mirror from vsftpd.
	if nfiles > 0 {
		tree := v.Local(v.Pub + "/tree")
		writeTree(b, tree, nfiles)
		mdst := mkdir(b, dir, "mirror")
		secs = timed(func() error {
			return run("lftp", "-u", cred, "-e", fmt.Sprintf("set ftp:passive-mode on; mirror --parallel=4 %s/tree %s; quit", v.Pub, mdst), "ftp://"+v.Addr)
		}, b)
		rows = append(rows, row{name: "lftp mirror --parallel=4", dir: "download", secs: secs, units: float64(nfiles), files: true})
		os.RemoveAll(mdst)
		a := startAgent(b, bin, dir, "a", nil)
		p := startAgent(b, bin, dir, "p", nil)
		if err := os.Rename(tree, filepath.Join(p.root, "tree")); err != nil {
			b.Fatal(err)
		}
		us := measure([]*agent{a, p}, func() error { return a.copy("agent://"+p.grpc+"/tree", "tree") }, b)
		rows = append(rows, row{name: "ferry tree (defaults)", dir: "download", secs: us.secs, units: float64(nfiles), files: true, agents: us.agents, peer: "lftp mirror --parallel=4"})
		a.stop()
		p.stop()
	}
	printTable(os.Stdout, rows, size, nfiles)
}

func printTable(w io.Writer, rows []row, size int64, nfiles int) {
	byName := map[string]row{}
	for _, r := range rows {
		byName[r.name+"/"+r.dir] = r
	}
	raw := rows[0]
	fmt.Fprintf(w, "\nloopback, one run: %d MiB file; %d x 4 KiB files (SHA-256 end to end on every Ferry row)\n", size>>20, nfiles)
	fmt.Fprintf(w, "%-30s %-9s %9s %11s %7s %8s %8s %17s %17s\n",
		"case", "direction", "seconds", "rate", "x raw", "x curl", "x lftp", "peak RSS MiB c/s", "CPU s/GiB c/s")
	for _, r := range rows {
		unit := "MiB/s"
		if r.files {
			unit = "files/s"
		}
		xraw, xcurl, xlftp := "-", "-", "-"
		if !r.files {
			xraw = fmt.Sprintf("%.2f", r.rate()/raw.rate())
			if c, ok := byName["vsftpd + curl/"+r.dir]; ok {
				xcurl = fmt.Sprintf("%.2f", r.rate()/c.rate())
			}
			if l, ok := byName["lftp pget -n 8 (vsftpd)/"+r.dir]; ok {
				xlftp = fmt.Sprintf("%.2f", r.rate()/l.rate())
			}
		} else if l, ok := byName["lftp mirror --parallel=4/download"]; ok {
			xlftp = fmt.Sprintf("%.2f", r.rate()/l.rate())
		}
		rss, cpu := "-", "-"
		if len(r.agents) == 2 {
			rss = fmt.Sprintf("%.0f / %.0f", r.agents[0].rssMiB, r.agents[1].rssMiB)
			gib := float64(size) / (1 << 30)
			if r.files {
				gib = float64(nfiles) * 4096 / (1 << 30)
			}
			cpu = fmt.Sprintf("%.2f / %.2f", r.agents[0].cpu/gib, r.agents[1].cpu/gib)
		}
		fmt.Fprintf(w, "%-30s %-9s %9.2f %5.0f %-5s %7s %8s %8s %17s %17s\n",
			r.name, r.dir, r.secs, r.rate(), unit, xraw, xcurl, xlftp, rss, cpu)
	}
	fmt.Fprintln(w, "c/s: the agent running the transfer (client) / the peer agent serving it (server).")
}

func timed(f func() error, b *testing.B) float64 {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start).Seconds()
}

func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out)
	}
	return nil
}

func mkdir(b *testing.B, parts ...string) string {
	d := filepath.Join(parts...)
	if err := os.MkdirAll(d, 0o777); err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		b.Fatal(err)
	}
	return d
}

// writeRandom writes n pseudo-random bytes (incompressible; ChaCha8 is fast enough not to
// dominate the set-up).
func writeRandom(b *testing.B, path string, n int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	buf := make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), n-off)]
		_, _ = r.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		b.Fatal(err)
	}
}

// writeTree writes n files of 4 KiB in 100 directories.
func writeTree(b *testing.B, dir string, n int) {
	r := rand.NewChaCha8([32]byte{4, 5, 6})
	buf := make([]byte, 4096)
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%100))
		if i < 100 {
			mkdir(b, d)
		}
		_, _ = r.Read(buf)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// rawCopy sends a file over a loopback TCP connection (sendfile) into another file.
func rawCopy(src, dst string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		f, err := os.Open(src)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(c, f)
		errc <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, c); err != nil {
		return err
	}
	return <-errc
}

// agent is a ferry-agent process.
type agent struct {
	cmd  *exec.Cmd
	root string
	grpc string
	api  ferryv1.AgentServiceClient
	conn *grpc.ClientConn
	once sync.Once
}

func startAgent(b *testing.B, bin, dir, name string, flags []string) *agent {
	b.Helper()
	root, err := os.MkdirTemp(dir, name+"-root-")
	if err != nil {
		b.Fatal(err)
	}
	lo := 20000 + rand.IntN(20000)
	args := append([]string{
		"--root", root, "--state-dir", b.TempDir(),
		"--grpc-listen", "127.0.0.1:0", "--ftp-listen", "127.0.0.1:0",
		"--passive-ports", fmt.Sprintf("%d-%d", lo, lo+99),
		"--token-file", testagent.TokenFile(b), "--peer-token-file", testagent.PeerTokenFile(b),
		"--log-level", "warn",
	}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	a := &agent{cmd: cmd, root: root}
	b.Cleanup(a.stop)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ferry-agent ready ") {
				ready <- line
			}
		}
	}()
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "grpc="); ok {
				a.grpc = v
			}
		}
	case <-time.After(30 * time.Second):
		b.Fatal("ferry-agent did not start within 30s")
	}
	a.conn, err = grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(testagent.AdminToken)))
	if err != nil {
		b.Fatal(err)
	}
	a.api = ferryv1.NewAgentServiceClient(a.conn)
	return a
}

func (a *agent) stop() {
	a.once.Do(func() {
		if a.conn != nil {
			a.conn.Close()
		}
		_ = a.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-done
		}
	})
}

// copy runs one transfer on a and waits for its end.
func (a *agent) copy(from, to string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	resp, err := a.api.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: from, Destination: to})
	if err != nil {
		return err
	}
	stream, err := a.api.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: resp.GetTransfer().GetId()})
	if err != nil {
		return err
	}
	var last *ferryv1.Transfer
	for {
		msg, err := stream.Recv()
		if err != nil {
			break
		}
		last = msg.GetTransfer()
	}
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		return fmt.Errorf("transfer %s: %v: %s", from, last.GetState(), last.GetError())
	}
	if last.GetProgress().GetFilesTotal() <= 1 && last.GetSha256() == "" {
		return fmt.Errorf("transfer %s: no SHA-256", from)
	}
	return nil
}

// usage is an agent's peak RSS and CPU time over one measured transfer.
type usage struct {
	rssMiB float64
	cpu    float64 // seconds
}

type measured struct {
	secs   float64
	agents []usage
}

// measure resets the agents' peak RSS (clear_refs 5), runs f, and reads VmHWM and the CPU time
// (utime+stime) each used meanwhile.
func measure(agents []*agent, f func() error, b *testing.B) measured {
	cpu0 := make([]float64, len(agents))
	for i, a := range agents {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", a.cmd.Process.Pid), []byte("5"), 0)
		cpu0[i] = cpuSeconds(b, a.cmd.Process.Pid)
	}
	m := measured{secs: timed(f, b)}
	for i, a := range agents {
		m.agents = append(m.agents, usage{rssMiB: hwmMiB(b, a.cmd.Process.Pid), cpu: cpuSeconds(b, a.cmd.Process.Pid) - cpu0[i]})
	}
	return m
}

func hwmMiB(b *testing.B, pid int) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM for pid %d", pid)
	return 0
}

// cpuSeconds is utime+stime of pid (fields 14 and 15 of /proc/PID/stat, in clock ticks of
// 1/100 s on Linux).
func cpuSeconds(b *testing.B, pid int) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	rest := string(s)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+2:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		b.Fatalf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
