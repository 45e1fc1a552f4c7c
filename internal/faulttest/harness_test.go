package faulttest

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
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Every agent of a bed listens on the same ports in its own namespace.
const (
	grpcPort    = 7070
	ftpPort     = 2121
	ftpUser     = "ferry"
	ftpPassword = "ferry-fault-pw"
)

var agentPassive = testbed.Ports(30010, 30029)

func TestMain(m *testing.M) {
	code := m.Run()
	printFigures()
	testbin.Cleanup()
	os.Exit(code)
}

func binDir(t *testing.T) string { return testbin.Dir(t) }

// figures are the numbers of the closing note, one line per fault, printed by TestMain.
var figures struct {
	sync.Mutex
	lines []string
}

// figure logs one line of the closing note and keeps it for the summary.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%-44s %s", t.Name(), fmt.Sprintf(format, args...))
	t.Log("FIGURE " + line)
	figures.Lock()
	figures.lines = append(figures.lines, line)
	figures.Unlock()
}

func printFigures() {
	figures.Lock()
	defer figures.Unlock()
	if len(figures.lines) == 0 {
		return
	}
	sort.Strings(figures.lines)
	fmt.Println("\nfault figures (test, fault, detection, attempts, bytes re-sent after resume / file size):")
	for _, l := range figures.lines {
		fmt.Println("  " + l)
	}
}

// newBed is testbed.New (fails under CI when namespaces are missing) plus the binaries.
func newBed(t *testing.T) *testbed.Bed {
	t.Helper()
	b := testbed.New(t)
	binDir(t)
	return b
}

// needVsftpd fails under CI and skips elsewhere when vsftpd is missing.
func needVsftpd(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(vsftpdBinary); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("FERRY_TESTBED") == "require" {
			t.Fatalf("vsftpd is not installed: %v", err)
		}
		t.Skipf("vsftpd is not installed: %v", err)
	}
}

// agent is a ferry-agent process in a bed host; it can be killed and started again with the same
// flags, root and state directory.
type agent struct {
	t     *testing.T
	name  string
	host  *testbed.Host
	addr  netip.Addr // where peers reach it
	root  string
	state string
	args  []string

	mu    sync.Mutex
	proc  *testbed.Proc
	procs []*testbed.Proc // every incarnation, for the logs

	api ferryv1.AgentServiceClient
}

// startAgent runs ferry-agent in h (gRPC on :7070, FTP on :2121, one FTP user, debug logs)
// with extra flags; root "" means a fresh temporary directory.
func startAgent(t *testing.T, h *testbed.Host, addr netip.Addr, root string, flags ...string) *agent {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	a := &agent{t: t, name: h.Name, host: h, addr: addr, root: root, state: t.TempDir()}
	a.args = append([]string{
		"--root", root,
		"--token-file", testagent.TokenFile(t),
		"--peer-token-file", testagent.PeerTokenFile(t),
		"--insecure", // plaintext gRPC on the test hosts' network: authenticated, not encrypted
		"--state-dir", a.state,
		"--grpc-listen", fmt.Sprintf(":%d", grpcPort),
		"--ftp-listen", fmt.Sprintf(":%d", ftpPort),
		"--passive-ports", agentPassive.String(),
		"--ftp-user", ftpUser + ":" + ftpPassword,
		"--data-timeout", "5s",
		"--log-level", "debug",
	}, flags...)
	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(testagent.AdminToken)),
		grpc.WithContextDialer(func(ctx context.Context, s string) (net.Conn, error) { return h.Dial(ctx, "tcp", s) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a.api = ferryv1.NewAgentServiceClient(conn)
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of agent %s:\n%s", a.name, tail(a.logs(), 60_000))
		}
	})
	return a
}

// start starts a new incarnation and waits for its ready line.
func (a *agent) start() {
	a.t.Helper()
	p := a.host.Start(a.t, filepath.Join(binDir(a.t), "ferry-agent"), a.args...)
	a.mu.Lock()
	a.proc = p
	a.procs = append(a.procs, p)
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "ferry-agent ready"); err != nil {
		a.t.Fatal(err)
	}
}

// pid is the agent's process id: "ip netns exec" execs the agent, so it is the Proc's.
func (a *agent) pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc.Pid()
}

