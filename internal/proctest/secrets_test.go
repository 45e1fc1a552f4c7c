// Package proctest runs the real ferry-agent binary as a process on loopback and checks what
// other users of the host can see of it.
package proctest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// TestNoSecretInProcessList: an agent configured with --ftp-users-file and --token-file shows
// neither the FTP password nor any token in its command line (what `ps` shows every user), and
// its log names neither; ferryctl takes its token from the environment or a file, not argv.
func TestNoSecretInProcessList(t *testing.T) {
	const ftpPassword = "ftp-secret-Hunter2-x9"
	hash, err := bcrypt.GenerateFromPassword([]byte(ftpPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	users := filepath.Join(dir, "ftp-users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testbin.Dir(t), "ferry-agent"),
		"--root", root, "--state-dir", t.TempDir(), "--grpc-listen", "127.0.0.1:0", "--ftp-listen", "127.0.0.1:0",
		"--ftp-users-file", users, "--token-file", testagent.TokenFile(t), "--peer-token-file", testagent.PeerTokenFile(t),
		"--log-level", "debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceFunc(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	defer stop()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "ferry-agent ready") {
		stop()
		t.Fatalf("agent did not start: %q\n%s", sc.Text(), logs.String())
	}
	grpcAddr := strings.TrimPrefix(strings.Fields(sc.Text())[2], "grpc=")

	// ferryctl with the token in its environment, as the docs say.
	ctl := exec.CommandContext(ctx, filepath.Join(testbin.Dir(t), "ferryctl"), "--agent", grpcAddr, "agent", "info")
	ctl.Env = append(os.Environ(), "FERRY_TOKEN="+testagent.AdminToken)
	if out, err := ctl.CombinedOutput(); err != nil {
		t.Fatalf("ferryctl agent info: %v\n%s", err, out)
	}

	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	stop() // the log is complete once the process has ended
	for name, secret := range map[string]string{
		"FTP password": ftpPassword, "admin token": testagent.AdminToken,
		"peer token": testagent.PeerToken, "viewer token": testagent.ViewerToken,
	} {
		if strings.Contains(string(cmdline), secret) {
			t.Errorf("the %s shows in the agent's command line", name)
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the %s shows in the agent's log", name)
		}
	}
	if strings.Contains(strings.Join(ctl.Args, " "), testagent.AdminToken) {
		t.Error("ferryctl's command line holds the token")
	}
}
