package main

// Integration tests: the real ferryctl binary against real agents started in-process.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// ferryctlBin is the binary built once by TestMain.
var ferryctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferryctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryctlBin = filepath.Join(dir, "ferryctl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	build := exec.CommandContext(ctx, "go", "build", "-o", ferryctlBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	err = build.Run()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "building ferryctl:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// lines are stdout's lines.
func (r result) lines() []string {
	return strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// startFerryctl starts the binary for a test that reads its stdout line by line and signals it.
func startFerryctl(ctx context.Context, t *testing.T, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, ferryctlBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_AGENT=", "FERRY_TOKEN="+testagent.AdminToken)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout), stderr
}

// ferryctl runs the binary with args (bounded to a minute) and returns what it printed.
func ferryctl(t *testing.T, args ...string) result {
	t.Helper()
	return ferryctlEnv(t, []string{"FERRY_TOKEN=" + testagent.AdminToken}, args...)
}

// ferryctlEnv runs the binary with env added to a clean ferryctl environment (no agent, token
// or config from the machine running the tests).
func ferryctlEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryctlBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_AGENT=", "FERRY_TOKEN=", "FERRY_TOKEN_FILE=", "FERRY_CONFIG="+os.DevNull+".none", "NETRC="+os.DevNull)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ferryctl %q timed out", args)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ferryctl %q: %v", args, err)
	}
	t.Logf("ferryctl %s\n%s", strings.Join(args, " "), r)
	return r
}

// wantCode fails the test unless r exited with code; for codes other than 0 it also checks
// the single "ferryctl: ..." line on stderr.
func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\n%s", r.code, code, r)
	}
	if code != 0 && code != exitFailure {
		if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "ferryctl: ") {
			t.Errorf("stderr should be one line \"ferryctl: <cause>\", got %q", r.stderr)
		}
	}
}

// writeFile writes size random bytes to root/name and returns their SHA-256 (hex).
func writeFile(t *testing.T, root, name string, size int) string {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

type event struct {
	Event    string          `json:"event"`
	OK       *bool           `json:"ok"`
	Error    *string         `json:"error"`
	Transfer json.RawMessage `json:"transfer"`
}

// parseEvents parses every stdout line as an event and its transfer with protojson; the last
// event must be the result and the only one.
func parseEvents(t *testing.T, r result) ([]event, []*ferryv1.Transfer) {
	t.Helper()
	var evs []event
	var ts []*ferryv1.Transfer
	for i, line := range r.lines() {
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d %q is not JSON: %v", i, line, err)
		}
		tr := &ferryv1.Transfer{}
		if err := protojson.Unmarshal(ev.Transfer, tr); err != nil {
			t.Fatalf("line %d: transfer: %v", i, err)
		}
		evs, ts = append(evs, ev), append(ts, tr)
	}
	for i, ev := range evs {
		if want := map[bool]string{true: "result", false: "update"}[i == len(evs)-1]; ev.Event != want {
			t.Fatalf("event %d is %q, want %q", i, ev.Event, want)
		}
	}
	return evs, ts
}

func newPair(t *testing.T) (a, b *testagent.Agent) {
	return testagent.Start(t), testagent.Start(t)
}