// kill9 sends SIGKILL to the agent's process (by its pid) and waits until it is gone.
func (a *agent) kill9() {
	a.t.Helper()
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid())); err != nil || !strings.HasSuffix(exe, "ferry-agent") {
		a.t.Fatalf("pid %d is not ferry-agent (%q, %v)", p.Pid(), exe, err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		a.t.Fatalf("kill -9 %d: %v", p.Pid(), err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		a.t.Fatalf("agent %s (pid %d) still runs 10 s after SIGKILL", a.name, p.Pid())
	}
}

// term sends SIGTERM and waits (at most 15 s) for the agent to exit.
func (a *agent) term() time.Duration {
	a.t.Helper()
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	start := time.Now()
	if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
		a.t.Fatalf("kill -TERM %d: %v", p.Pid(), err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		a.t.Fatalf("agent %s (pid %d) still runs 15 s after SIGTERM", a.name, p.Pid())
	}
	return time.Since(start)
}

// logs is the output of every incarnation so far.
func (a *agent) logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	for i, p := range a.procs {
		fmt.Fprintf(&b, "--- incarnation %d (pid %d) ---\n%s", i+1, p.Pid(), p.Output())
	}
	return b.String()
}

// url is agent://addr:7070/path.
func (a *agent) url(p string) string {
	return "agent://" + net.JoinHostPort(a.addr.String(), strconv.Itoa(grpcPort)) + "/" + p
}

// ftpURL is ftp://ferry:pw@addr:2121/path: the agent's FTP server addressed as any FTP server.
func (a *agent) ftpURL(p string) string {
	return fmt.Sprintf("ftp://%s:%s@%s/%s", ftpUser, ftpPassword, net.JoinHostPort(a.addr.String(), strconv.Itoa(ftpPort)), p)
}

// rss is the agent's resident set size in bytes (VmRSS).
func (a *agent) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.pid()))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return -1
}

// ctlResult is one ferryctl run: its combined output and exit code.
type ctlResult struct {
	out  string
	code int
}

