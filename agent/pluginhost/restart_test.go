package pluginhost_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/pluginhost"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestKillPlugin: kill -9 of an auth plugin leaves the agent serving (API, FTP with its own
// users, transfers), logins through the plugin fail closed while it is down, and it is
// restarted. The binary is moved away meanwhile so that the down time is as long as the test
// needs, not a race with the backoff.
func TestKillPlugin(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "auth-htpasswd")
	data, err := os.ReadFile(bin(t, "auth-htpasswd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	hp := htpasswd(t, map[string]string{"hanna": "hanna-secret"})
	b := testagent.Start(t)
	writeFile(t, filepath.Join(b.Root, "src.bin"), 1<<20)
	a := startAgent(t, []pluginhost.Spec{{Path: exe, Args: []string{"-file", hp}}})
	url := "ftp://" + a.FTP + "/"
	if code, out := curl(t, a.FTP, "hanna", "hanna-secret", "-l", url); code != 0 {
		t.Fatalf("login before the kill: curl exit %d: %s", code, out)
	}
	info := pluginInfo(t, a)
	if len(info) != 1 || info[0].GetPid() == 0 {
		t.Fatalf("plugin info: %v", info)
	}
	pid := int(info[0].GetPid())

	if err := os.Rename(exe, exe+".away"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	if !eventually(5*time.Second, func() bool { return pluginInfo(t, a)[0].GetState() == "restarting" }) {
		t.Fatalf("plugin state after kill -9: %v", pluginInfo(t, a))
	}
	// Down: its logins fail closed; the agent serves everything else.
	if code, _ := curl(t, a.FTP, "hanna", "hanna-secret", "-l", url); code != 67 {
		t.Errorf("login while the plugin is down: curl exit %d, want 67 (refused)", code)
	}
	if code, out := curl(t, a.FTP, testagent.User, testagent.Password, "-l", url); code != 0 {
		t.Errorf("the agent's own user while the plugin is down: curl exit %d: %s", code, out)
	}
	if final := runTransfer(t, a, b.URL("src.bin"), "dst.bin"); final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Errorf("transfer while the plugin is down: %v %s", final.GetState(), final.GetError())
	}
	// Back: restarted with a new process, logins work again.
	if err := os.Rename(exe+".away", exe); err != nil {
		t.Fatal(err)
	}
	var p *ferryv1.PluginInfo
	if !eventually(45*time.Second, func() bool {
		p = pluginInfo(t, a)[0]
		return p.GetState() == "running"
	}) {
		t.Fatalf("plugin not restarted: %v", p)
	}
	if p.GetRestarts() != 1 || int(p.GetPid()) == pid || p.GetLastError() == "" {
		t.Errorf("after the restart: %v (want restarts 1, a new pid, the last error)", p)
	}
	if code, out := curl(t, a.FTP, "hanna", "hanna-secret", "-l", url); code != 0 {
		t.Errorf("login after the restart: curl exit %d: %s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Client.GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{}); err != nil {
		t.Errorf("API after all this: %v", err)
	}
}

// TestStartErrors: a plugin that cannot start stops the agent's start with an error naming
// it and saying why.
func TestStartErrors(t *testing.T) {
	notPlugin := filepath.Join(t.TempDir(), "not-a-plugin.sh")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		spec pluginhost.Spec
		want string
	}{
		{pluginhost.Spec{Path: "/nonexistent/plugin"}, "not found"},
		{pluginhost.Spec{Path: notPlugin}, "not a Ferry plugin"},
		{pluginhost.Spec{Path: bin(t, "auth-htpasswd")}, "-file: required"}, // its own words, from its stderr
		{pluginhost.Spec{Path: bin(t, "noop"), SHA256: strings.Repeat("ab", 32)}, "SHA-256 differs"},
	}
	for _, c := range cases {
		_, err := pluginhost.New(pluginhost.Config{Plugins: []pluginhost.Spec{c.spec}, StartTimeout: 5 * time.Second})
		if err == nil || !contains(err.Error(), c.want) || !contains(err.Error(), c.spec.Path) {
			t.Errorf("%s: error %v, want one naming it and saying %q", c.spec.Path, err, c.want)
		}
	}
}
