package proctest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbin"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// lockedBuf collects a process's stderr.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// agentProc is a ferry-agent process.
type agentProc struct {
	cmd  *exec.Cmd
	logs *lockedBuf
	grpc string
	done chan error
}

func startProc(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(testbin.Dir(t), "ferry-agent"), args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, logs: &lockedBuf{}, done: make(chan error, 1)}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			ready <- sc.Text()
		}
		close(ready)
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ferry-agent ready") {
			t.Fatalf("agent did not start: %q\n%s", line, p.logs.String())
		}
		p.grpc = strings.TrimPrefix(strings.Fields(line)[2], "grpc=")
	case <-time.After(20 * time.Second):
		t.Fatalf("agent not ready in 20s\n%s", p.logs.String())
	}
	return p
}

// TestSIGTERMDuringTransfer runs the agent binary configured by a YAML file and the
// environment, with JSON logs: SIGTERM in the middle of a download makes it exit 0 within a
// few seconds, every log line is one JSON object, and the next start finishes the transfer.
func TestSIGTERMDuringTransfer(t *testing.T) {
	const size = 4 << 20
	vs := testftp.StartVsftpd(t, testftp.Options{Extra: []string{"anon_max_rate=1000000"}})
	b := make([]byte, size)
	_, _ = rand.Read(b)
	if err := os.WriteFile(vs.Local("/pub/big.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.yaml")
	body := fmt.Sprintf("root: %s\nstate-dir: %s\ngrpc-listen: 127.0.0.1:0\nftp-listen: 127.0.0.1:0\ntoken-file: %s\nlog-format: json\nretries: 2\n",
		root, state, testagent.TokenFile(t))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"FERRY_CONFIG=" + conf, "FERRY_LOG_LEVEL=debug", "FERRY_AUDIT_LOG=" + filepath.Join(dir, "audit.log")}
	p := startProc(t, env)
	conn := testagent.Dial(t, p.grpc, testagent.AdminToken)
	defer conn.Close()
	c := ferryv1.NewAgentServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.StartTransfer(ctx, &ferryv1.StartTransferRequest{
		Source: fmt.Sprintf("ftp://%s:%s@%s/pub/big.bin", vs.User, vs.Password, vs.Addr), Destination: "big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTransfer().GetId()
	for {
		r, err := c.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetTransfer().GetProgress().GetBytesDone() > 0 {
			if r.GetTransfer().GetProgress().GetBytesDone() >= size {
				t.Fatal("the transfer ended before SIGTERM; throttle it more")
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM\n%s", err, p.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("agent still running 10s after SIGTERM\n%s", p.logs.String())
	}
	took := time.Since(start)
	t.Logf("exit %.2fs after SIGTERM", took.Seconds())
	if took > 5*time.Second {
		t.Errorf("exit took %s", took)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not one JSON object: %q", line)
		}
		msgs = append(msgs, fmt.Sprint(m["msg"]))
	}
	joined := strings.Join(msgs, "|")
	for _, want := range []string{"ferry-agent stopping", "transfer interrupted by shutdown; it resumes after the restart", "ferry-agent stopped"} {
		if !strings.Contains(joined, want) {
			t.Errorf("log lacks %q: %v", want, msgs)
		}
	}
	if strings.Contains(p.logs.String(), vs.Password) {
		t.Error("the FTP password reached the log")
	}

	// The next start finishes it.
	p2 := startProc(t, env)
	conn2 := testagent.Dial(t, p2.grpc, testagent.AdminToken)
	defer conn2.Close()
	c2 := ferryv1.NewAgentServiceClient(conn2)
	for {
		r, err := c2.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if st := r.GetTransfer().GetState(); st == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			break
		} else if st > ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			t.Fatalf("after restart: %v", r.GetTransfer())
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, _ := os.ReadFile(filepath.Join(root, "big.bin"))
	if !bytes.Equal(got, b) {
		t.Fatal("file differs after the resumed transfer")
	}
}

// TestConfigFileMistake: a mistyped key stops the binary with exit code 2, naming the file, the
// line and the key it probably meant.
func TestConfigFileMistake(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(conf, []byte("root: /tmp\nstate-dir: /tmp/x\nmax_transfers: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(testbin.Dir(t), "ferry-agent"), "--config", conf).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	want := conf + `:3: unknown key "max_transfers" (did you mean "max-transfers"?)`
	if !strings.Contains(string(out), want) {
		t.Errorf("output %q lacks %q", out, want)
	}
}