func TestCopyJSON(t *testing.T) {
	a, b := newPair(t)
	const size = 8 << 20
	sum := writeFile(t, b.Root, "big.bin", size)
	for _, tc := range []struct {
		mode string
		want ferryv1.TransferMode
	}{
		{"passive", ferryv1.TransferMode_TRANSFER_MODE_PASSIVE},
		{"active", ferryv1.TransferMode_TRANSFER_MODE_ACTIVE},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dst := "in/" + tc.mode + ".bin"
			r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL("big.bin"), dst, "--mode", tc.mode, "-o", "json")
			wantCode(t, r, 0)
			evs, ts := parseEvents(t, r)
			res, tr := evs[len(evs)-1], ts[len(ts)-1]
			if res.OK == nil || !*res.OK || res.Error == nil || *res.Error != "" {
				t.Fatalf("result: ok=%v error=%v", res.OK, res.Error)
			}
			if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
				t.Errorf("state %v", tr.GetState())
			}
			if got := tr.GetProgress().GetBytesDone(); got != size {
				t.Errorf("bytes_done %d, want %d", got, size)
			}
			if tr.GetSha256() != sum {
				t.Errorf("sha256 %q, want %q", tr.GetSha256(), sum)
			}
			if tr.GetMode() != tc.want || tr.GetRequestedMode() != tc.want {
				t.Errorf("mode %v (requested %v), want %v", tr.GetMode(), tr.GetRequestedMode(), tc.want)
			}
			for i, u := range ts[:len(ts)-1] {
				if u.GetId() != tr.GetId() {
					t.Errorf("update %d is about %q, not %q", i, u.GetId(), tr.GetId())
				}
			}
			if got := fileSHA(t, filepath.Join(a.Root, dst)); got != sum {
				t.Errorf("copied file sha256 %s, want %s", got, sum)
			}
			// The raw JSON has the contract's spelling: proto names, enum names, all fields.
			var raw map[string]any
			if err := json.Unmarshal(evs[len(evs)-1].Transfer, &raw); err != nil {
				t.Fatal(err)
			}
			if raw["state"] != "TRANSFER_STATE_SUCCEEDED" || raw["requested_mode"] == nil || raw["finished_at"] == nil {
				t.Errorf("transfer JSON: %s", evs[len(evs)-1].Transfer)
			}
		})
	}
}

var progressLine = regexp.MustCompile(`^(queued|running)  \d+(\.\d)? (B|KiB|MiB|GiB) / (\?|\d+(\.\d)? (B|KiB|MiB|GiB))  (\d+|--)%  \S+ \S+/s  eta \S+  files \d+/\d+$`)

