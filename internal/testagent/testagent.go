// Package testagent starts real ferry-agents in-process for tests: gRPC and FTP on 127.0.0.1:0,
// a temporary root, stopped in t.Cleanup.
package testagent

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// User and Password are the static FTP account every test agent has.
const (
	User     = "ferry"
	Password = "ferry-test-pw"
)

// Agent is a running test agent.
type Agent struct {
	GRPC   string // dialable gRPC address
	FTP    string // host:port of the FTP server
	Root   string
	D      *daemon.Daemon
	Client ferryv1.AgentServiceClient
}

// Start runs an agent; mods adjust the configuration before New.
func Start(t testing.TB, mods ...func(*daemon.Config)) *Agent {
	t.Helper()
	cfg := daemon.Config{
		GRPCListen:  "127.0.0.1:0",
		FTPListen:   "127.0.0.1:0",
		Root:        t.TempDir(),
		Users:       []ftpserver.User{{Name: User, Password: Password}},
		DataTimeout: 5 * time.Second,
		RetryBase:   50 * time.Millisecond, // retries come quickly in tests
	}
	for _, m := range mods {
		m(&cfg)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			t.Logf("agent run: %v", err)
		}
	}()
	conn, err := grpc.NewClient(d.Addr().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial agent: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("agent did not stop within 15s")
		}
	})
	return &Agent{
		GRPC: d.Addr().GRPC, FTP: d.Addr().FTP, Root: cfg.Root, D: d,
		Client: ferryv1.NewAgentServiceClient(conn),
	}
}

// URL returns agent://<grpc addr>/<path> for this agent.
func (a *Agent) URL(path string) string { return "agent://" + a.GRPC + "/" + path }