// ctl runs ferryctl --agent 127.0.0.1:7070 args... inside the agent's host, bounded by timeout.
func (a *agent) ctl(timeout time.Duration, args ...string) ctlResult {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{"--agent", net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)), "--token-file", testagent.TokenFile(a.t)}, args...)
	out, err := a.host.Exec(ctx, filepath.Join(binDir(a.t), "ferryctl"), argv...)
	r := ctlResult{out: string(out)}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			a.t.Fatalf("ferryctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// jsonLines returns the JSON objects ferryctl printed (stderr lines are not JSON).
func (r ctlResult) jsonLines() []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(r.out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	return lines
}

// transfer parses the only (or last) JSON object ferryctl printed as a Transfer.
func (r ctlResult) transfer(t *testing.T) *ferryv1.Transfer {
	t.Helper()
	lines := r.jsonLines()
	if len(lines) == 0 {
		t.Fatalf("ferryctl printed no JSON (exit %d):\n%s", r.code, r.out)
	}
	tr := &ferryv1.Transfer{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(lines[len(lines)-1]), tr); err != nil {
		t.Fatalf("ferryctl JSON %q: %v", lines[len(lines)-1], err)
	}
	return tr
}

// startCopy runs `ferryctl copy SRC DST --detach -o json [extra]` and returns the transfer it
// started.
func (a *agent) startCopy(src, dst string, extra ...string) *ferryv1.Transfer {
	a.t.Helper()
	r := a.ctl(30*time.Second, append([]string{"copy", src, dst, "--detach", "-o", "json"}, extra...)...)
	if r.code != 0 {
		a.t.Fatalf("ferryctl copy %s %s: exit %d:\n%s", src, dst, r.code, r.out)
	}
	tr := r.transfer(a.t)
	if tr.GetId() == "" {
		a.t.Fatalf("ferryctl copy --detach printed no id:\n%s", r.out)
	}
	return tr
}

// get runs `ferryctl transfers get ID -o json`.
func (a *agent) get(id string) *ferryv1.Transfer {
	a.t.Helper()
	r := a.ctl(30*time.Second, "transfers", "get", id, "-o", "json")
	if r.code != 0 {
		a.t.Fatalf("ferryctl transfers get %s: exit %d:\n%s", id, r.code, r.out)
	}
	return r.transfer(a.t)
}

// snapshot asks the agent over gRPC (cheaper than ferryctl for polling); nil while it is down.
func (a *agent) snapshot(id string) *ferryv1.Transfer {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := a.api.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
	if err != nil {
		return nil
	}
	return resp.GetTransfer()
}

// waitFor polls the transfer every 50 ms until cond holds or the transfer ends (whichever comes
// first), and fails the test after timeout.
func (a *agent) waitFor(id string, timeout time.Duration, what string, cond func(*ferryv1.Transfer) bool) *ferryv1.Transfer {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *ferryv1.Transfer
	for time.Now().Before(deadline) {
		if tr := a.snapshot(id); tr != nil {
			last = tr
			if cond(tr) || final(tr) {
				return tr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.t.Fatalf("transfer %s: not %s within %v; last snapshot: %v", id, what, timeout, brief(last))
	return nil
}

// waitFinal waits until the transfer reaches a final state.
func (a *agent) waitFinal(id string, timeout time.Duration) *ferryv1.Transfer {
	a.t.Helper()
	return a.waitFor(id, timeout, "finished", final)
}

// waitBytes waits until the transfer has moved at least n bytes.
func (a *agent) waitBytes(id string, n int64, timeout time.Duration) *ferryv1.Transfer {
	a.t.Helper()
	tr := a.waitFor(id, timeout, fmt.Sprintf("past %d bytes", n), func(tr *ferryv1.Transfer) bool {
		return tr.GetProgress().GetBytesDone() >= n
	})
	if final(tr) {
		a.t.Fatalf("transfer %s ended before the fault could be injected: %v", id, brief(tr))
	}
	return tr
}

func final(tr *ferryv1.Transfer) bool {
	switch tr.GetState() {
	case ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED, ferryv1.TransferState_TRANSFER_STATE_FAILED,
		ferryv1.TransferState_TRANSFER_STATE_CANCELLED:
		return true
	}
	return false
}

// brief is a one-line summary of a transfer for messages.
func brief(tr *ferryv1.Transfer) string {
	if tr == nil {
		return "none"
	}
	return fmt.Sprintf("id=%s state=%s bytes=%d/%d attempt=%d resumed=%d verified=%v sha=%.12s last_error=%q error=%q code=%q",
		tr.GetId(), strings.TrimPrefix(tr.GetState().String(), "TRANSFER_STATE_"),
		tr.GetProgress().GetBytesDone(), tr.GetProgress().GetBytesTotal(), tr.GetAttempt(), tr.GetBytesResumed(),
		tr.GetVerified(), tr.GetSha256(), tr.GetLastError(), tr.GetError(), tr.GetErrorCode())
}

// mustSucceed asserts that tr succeeded with sha.
func mustSucceed(t *testing.T, tr *ferryv1.Transfer, sha string) {
	t.Helper()
	if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("transfer did not succeed: %s", brief(tr))
	}
	if tr.GetSha256() != sha {
		t.Errorf("transfer sha256 %s, want the source's %s", tr.GetSha256(), sha)
	}
}

// attemptFailure is one "transfer attempt failed; retrying" line of an agent's log.
type attemptFailure struct {
	at      time.Time
	attempt int
	err     string
}

var (
	logTime = regexp.MustCompile(`^time=(\S+)`)
	logAtt  = regexp.MustCompile(` attempt=(\d+)`)
	logErr  = regexp.MustCompile(` err="((?:[^"\\]|\\.)*)"`)
)

// failures parses the agent's logs for failed attempts of transfer id.
func (a *agent) failures(id string) []attemptFailure {
	var fs []attemptFailure
	for _, l := range strings.Split(a.logs(), "\n") {
		if !strings.Contains(l, "transfer attempt failed") || !strings.Contains(l, "id="+id) {
			continue
		}
		var f attemptFailure
		if m := logTime.FindStringSubmatch(l); m != nil {
			f.at, _ = time.Parse(time.RFC3339Nano, m[1])
		}
		if m := logAtt.FindStringSubmatch(l); m != nil {
			f.attempt, _ = strconv.Atoi(m[1])
		}
		if m := logErr.FindStringSubmatch(l); m != nil {
			f.err = m[1]
		} else if i := strings.Index(l, " err="); i >= 0 {
			f.err = l[i+5:]
		}
		fs = append(fs, f)
	}
	return fs
}

// firstFailureAfter is the first failed attempt logged at or after t0 (zero if none).
func (a *agent) firstFailureAfter(id string, t0 time.Time) attemptFailure {
	for _, f := range a.failures(id) {
		if !f.at.Before(t0.Add(-time.Millisecond)) {
			return f
		}
	}
	return attemptFailure{}
}

// detection formats the time from the fault at t0 to the first failed attempt after it.
func (a *agent) detection(id string, t0 time.Time) string {
	f := a.firstFailureAfter(id, t0)
	if f.at.IsZero() {
		return "no failed attempt logged"
	}
	return fmt.Sprintf("%v (%s)", f.at.Sub(t0).Round(10*time.Millisecond), excerpt(f.err, 100))
}

// heldAfterFailure waits (at most timeout) until the agent logs the first failed attempt of id
// after t0 and returns the size of the part file under dir then: what the receiver held when the
// fault was detected, which the next attempt can resume.
func (a *agent) heldAfterFailure(id string, t0 time.Time, dir string, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for a.firstFailureAfter(id, t0).at.IsZero() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return partSize(dir)
}

func excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// writeRandom puts size random bytes at path and returns their SHA-256.
func writeRandom(t *testing.T, path string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(rand.Reader, size), make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileSHA is the SHA-256 of the file at path ("" if it cannot be read).
func fileSHA(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 4<<20)); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// finalWatch polls a final path during a transfer: whenever something stands there, it must be
// a regular file of the source's size. It never sees the file grow in place.
type finalWatch struct {
	path string
	size int64
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	samples    int
	seen       int // samples where the final name existed
	violations []string
}

// watchFinal starts polling path every 5 ms until check is called (or the test ends).
func watchFinal(t *testing.T, path string, size int64) *finalWatch {
	w := &finalWatch{path: path, size: size, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			fi, err := os.Lstat(path)
			w.mu.Lock()
			w.samples++
			if err == nil {
				w.seen++
				if !fi.Mode().IsRegular() || fi.Size() != size {
					if len(w.violations) < 10 {
						w.violations = append(w.violations, fmt.Sprintf("%s: %v, %d bytes (want %d)",
							time.Now().Format("15:04:05.000"), fi.Mode(), fi.Size(), size))
					}
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *finalWatch) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// check stops the poller and asserts that only the whole file ever stood at the final name and
// that it now holds sha (sha "" means: it must not exist).
func (w *finalWatch) check(t *testing.T, sha string) {
	t.Helper()
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		t.Errorf("%s held a partial or foreign file at %s", w.path, v)
	}
	if sha == "" {
		if _, err := os.Lstat(w.path); err == nil {
			t.Errorf("%s exists, want nothing there", w.path)
		}
		return
	}
	if got := fileSHA(w.path); got != sha {
		t.Errorf("%s: sha256 %q, want the source's %s", w.path, got, sha)
	}
	t.Logf("final name watched in %d samples (present in %d): only the whole file", w.samples, w.seen)
}

// partFiles lists the part files (.<name>.<hex>.ferry-part) under dir.
func partFiles(dir string) []string {
	var parts []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".ferry-part") {
			parts = append(parts, p)
		}
		return nil
	})
	return parts
}

// partSize is the size of the one part file under dir (-1 if there is none).
func partSize(dir string) int64 {
	var n int64 = -1
	for _, p := range partFiles(dir) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > n {
			n = fi.Size()
		}
	}
	return n
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// resent formats the bytes a resume sent again: what the receiver held before the fault minus
// what the resume took over from the part file, against the file's size.
func resent(held, resumed, size int64) string {
	r := max(held-resumed, 0)
	return fmt.Sprintf("re-sent %s of %s (%.2f%%; held %s before the fault, bytes_resumed %s)",
		mib(r), mib(size), 100*float64(r)/float64(size), mib(held), mib(resumed))
}