func TestCopyTextPiped(t *testing.T) {
	a, b := newPair(t)
	sum := writeFile(t, b.Root, "big.bin", 4<<20)
	// Default mode (not given): the agent decides.
	r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL("big.bin"), "big.bin")
	wantCode(t, r, 0)
	lines := r.lines()
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^succeeded: 4\.0 MiB in \S+ \(\S+ \S+/s\) mode=(passive|active) sha256=` + sum + `$`).MatchString(last) {
		t.Errorf("last line %q", last)
	}
	for _, l := range lines[:len(lines)-1] {
		if !progressLine.MatchString(l) {
			t.Errorf("not a progress line: %q", l)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr: %q", r.stderr)
	}
}

func TestDetachGetListWatch(t *testing.T) {
	a, b := newPair(t)
	const size = 1 << 20
	writeFile(t, b.Root, "f.bin", size)
	r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL("f.bin"), "out/", "--detach")
	wantCode(t, r, 0)
	id := strings.TrimSpace(r.stdout)
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("--detach printed %q, want one ID", r.stdout)
	}

	// watch follows it to the end (or sees the final state at once).
	r = ferryctl(t, "--agent", a.GRPC, "transfers", "watch", id, "-o", "json")
	wantCode(t, r, 0)
	_, ts := parseEvents(t, r)
	if final := ts[len(ts)-1]; final.GetId() != id || final.GetProgress().GetBytesDone() != size {
		t.Errorf("watch result: %v", final)
	}

	r = ferryctl(t, "--agent", a.GRPC, "transfers", "get", id)
	wantCode(t, r, 0)
	for _, want := range []string{"id: " + id + "\n", "state: succeeded\n", "source: " + b.URL("f.bin") + "\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get lacks %q", want)
		}
	}
	r = ferryctl(t, "--agent", a.GRPC, "transfers", "get", id, "-o", "json")
	wantCode(t, r, 0)
	var got ferryv1.Transfer
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || got.GetId() != id {
		t.Errorf("get -o json: %v %v", &got, err)
	}

	r = ferryctl(t, "--agent", a.GRPC, "transfers", "list")
	wantCode(t, r, 0)
	if lines := r.lines(); len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") ||
		!strings.HasPrefix(lines[1], id+" ") || !strings.Contains(lines[1], "succeeded") ||
		!strings.Contains(lines[1], b.URL("f.bin")+" → out/") {
		t.Errorf("list:\n%s", r.stdout)
	}

	for _, tc := range []struct {
		states []string
		found  bool
	}{
		{nil, true},
		{[]string{"--state", "succeeded"}, true},
		{[]string{"--state", "running,failed", "--state", "queued"}, false},
	} {
		r = ferryctl(t, append([]string{"--agent", a.GRPC, "transfers", "list", "-o", "json"}, tc.states...)...)
		wantCode(t, r, 0)
		var list ferryv1.ListTransfersResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("list -o json: %v", err)
		}
		if !strings.HasPrefix(r.stdout, `{"transfers":[`) {
			t.Errorf("list JSON shape: %s", r.stdout)
		}
		found := slices.ContainsFunc(list.GetTransfers(), func(t *ferryv1.Transfer) bool { return t.GetId() == id })
		if found != tc.found {
			t.Errorf("list %v: found=%v, want %v", tc.states, found, tc.found)
		}
	}
	if got := fileSHA(t, filepath.Join(a.Root, "out", "f.bin")); got != fileSHA(t, filepath.Join(b.Root, "f.bin")) {
		t.Error("out/f.bin differs from the source")
	}
}

func TestLs(t *testing.T) {
	a, b := newPair(t)
	writeFile(t, b.Root, "big.bin", 3<<20)
	if err := os.Mkdir(filepath.Join(b.Root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := ferryctl(t, "--agent", a.GRPC, "ls", b.URL(""))
	wantCode(t, r, 0)
	lines := r.lines()
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "big.bin ") && strings.Contains(l, "3.0 MiB") }) ||
		!slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "sub/ ") }) {
		t.Errorf("ls:\n%s", r.stdout)
	}

	r = ferryctl(t, "--agent", a.GRPC, "ls", b.URL(""), "--mode", "active", "-o", "json")
	wantCode(t, r, 0)
	var resp ferryv1.ListFilesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(resp.GetEntries(), func(e *ferryv1.FileEntry) bool {
		return e.GetName() == "big.bin" && e.GetSize() == 3<<20 && !e.GetIsDir()
	}) {
		t.Errorf("ls -o json: %s", r.stdout)
	}

	// A local path on the agent itself.
	r = ferryctl(t, "--agent", b.GRPC, "ls", "sub")
	wantCode(t, r, 0)
	if strings.TrimSpace(r.stdout) != "NAME  SIZE  MODIFIED" {
		t.Errorf("empty dir: %q", r.stdout)
	}
	r = ferryctl(t, "--agent", a.GRPC, "ls", b.URL("nope"))
	wantCode(t, r, exitNotFound)
}

func TestAgentInfo(t *testing.T) {
	a := testagent.Start(t, func(c *daemon.Config) {})
	r := ferryctl(t, "--agent", a.GRPC, "agent", "info")
	wantCode(t, r, 0)
	for _, want := range []string{"version: ", "grpc_address: ", "ftp_address: " + a.FTP, "root: ", "started_at: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("agent info lacks %q", want)
		}
	}
	r = ferryctl(t, "--agent", a.GRPC, "agent", "info", "-o", "json")
	wantCode(t, r, 0)
	var info ferryv1.GetAgentInfoResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &info); err != nil || info.GetFtpAddress() != a.FTP {
		t.Errorf("agent info -o json: %v %v", &info, err)
	}
	if !strings.Contains(r.stdout, `"grpc_address":`) || !strings.Contains(r.stdout, `"passive_ports":`) {
		t.Errorf("proto names and all fields expected: %s", r.stdout)
	}

	// FERRY_AGENT is the default for --agent.
	cmd := exec.Command(ferryctlBin, "agent", "info")
	cmd.Env = append(os.Environ(), "FERRY_AGENT="+a.GRPC, "FERRY_TOKEN="+testagent.AdminToken)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), a.FTP) {
		t.Errorf("FERRY_AGENT: %v\n%s", err, out)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	a := testagent.Start(t, func(c *daemon.Config) { c.GRPCListen = "unix://" + sock })
	r := ferryctl(t, "--agent", "unix://"+sock, "agent", "info", "-o", "json")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, a.FTP) {
		t.Errorf("agent info over unix socket: %s", r.stdout)
	}
}

func TestErrors(t *testing.T) {
	a := testagent.Start(t)

	// Refused by the agent as invalid: exit 2, the message names the field.
	r := ferryctl(t, "--agent", a.GRPC, "copy", "", "x")
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "source") {
		t.Errorf("message should name the field: %q", r.stderr)
	}
	if strings.Contains(r.stderr, "rpc error") || strings.Contains(r.stderr, "Usage:") {
		t.Errorf("message should be the status message only: %q", r.stderr)
	}

	r = ferryctl(t, "--agent", a.GRPC, "transfers", "get", "nope")
	wantCode(t, r, exitNotFound)
	r = ferryctl(t, "--agent", a.GRPC, "transfers", "cancel", "nope")
	wantCode(t, r, exitNotFound)

	// Usage errors: exit 2, one line, no usage dump.
	for _, args := range [][]string{
		{"copy", "onlyone"},
		{"copy", "a", "b", "--mode", "sideways"},
		{"-o", "yaml", "agent", "info"},
		{"transfers", "list", "--state", "done"},
		{"transfers", "frobnicate"},
		{"nosuchcommand"},
		{"agent", "info", "--nosuchflag"},
	} {
		r = ferryctl(t, append([]string{"--agent", a.GRPC}, args...)...)
		wantCode(t, r, exitUsage)
	}

	// Nobody listens: exit 3.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	r = ferryctl(t, "--agent", dead, "agent", "info")
	wantCode(t, r, exitUnreachable)
	if !strings.Contains(r.stderr, dead) {
		t.Errorf("message should name the agent: %q", r.stderr)
	}
	r = ferryctl(t, "--agent", dead, "copy", "a", "b", "-o", "json")
	wantCode(t, r, exitUnreachable)
	r = ferryctl(t, "--agent", "unix://"+filepath.Join(t.TempDir(), "none.sock"), "transfers", "list")
	wantCode(t, r, exitUnreachable)

	// Help works everywhere and has examples.
	for _, args := range [][]string{{"--help"}, {"copy", "--help"}, {"transfers", "list", "--help"}, {"transfers", "get", "--help"},
		{"transfers", "watch", "--help"}, {"transfers", "cancel", "--help"}, {"ls", "--help"}, {"agent", "info", "--help"}} {
		r = ferryctl(t, args...)
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%v: no examples", args)
		}
	}
	if r = ferryctl(t, "--help"); !strings.Contains(r.stdout, "130") || !strings.Contains(r.stdout, "unreachable") {
		t.Errorf("root help should document exit codes")
	}
}

func TestCopyFails(t *testing.T) {
	a, b := newPair(t)
	r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL("missing.bin"), "x.bin")
	switch r.code {
	case exitNotFound, exitFailure: // the transfer ran and failed: the peer's file is missing
		// A failure is an error: one line on stderr, none on stdout.
		if !strings.HasPrefix(r.stderr, "ferryctl: failed: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("stderr should be the one line \"ferryctl: failed: <cause>\": %q", r.stderr)
		}
		if strings.Contains(r.stdout, "failed") {
			t.Errorf("the failure printed on stdout: %q", r.stdout)
		}
	default:
		t.Fatalf("exit %d, want 1 or 4\n%s", r.code, r)
	}

	// An unreachable peer is the agent's problem to report, not "agent unreachable" (exit 3).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPeer := "agent://" + l.Addr().String() + "/x.bin"
	l.Close()
	r = ferryctl(t, "--agent", a.GRPC, "copy", deadPeer, "x.bin")
	if r.code == exitUnreachable || r.code == 0 {
		t.Errorf("copy from a dead peer: exit %d", r.code)
	}

	r = ferryctl(t, "--agent", a.GRPC, "copy", b.URL("missing.bin"), "x.bin", "-o", "json")
	if r.code != exitNotFound {
		t.Errorf("copy of a missing file -o json: exit %d, want %d", r.code, exitNotFound)
	}
	{
		evs, ts := parseEvents(t, r)
		if res := evs[len(evs)-1]; *res.OK || *res.Error == "" || ts[len(ts)-1].GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED {
			t.Errorf("result: %s", r.lines()[len(evs)-1])
		}
	}
}

// TestInterrupt sends SIGINT to an attached copy: ferryctl cancels the transfer, prints its
// final state and exits 130. The source is a FIFO that the test feeds slowly, so the transfer
// is still running when the signal comes.
func TestInterrupt(t *testing.T) {
	a, b := newPair(t)
	slowSource(t, b.Root, "slow.bin")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, sc, stderr := startFerryctl(ctx, t, "--agent", a.GRPC, "copy", b.URL("slow.bin"), "slow.bin", "--mode", "passive", "-o", "json")
	var lines []string
	signalled := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		var ev event
		tr := &ferryv1.Transfer{}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || protojson.Unmarshal(ev.Transfer, tr) != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		if !signalled && tr.GetState() == ferryv1.TransferState_TRANSFER_STATE_RUNNING && tr.GetProgress().GetBytesDone() > 0 {
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err := cmd.Wait()
	t.Logf("stdout:\n%s\nstderr:\n%s", strings.Join(lines, "\n"), stderr.String())
	if ctx.Err() != nil {
		t.Fatal("ferryctl did not exit after SIGINT")
	}
	if !signalled {
		t.Skip("the transfer ended before it was seen running with bytes moved")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want %d", err, exitInterrupted)
	}
	var res event
	final := &ferryv1.Transfer{}
	if json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil || protojson.Unmarshal(res.Transfer, final) != nil {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	if res.Event != "result" || *res.OK || final.GetState() != ferryv1.TransferState_TRANSFER_STATE_CANCELLED {
		t.Errorf("result %s, want ok:false and CANCELLED", lines[len(lines)-1])
	}
	if _, err := os.Stat(filepath.Join(a.Root, "slow.bin")); !os.IsNotExist(err) {
		t.Errorf("cancelled transfer left slow.bin: %v", err)
	}
}

// slowSource makes root/name a FIFO fed 64 KiB every 50 ms until the test ends, so that a
// transfer from it is still running when the test acts on it.
func slowSource(t *testing.T, root, name string) {
	t.Helper()
	fifo := filepath.Join(root, name)
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		// Unblock a writer still waiting for a reader.
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer f.Close()
		}
		<-done
	})
	go func() {
		defer close(done)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := f.Write(chunk); err != nil {
				return
			}
		}
	}()
}

// TestWatchInterruptAndCancel: Ctrl-C on `transfers watch` stops watching and leaves the
// transfer running; `transfers cancel` stops it; watching it then ends with "cancelled:", exit 1.
func TestWatchInterruptAndCancel(t *testing.T) {
	a, b := newPair(t)
	slowSource(t, b.Root, "slow.bin")
	r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL("slow.bin"), "slow.bin", "--detach", "-o", "json")
	wantCode(t, r, 0)
	var started ferryv1.Transfer
	if err := protojson.Unmarshal([]byte(r.stdout), &started); err != nil || started.GetId() == "" {
		t.Fatalf("--detach -o json: %v", err)
	}
	id := started.GetId()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, sc, stderr := startFerryctl(ctx, t, "--agent", a.GRPC, "transfers", "watch", id)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "running  ") {
		t.Fatalf("first line %q, want a running progress line", sc.Text())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
		t.Fatalf("watch exit: %v, want %d; stderr %q", err, exitInterrupted, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "ferryctl: interrupted") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q", stderr.String())
	}

	r = ferryctl(t, "--agent", a.GRPC, "transfers", "list", "--state", "running")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, id) {
		t.Fatalf("transfer %s should still run after watch was interrupted", id)
	}

	r = ferryctl(t, "--agent", a.GRPC, "transfers", "cancel", id)
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, id+": ") {
		t.Errorf("cancel printed %q", r.stdout)
	}
	r = ferryctl(t, "--agent", a.GRPC, "transfers", "watch", id)
	wantCode(t, r, exitFailure)
	if !strings.HasPrefix(r.stderr, "ferryctl: cancelled: ") {
		t.Errorf("stderr %q, want \"ferryctl: cancelled: ...\"", r.stderr)
	}
	r = ferryctl(t, "--agent", a.GRPC, "transfers", "get", id, "-o", "json")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, `"state":"TRANSFER_STATE_CANCELLED"`) {
		t.Errorf("get: %s", r.stdout)
	}
}
