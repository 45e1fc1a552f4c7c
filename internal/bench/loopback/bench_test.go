package loopback

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
//	FERRY_BENCH_REPEAT rounds (default 3): each runs every case once; the table shows each
//	                   case's fastest run and its median
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

// repeats is FERRY_BENCH_REPEAT: how many rounds run every case (default 3).
func repeats(b *testing.B) int {
	n := 3
	if v := os.Getenv("FERRY_BENCH_REPEAT"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > 20 {
			b.Fatalf("FERRY_BENCH_REPEAT: want a count from 1 to 20, got %q", v)
		}
		n = k
	}
	return n
}

// sample is one run of a case.
type sample struct {
	secs   float64
	cpu    float64 // CPU seconds of this process (raw copy, SHA-256 rows), else 0
	agents []usage // the agents' peak RSS and CPU (Ferry rows)
}

// bcase is one row of the table, run once per round.
type bcase struct {
	name, dir string
	units     float64 // bytes, or files for the small-files rows
	files     bool
	// onCPU: the row's time is its CPU time, not the wall clock (the SHA-256 row: how fast one
	// core hashes, which a busy machine's scheduler must not change).
	onCPU bool
	run   func() (sample, error)
	runs  []sample
}

// best is the fastest run (its RSS and CPU are the ones printed).
func (c *bcase) best() sample {
	s := c.runs[0]
	for _, r := range c.runs[1:] {
		if c.secs(r) < c.secs(s) {
			s = r
		}
	}
	return s
}

// secs is the run's time: wall clock, or CPU for an onCPU row.
func (c *bcase) secs(r sample) float64 {
	if c.onCPU {
		return r.cpu
	}
	return r.secs
}

