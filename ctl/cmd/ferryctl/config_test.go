package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
)

func TestContextsAndFTPLogins(t *testing.T) {
	a := testagent.Start(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "a.token")
	if err := os.WriteFile(tokenFile, []byte("admin "+testagent.AdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"FERRY_CONFIG=" + filepath.Join(dir, "config.yaml"), "NETRC=" + filepath.Join(dir, "netrc")}

	// No context yet: the default agent (nothing listens there in the test? it may): skip that.
	r := ferryctlEnv(t, env, "config", "set-context", "lab", "--address", a.GRPC, "--token-file", tokenFile)
	wantCode(t, r, 0)
	r = ferryctlEnv(t, env, "config", "set-context", "other", "--address", "127.0.0.1:1")
	wantCode(t, r, 0)
	// The first context became the current one: no --agent, no token in the environment.
	r = ferryctlEnv(t, env, "agent", "info", "-o", "json")
	wantCode(t, r, 0)
	// --agent NAME picks another context.
	r = ferryctlEnv(t, env, "--agent", "other", "agent", "info")
	wantCode(t, r, exitUnreachable)
	if !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("--agent other should dial its address: %q", r.stderr)
	}
	r = ferryctlEnv(t, env, "config", "use-context", "other")
	wantCode(t, r, 0)
	r = ferryctlEnv(t, env, "config", "get-contexts")
	if !strings.Contains(r.stdout, "* other") {
		t.Errorf("get-contexts should mark other current: %q", r.stdout)
	}
	r = ferryctlEnv(t, env, "config", "use-context", "nope")
	wantCode(t, r, exitNotFound)
	r = ferryctlEnv(t, env, "config", "view")
	wantCode(t, r, 0)
	if strings.Contains(r.stdout, testagent.AdminToken) || !strings.Contains(r.stdout, "lab:") {
		t.Errorf("config view: %q", r.stdout)
	}

	// FTP logins from ~/.netrc, then from the config (which wins): no password in argv.
	v := testftp.StartVsftpd(t, testftp.Options{})
	writeFile(t, a.Root, "up.bin", 1000)
	host := v.Addr[:strings.LastIndex(v.Addr, ":")]
	netrc := fmt.Sprintf("machine %s\n  login %s\n  password %s\n", host, v.User, v.Password)
	if err := os.WriteFile(filepath.Join(dir, "netrc"), []byte(netrc), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "ftp://" + v.Addr + v.Pub + "/n.bin"
	r = ferryctlEnv(t, env, "--agent", "lab", "copy", "up.bin", url)
	wantCode(t, r, 0)
	if _, err := os.Stat(v.Local(v.Pub + "/n.bin")); err != nil {
		t.Errorf("upload with the netrc login: %v", err)
	}
	// The config's login (here a refused password) comes before netrc's.
	cfg, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(v.BadPassword+"\n"), 0o600)
	cfg = append(cfg, []byte(fmt.Sprintf("ftp:\n  - host: %s\n    user: %s\n    password-file: %s\n", v.Addr, v.User, pw))...)
	os.WriteFile(filepath.Join(dir, "config.yaml"), cfg, 0o600)
	r = ferryctlEnv(t, env, "--agent", "lab", "copy", "up.bin", "ftp://"+v.Addr+v.Pub+"/c.bin", "--mode", "passive")
	if r.code == 0 || !strings.Contains(r.stderr, "530") {
		t.Errorf("the config's (refused) login should be used before netrc's")
	}
	if strings.Contains(r.stderr, v.BadPassword) {
		t.Errorf("the password shows in the error: %q", r.stderr)
	}
}
