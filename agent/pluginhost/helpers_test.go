package pluginhost_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/pluginhost"
	"github.com/ferry-dev/ferry/agent/transfer"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// The example plugins and the test plugin, built once per test binary as separate programs.
var (
	buildPlugins = sync.OnceValues(buildAll)
	pluginDir    atomic.Value // the directory, once made
)

func buildAll() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-plugins-")
	if err != nil {
		return "", err
	}
	pluginDir.Store(dir)
	// One go build: the five links run in parallel.
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../plugins/auth-htpasswd", "../../plugins/auth-ldap",
		"../../plugins/hook-webhook", "../../plugins/hook-exec", "./testdata/noop")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build plugins: %v\n%s", err, out)
	}
	return dir, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, ok := pluginDir.Load().(string); ok {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// bin returns the path of a built plugin.
func bin(t testing.TB, name string) string {
	t.Helper()
	dir, err := buildPlugins()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// htpasswd writes an htpasswd file with bcrypt hashes made by `htpasswd -B` itself.
func htpasswd(t testing.TB, users map[string]string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ftp.htpasswd")
	for u, p := range users {
		args := []string{"-b", "-B", "-C", "4", f, u, p}
		if _, err := os.Stat(f); err != nil {
			args = append([]string{"-c"}, args...)
		}
		// -b puts the password in htpasswd's argv: test passwords only.
		if out, err := exec.Command("htpasswd", args...).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v\n%s", err, out)
		}
	}
	return f
}

// curlSource gives each curl run its own loopback source address (127.0.0.2, .3...), so that
// the FTP server's login delay after a failure (per source address) does not slow the others.
var curlSource atomic.Int32

// curl runs curl against an FTP URL with the credentials in a netrc file (never in argv) and
// returns its exit code (0 ok, 67 login refused, 25 upload refused...).
func curl(t testing.TB, ftpAddr, user, pass string, args ...string) (int, string) {
	t.Helper()
	host, _, _ := net.SplitHostPort(ftpAddr)
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte(fmt.Sprintf("machine %s login %s password %s\n", host, user, pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := curlSource.Add(1)
	src := fmt.Sprintf("127.0.%d.%d", 1+n/250, 2+n%250)
	cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "20", "--interface", src, "--netrc-file", netrc}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	return 0, string(out)
}

// startAgent runs an agent with plugins (each 'PATH ARGS…').
func startAgent(t testing.TB, specs []pluginhost.Spec, mods ...func(*daemon.Config)) *testagent.Agent {
	t.Helper()
	return testagent.Start(t, append([]func(*daemon.Config){func(c *daemon.Config) {
		c.Plugins = specs
		c.PluginTimeout = 5 * time.Second
	}}, mods...)...)
}

// transfer runs src -> dst on a and returns the final snapshot.
func runTransfer(t testing.TB, a *testagent.Agent, src, dst string) *ferryv1.Transfer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: src, Destination: dst})
	if err != nil {
		t.Fatalf("StartTransfer: %v", err)
	}
	stream, err := a.Client.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: resp.GetTransfer().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var last *ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		last = m.GetTransfer()
	}
	if last == nil {
		t.Fatal("no snapshot")
	}
	return last
}

func writeFile(t testing.TB, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	block := []byte(strings.Repeat("ferry plugin test data\n", 1<<12))
	for n := 0; n < size; {
		k := min(len(block), size-n)
		w.Write(block[:k])
		n += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// pluginInfo returns agent info's plugins.
func pluginInfo(t testing.TB, a *testagent.Agent) []*ferryv1.PluginInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := a.Client.GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{})
	if err != nil {
		t.Fatalf("GetAgentInfo: %v", err)
	}
	return r.GetPlugins()
}

// eventually polls cond every 20ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// since logs how long a step took (go test -v).
func since(t testing.TB, what string, start time.Time) {
	t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
}

func snapshot() transfer.Snapshot {
	return transfer.Snapshot{ID: "t1", Source: "a", Destination: "b", Direction: transfer.Download, State: transfer.StateRunning}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