// median of the runs' seconds (the upper one of an even count).
func (c *bcase) median() float64 {
	v := make([]float64, len(c.runs))
	for i, r := range c.runs {
		v[i] = c.secs(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// rate of the best run, MiB/s (files/s for the small-files rows).
func (c *bcase) rate() float64 {
	if c.files {
		return c.units / c.secs(c.best())
	}
	return c.units / c.secs(c.best()) / (1 << 20)
}

// BenchmarkLoopback runs every case FERRY_BENCH_REPEAT times, in interleaved rounds (each round
// runs every case once, so a burst of load elsewhere on the machine hits one run of several
// cases rather than every run of one), and prints one table of the best runs (run it with
// -benchtime 1x, as `make bench` does).
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
	rounds := repeats(b)
	bin := filepath.Join(testbin.Dir(b), "ferry-agent")
	src := filepath.Join(dir, "src.bin")
	writeRandom(b, src, size)
	var cases []*bcase
	add := func(c *bcase) *bcase { cases = append(cases, c); return c }
	timedRun := func(f func() error) func() (sample, error) {
		return func() (sample, error) {
			start := time.Now()
			err := f()
			return sample{secs: time.Since(start).Seconds()}, err
		}
	}

	// The ceiling: sendfile into a loopback socket; the receiver either splices into the file
	// (io.Copy from the socket into an *os.File) or reads into a 1 MiB buffer and writes it.
	// The faster of the two is the ceiling.
	rawDst := filepath.Join(dir, "raw.bin")
	rawSplice := add(&bcase{name: "raw socket: sendfile > splice", dir: "-", units: float64(size), run: func() (sample, error) {
		defer os.Remove(rawDst)
		return selfCPU(func() error { return rawCopy(src, rawDst, false) })
	}})
	rawRW := add(&bcase{name: "raw socket: sendfile > rd/wr 1M", dir: "-", units: float64(size), run: func() (sample, error) {
		defer os.Remove(rawDst)
		return selfCPU(func() error { return rawCopy(src, rawDst, true) })
	}})
	// The verification ceiling: one core hashing bytes already in memory.
	sha := add(&bcase{name: "SHA-256 in memory, 1 core (CPU s)", dir: "-", units: float64(size), onCPU: true, run: func() (sample, error) {
		return selfCPU(func() error { hashBytes(size); return nil })
	}})

	// vsftpd with curl and lftp (plain FTP, passive).
	v := testftp.StartVsftpd(b, testftp.Options{Dir: mkdir(b, dir, "vsftpd")})
	if err := os.Link(src, v.Local(v.Pub+"/src.bin")); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("ftp://%s%s/", v.Addr, v.Pub)
	cred := v.User + ":" + v.Password
	dl := filepath.Join(dir, "curl.bin")
	add(&bcase{name: "vsftpd + curl", dir: "download", units: float64(size), run: timedRun(func() error {
		defer os.Remove(dl)
		return run("curl", "-sS", "--ftp-pasv", "-u", cred, "-o", dl, url+"src.bin")
	})})
	add(&bcase{name: "vsftpd + curl", dir: "upload", units: float64(size), run: timedRun(func() error {
		defer os.Remove(v.Local(v.Pub + "/up.bin"))
		return run("curl", "-sS", "--ftp-pasv", "-u", cred, "-T", src, url+"up.bin")
	})})
	add(&bcase{name: "lftp pget -n 8 (vsftpd)", dir: "download", units: float64(size), run: timedRun(func() error {
		lftpDst := mkdir(b, dir, "lftp")
		defer os.RemoveAll(lftpDst)
		return run("lftp", "-u", cred, "-e", fmt.Sprintf("set ftp:passive-mode on; pget -n 8 -O %s %s/src.bin; quit", lftpDst, v.Pub), "ftp://"+v.Addr)
	})})

	// Ferry agent to agent, each agent its own process; every pair runs for the whole benchmark
	// (an idle agent costs nothing measurable), on passive port ranges of their own.
	ports := 20000 + 100*rand.IntN(150)
	var pairs [][2]*agent
	for _, fc := range []struct {
		name  string
		flags []string
	}{
		{"ferry defaults (FTPS, bbr)", nil},
		{"ferry plain FTP, bbr", []string{"--ftp-tls", "off"}},
		{"ferry 1 stream, cubic, FTPS", []string{"--tcp-congestion", "cubic"}},
		{"ferry 1 stream, cubic, plain", []string{"--tcp-congestion", "cubic", "--ftp-tls", "off"}},
	} {
		a := startAgent(b, bin, dir, "a", ports+200*len(pairs), fc.flags)
		p := startAgent(b, bin, dir, "p", ports+200*len(pairs)+100, fc.flags)
		pairs = append(pairs, [2]*agent{a, p})
		if err := os.Link(src, filepath.Join(a.root, "src.bin")); err != nil {
			b.Fatal(err)
		}
		if err := os.Link(src, filepath.Join(p.root, "src.bin")); err != nil {
			b.Fatal(err)
		}
		for _, d := range []struct{ dir, from, to, out string }{
			{"download", "agent://" + p.grpc + "/src.bin", "dl.bin", filepath.Join(a.root, "dl.bin")},
			{"upload", "src.bin", "agent://" + p.grpc + "/up.bin", filepath.Join(p.root, "up.bin")},
		} {
			add(&bcase{name: fc.name, dir: d.dir, units: float64(size), run: func() (sample, error) {
				defer os.Remove(d.out)
				return measure([]*agent{a, p}, func() error { return a.copy(d.from, d.to) })
			}})
		}
	}

	// Many small files: a tree pulled agent to agent vs lftp mirror from vsftpd.
	if nfiles > 0 {
		writeTree(b, v.Local(v.Pub+"/tree"), nfiles)
		a, p := pairs[0][0], pairs[0][1]
		writeTree(b, filepath.Join(p.root, "tree"), nfiles)
		add(&bcase{name: "lftp mirror --parallel=4", dir: "download", units: float64(nfiles), files: true, run: timedRun(func() error {
			mdst := filepath.Join(dir, "mirror")
			defer os.RemoveAll(mdst)
			return run("lftp", "-u", cred, "-e", fmt.Sprintf("set ftp:passive-mode on; mirror --parallel=4 %s/tree %s; quit", v.Pub, mdst), "ftp://"+v.Addr)
		})})
		add(&bcase{name: "ferry tree (defaults)", dir: "download", units: float64(nfiles), files: true, run: func() (sample, error) {
			defer os.RemoveAll(filepath.Join(a.root, "tree"))
			return measure([]*agent{a, p}, func() error { return a.copy("agent://"+p.grpc+"/tree", "tree") })
		}})
	}

	warm(b, src)
	hashBuf()
	for round := range rounds {
		for _, c := range cases {
			s, err := c.run()
			if err != nil {
				b.Fatalf("%s %s, round %d: %v", c.name, c.dir, round+1, err)
			}
			c.runs = append(c.runs, s)
		}
		fmt.Fprintf(os.Stderr, "bench: round %d of %d done\n", round+1, rounds)
	}
	raw := rawSplice
	if rawRW.rate() > raw.rate() {
		raw = rawRW
	}
	printTable(os.Stdout, cases, raw, sha, size, nfiles, rounds)
}

// bound is the most a verified copy can reach here, from measured rows: the sender and the
// receiver each hash every byte, and the bytes are copied, so per MiB the machine spends
// 2/sha core-seconds hashing plus the raw copy's CPU per MiB; with `cores` cores no transfer
// beats cores / that sum, and one stream (one hash on each side, each on one core at a time)
// never beats the hash rate itself.
func bound(raw, sha *bcase, cores int) (rate, copyCPU float64) {
	copyCPU = raw.best().cpu / (raw.units / (1 << 20)) // core-seconds per MiB
	return min(sha.rate(), float64(cores)/(2/sha.rate()+copyCPU)), copyCPU
}

func printTable(w io.Writer, cases []*bcase, raw, sha *bcase, size int64, nfiles, rounds int) {
	byName := map[string]*bcase{}
	for _, c := range cases {
		byName[c.name+"/"+c.dir] = c
	}
	cores := runtime.NumCPU()
	lim, copyCPU := bound(raw, sha, cores)
	fmt.Fprintf(w, "\nloopback, best of %d interleaved rounds: %d MiB file; %d x 4 KiB files (SHA-256 end to end on every Ferry row); %d cores\n",
		rounds, size>>20, nfiles, cores)
	fmt.Fprintf(w, "%-34s %-9s %15s %13s %6s %7s %7s %7s %17s %17s\n",
		"case", "direction", "s best / median", "rate", "x raw", "x bound", "x curl", "x lftp", "peak RSS MiB c/s", "CPU s/GiB c/s")
	line := func(name, dir, secs, rate, unit, xraw, xbound, xcurl, xlftp, rss, cpu string) {
		fmt.Fprintf(w, "%-34s %-9s %15s %7s %-5s %6s %7s %7s %7s %17s %17s\n", name, dir, secs, rate, unit, xraw, xbound, xcurl, xlftp, rss, cpu)
	}
	ratio := func(a, b float64) string { return fmt.Sprintf("%.2f", a/b) }
	for _, c := range cases {
		s := c.best()
		unit := "MiB/s"
		if c.files {
			unit = "files/s"
		}
		xraw, xbound, xcurl, xlftp := "-", "-", "-", "-"
		if !c.files {
			xraw = ratio(c.rate(), raw.rate())
			if strings.HasPrefix(c.name, "ferry") {
				xbound = ratio(c.rate(), lim)
			}
			if p, ok := byName["vsftpd + curl/"+c.dir]; ok {
				xcurl = ratio(c.rate(), p.rate())
			}
			if p, ok := byName["lftp pget -n 8 (vsftpd)/"+c.dir]; ok {
				xlftp = ratio(c.rate(), p.rate())
			}
		} else if p, ok := byName["lftp mirror --parallel=4/download"]; ok {
			xlftp = ratio(c.rate(), p.rate())
		}
		gib := float64(size) / (1 << 30)
		if c.files {
			gib = float64(nfiles) * 4096 / (1 << 30)
		}
		rss, cpu := "-", "-"
		switch {
		case len(s.agents) == 2:
			rss = fmt.Sprintf("%.0f / %.0f", s.agents[0].rssMiB, s.agents[1].rssMiB)
			cpu = fmt.Sprintf("%.2f / %.2f", s.agents[0].cpu/gib, s.agents[1].cpu/gib)
		case s.cpu > 0:
			cpu = fmt.Sprintf("%.2f (all)", s.cpu/gib)
		}
		name := c.name
		if c == raw {
			name += " *"
		}
		line(name, c.dir, fmt.Sprintf("%.2f / %.2f", c.secs(s), c.median()), fmt.Sprintf("%.0f", c.rate()), unit, xraw, xbound, xcurl, xlftp, rss, cpu)
		if c == sha {
			line("bound: verified copy (computed)", "-", fmt.Sprintf("%.2f", float64(size)/(1<<20)/lim), fmt.Sprintf("%.0f", lim), "MiB/s",
				ratio(lim, raw.rate()), "1.00", "-", "-", "-", "-")
		}
	}
	fmt.Fprintln(w, "s best / median: seconds of the fastest run and the median run; rate, ratios, RSS and CPU are the fastest run's.")
	fmt.Fprintln(w, "(CPU s): the row's seconds are CPU seconds, not wall clock: one core's speed, whatever else the machine runs.")
	fmt.Fprintln(w, "* the ceiling (x raw): the faster raw receiver, splice (io.Copy into the file) or a 1 MiB read/write loop.")
	fmt.Fprintf(w, "bound: computed, not run: min(SHA-256 rate, %d cores / (2 hashes + copy)) = min(%.0f, %d / (2/%.0f + %.5f)) MiB/s,\n",
		cores, sha.rate(), cores, sha.rate(), copyCPU)
	fmt.Fprintln(w, "  copy = the ceiling's CPU s per MiB (this process, sender and receiver): no verified transfer beats it here")
	fmt.Fprintln(w, "  (FTPS rows also encrypt and decrypt every byte, which the bound does not count).")
	fmt.Fprintln(w, "c/s: the agent running the transfer (client) / the peer agent serving it (server); (all): this process, both ends.")
}

// selfCPU runs f and returns its wall time and this process's CPU time (user + system, every
// thread) meanwhile.
func selfCPU(f func() error) (sample, error) {
	c0 := rusageSeconds()
	start := time.Now()
	err := f()
	return sample{secs: time.Since(start).Seconds(), cpu: rusageSeconds() - c0}, err
}

func rusageSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// hashBytes hashes n bytes with crypto/sha256 on one goroutine, from a 64 MiB buffer of random
// bytes hashed again and again (larger than any cache, so memory is read as a file's would be).
func hashBytes(n int64) {
	buf := hashBuf()
	h := sha256.New()
	for left := n; left > 0; left -= int64(len(buf)) {
		h.Write(buf[:min(int64(len(buf)), left)])
	}
	_ = h.Sum(nil)
}

var hashBuf = sync.OnceValue(func() []byte {
	buf := make([]byte, 64<<20)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(buf)
	return buf
})

// warm reads the file once so no case pays for the first read from disk (a no-op on /dev/shm).
func warm(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		b.Fatal(err)
	}
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

// rawCopy sends a file over a loopback TCP connection (sendfile: io.Copy from an *os.File into
// a *net.TCPConn) into another file, which the receiver fills by splice (io.Copy from the socket
// into the *os.File) or, with rw, by read and write through a 1 MiB buffer.
func rawCopy(src, dst string, rw bool) error {
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
	if rw {
		buf := make([]byte, 1<<20)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
	} else if _, err := io.Copy(out, c); err != nil {
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

// startAgent starts ferry-agent with passive ports pasv to pasv+99 and extra flags.
func startAgent(b *testing.B, bin, dir, name string, pasv int, flags []string) *agent {
	b.Helper()
	root, err := os.MkdirTemp(dir, name+"-root-")
	if err != nil {
		b.Fatal(err)
	}
	args := append([]string{
		"--root", root, "--state-dir", b.TempDir(),
		"--grpc-listen", "127.0.0.1:0", "--ftp-listen", "127.0.0.1:0",
		"--passive-ports", fmt.Sprintf("%d-%d", pasv, pasv+99),
		"--token-file", testagent.TokenFile(b), "--peer-token-file", testagent.PeerTokenFile(b),
		"--log-level", "warn",
	}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	for _, kv := range os.Environ() { // the benchmark's own settings are no agent's
		if !strings.HasPrefix(kv, "FERRY_BENCH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
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
	last, err := testagent.RunTransfer(ctx, a.api, &ferryv1.StartTransferRequest{Source: from, Destination: to})
	if err != nil {
		return err
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

// measure resets the agents' peak RSS (clear_refs 5), runs f, and reads VmHWM and the CPU time
// (utime+stime) each used meanwhile.
func measure(agents []*agent, f func() error) (sample, error) {
	cpu0 := make([]float64, len(agents))
	for i, a := range agents {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", a.cmd.Process.Pid), []byte("5"), 0)
		c, err := cpuSeconds(a.cmd.Process.Pid)
		if err != nil {
			return sample{}, err
		}
		cpu0[i] = c
	}
	start := time.Now()
	if err := f(); err != nil {
		return sample{}, err
	}
	s := sample{secs: time.Since(start).Seconds()}
	for i, a := range agents {
		rss, err := hwmMiB(a.cmd.Process.Pid)
		if err != nil {
			return s, err
		}
		c, err := cpuSeconds(a.cmd.Process.Pid)
		if err != nil {
			return s, err
		}
		s.agents = append(s.agents, usage{rssMiB: rss, cpu: c - cpu0[i]})
	}
	return s, nil
}

func hwmMiB(pid int) (float64, error) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// cpuSeconds is utime+stime of pid (fields 14 and 15 of /proc/PID/stat, in clock ticks of
// 1/100 s on Linux).
func cpuSeconds(pid int) (float64, error) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	rest := string(s)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+2:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil
}
