// Package testbin builds the ferry-agent and ferryctl binaries once per test binary, for tests
// that run them as processes (in network namespaces, or killed with SIGKILL).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-testbin-")
	if err != nil {
		return "", err
	}
	for _, b := range []struct{ out, pkg string }{
		{"ferry-agent", "github.com/ferry-dev/ferry/agent/cmd/ferry-agent"},
		{"ferryctl", "github.com/ferry-dev/ferry/ctl/cmd/ferryctl"},
	} {
		// As make build does (static, -trimpath): the tests run what ships, and make build
		// reuses these compiled packages.
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir, nil
})

// Dir returns the directory holding ferry-agent and ferryctl, building them on first use.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Cleanup removes the binaries (call it from TestMain after m.Run).
func Cleanup() {
	if dir, err := build(); err == nil && dir != "" {
		os.RemoveAll(dir)
	}
}
