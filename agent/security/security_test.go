package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func TestLoadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string, mode os.FileMode) string {
		p := filepath.Join(dir, "tokens")
		os.Remove(p)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("# fleet\nadmin aaaaaaaaaaaaaaaaaaaa\n\npeer  bbbbbbbbbbbbbbbbbbbb\nviewer cccccccccccccccccccc\n", 0o600)
	list, err := LoadTokenFile(good)
	if err != nil || len(list) != 3 || list[1].Role != RolePeer {
		t.Fatalf("LoadTokenFile: %v %v", list, err)
	}
	for body, want := range map[string]string{
		"root aaaaaaaaaaaaaaaaaaaa\n":  "tokens:1: unknown role",
		"admin short\n":                "tokens:1: token shorter",
		"admin a b\n":                  "tokens:1: want",
		"# nothing\n":                  "no tokens",
		"viewer xxxxxxxxxxxxxxxxxxxxx": "", // no newline at the end is fine
	} {
		_, err := LoadTokenFile(write(body, 0o600))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "xxxxxxxx") {
			t.Errorf("an error shows a token: %v", err)
		}
	}
	if _, err := LoadTokenFile(write("admin aaaaaaaaaaaaaaaaaaaa\n", 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable token file: %v", err)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role   Role
		method string
		ok     bool
	}{
		{RoleAdmin, ferryv1.AgentService_StartTransfer_FullMethodName, true},
		{RoleAdmin, ferryv1.AgentService_Diagnose_FullMethodName, true},
		{RolePeer, ferryv1.AgentService_GrantAccess_FullMethodName, true},
		{RolePeer, ferryv1.AgentService_ReverseTransfer_FullMethodName, true},
		{RolePeer, ferryv1.AgentService_WatchTransfer_FullMethodName, true},
		{RolePeer, ferryv1.AgentService_StartTransfer_FullMethodName, false},
		{RolePeer, ferryv1.AgentService_ListFiles_FullMethodName, false},
		{RolePeer, ferryv1.AgentService_Diagnose_FullMethodName, false},
		{RoleViewer, ferryv1.AgentService_ListTransfers_FullMethodName, true},
		{RoleViewer, ferryv1.AgentService_WatchTransfer_FullMethodName, true},
		{RoleViewer, ferryv1.AgentService_GrantAccess_FullMethodName, false},
		{RoleViewer, ferryv1.AgentService_CancelTransfer_FullMethodName, false},
		{RoleViewer, "/ferry.v1.AgentService/SomethingNew", false},
		{RoleNone, ferryv1.AgentService_GetAgentInfo_FullMethodName, false},
	} {
		if got := may(tc.role, tc.method); got != tc.ok {
			t.Errorf("may(%s, %s) = %v, want %v", tc.role, tc.method, got, tc.ok)
		}
	}
}

func TestEnsureAdminToken(t *testing.T) {
	dir := t.TempDir()
	tok, path, created, err := EnsureAdminToken(dir)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	again, _, created, err := EnsureAdminToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second: %q %v %v", again, created, err)
	}
	os.Chmod(path, 0o644)
	if _, _, _, err := EnsureAdminToken(dir); err == nil {
		t.Fatal("a world-readable admin token was accepted")
	}
}

func TestLocalOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true, "[::1]:7070": true, "localhost:7070": true, "unix:///run/f.sock": true,
		"0.0.0.0:7070": false, ":7070": false, "10.0.0.5:7070": false, "agent.example:7070": false,
	} {
		if got := LocalOnly(addr); got != want {
			t.Errorf("LocalOnly(%q) = %v", addr, got)
		}
	}
}
