package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testagent"
)

func TestVersionCompletionMan(t *testing.T) {
	a := testagent.Start(t)
	r := ferryctl(t, "--version")
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "ferryctl ") || !strings.Contains(r.stdout, "api ferry.v1") {
		t.Errorf("--version: %q", r.stdout)
	}
	r = ferryctl(t, "--agent", a.GRPC, "version", "-o", "json")
	wantCode(t, r, 0)
	var v struct {
		Client, Agent struct{ Version, API, Error string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Client.Version == "" || v.Agent.Version == "" || v.Agent.API != "ferry.v1" {
		t.Errorf("version -o json: %q (%v)", r.stdout, err)
	}
	r = ferryctl(t, "--agent", "127.0.0.1:1", "version")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "not reachable") {
		t.Errorf("version with no agent: %q", r.stdout)
	}

	// completion is listed, and completes modes, states and transfer IDs.
	if r = ferryctl(t, "--help"); !strings.Contains(r.stdout, "completion") || !strings.Contains(r.stdout, "sync") {
		t.Errorf("help should list completion and sync")
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r = ferryctl(t, "completion", sh); r.code != 0 || len(r.stdout) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, r.code, len(r.stdout))
		}
	}
	r = ferryctl(t, "__complete", "copy", "a", "b", "--mode", "")
	if !strings.Contains(r.stdout, "passive\n") || !strings.Contains(r.stdout, "active\n") {
		t.Errorf("--mode completion: %q", r.stdout)
	}
	r = ferryctl(t, "__complete", "transfers", "list", "--state", "")
	if !strings.Contains(r.stdout, "cancelled") {
		t.Errorf("--state completion: %q", r.stdout)
	}
	writeFile(t, a.Root, "x.bin", 10)
	r = ferryctl(t, "--agent", a.GRPC, "copy", "x.bin", a.URL("y.bin"), "--detach")
	wantCode(t, r, 0)
	id := strings.TrimSpace(r.stdout)
	r = ferryctl(t, "--agent", a.GRPC, "__complete", "transfers", "get", id[:3])
	if !strings.Contains(r.stdout, id) {
		t.Errorf("transfer ID completion lacks %s: %q", id, r.stdout)
	}

	// make man's generator: a page per command.
	dir := t.TempDir()
	wantCode(t, ferryctl(t, "__man", dir), 0)
	for _, page := range []string{"ferryctl.1", "ferryctl-sync.1", "ferryctl-copy.1", "ferryctl-config-use-context.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !strings.Contains(string(b), ".SH NAME") {
			t.Errorf("man page %s: %v", page, err)
		}
	}
}
