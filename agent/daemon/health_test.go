package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthFollowsStore: NOT_SERVING before Run, SERVING once serving, NOT_SERVING while the job
// store fails to write and SERVING again when it writes, NOT_SERVING for good from Close.
func TestHealthFollowsStore(t *testing.T) {
	d, err := New(Config{GRPCListen: "127.0.0.1:0", FTPListen: "127.0.0.1:0", Root: t.TempDir(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	status := func() healthgrpc.HealthCheckResponse_ServingStatus {
		r, err := d.health.Check(context.Background(), &healthgrpc.HealthCheckRequest{Service: "ferry.v1.AgentService"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	const up, down = healthgrpc.HealthCheckResponse_SERVING, healthgrpc.HealthCheckResponse_NOT_SERVING
	if s := status(); s != down {
		t.Errorf("before Run: %v", s)
	}
	d.setHealth(true, "", nil)
	if s := status(); s != up {
		t.Errorf("serving: %v", s)
	}
	st := &healthStore{Store: failing{}, d: d}
	if err := st.Put("x", nil); err == nil {
		t.Fatal("the failing store wrote")
	}
	if s := status(); s != down {
		t.Errorf("store failing: %v", s)
	}
	d.storeFailed(nil)
	if s := status(); s != up {
		t.Errorf("store back: %v", s)
	}
	d.Close()
	if s := status(); s != down {
		t.Errorf("closed: %v", s)
	}
}

type failing struct{}

func (failing) Put(string, []byte) error              { return errors.New("disk full") }
func (failing) Delete(string) error                   { return nil }
func (failing) List(func(string, []byte) error) error { return nil }

// TestNewFailsCleanly: a New that fails before the operations part exists closes what it opened
// without a panic.
func TestNewFailsCleanly(t *testing.T) {
	state := t.TempDir()
	if err := os.Mkdir(filepath.Join(state, "jobs.db"), 0o700); err != nil { // the store cannot open
		t.Fatal(err)
	}
	if _, err := New(Config{GRPCListen: "127.0.0.1:0", FTPListen: "127.0.0.1:0", Root: t.TempDir(), StateDir: state}); err == nil {
		t.Fatal("New succeeded with a directory as job store")
	}
	audit := filepath.Join(t.TempDir(), "no", "such", "dir", "audit.log")
	if _, err := New(Config{GRPCListen: "127.0.0.1:0", FTPListen: "127.0.0.1:0", Root: t.TempDir(), StateDir: t.TempDir(), AuditLog: audit}); err == nil || !strings.Contains(err.Error(), "audit-log") {
		t.Fatalf("New with an unwritable audit log: %v", err)
	}
}
