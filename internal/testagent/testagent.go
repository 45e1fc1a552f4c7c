// Package testagent starts real ferry-agents in-process for tests: gRPC and FTP on 127.0.0.1:0,
// a temporary root, stopped in t.Cleanup.
package testagent

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/security"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// User and Password are the static FTP account every test agent has.
const (
	User     = "ferry"
	Password = "ferry-test-pw"
)

// The API tokens every test agent accepts (random per test process): tests run with
// authentication on, as agents do. Agents call each other with PeerToken.
var (
	AdminToken  = mustToken()
	PeerToken   = mustToken()
	ViewerToken = mustToken()
)

func mustToken() string {
	t, err := security.NewTokenValue()
	if err != nil {
		panic(err)
	}
	return t
}

// TokenFile writes an agent token file (mode 0600) accepting the three test tokens, and
// returns its path; PeerTokenFile one holding PeerToken, for --peer-token-file.
func TokenFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	body := "# test tokens\nadmin " + AdminToken + "\npeer " + PeerToken + "\nviewer " + ViewerToken + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// PeerTokenFile writes PeerToken to a file for --peer-token-file.
func PeerTokenFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "peer.token")
	if err := os.WriteFile(p, []byte(PeerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Dial connects to a test agent's API presenting token.
func Dial(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(token)))
	if err != nil {
		t.Fatalf("dial agent: %v", err)
	}
	return conn
}

// Agent is a running test agent.
type Agent struct {
	GRPC   string // dialable gRPC address
	FTP    string // host:port of the FTP server
	Root   string
	D      *daemon.Daemon
	Client ferryv1.AgentServiceClient
	Config daemon.Config // as started (addresses as given)

	stop func()
}

// Stop shuts the agent down now (as SIGTERM would) and waits for it; Cleanup does it otherwise.
func (a *Agent) Stop() { a.stop() }

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
		Tokens: []security.Token{
			{Role: security.RoleAdmin, Value: AdminToken},
			{Role: security.RolePeer, Value: PeerToken},
			{Role: security.RoleViewer, Value: ViewerToken},
		},
		PeerToken: PeerToken,
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
	conn := Dial(t, d.Addr().GRPC, AdminToken)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			conn.Close()
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("agent did not stop within 15s")
			}
		})
	}
	t.Cleanup(stop)
	return &Agent{
		GRPC: d.Addr().GRPC, FTP: d.Addr().FTP, Root: cfg.Root, D: d,
		Client: ferryv1.NewAgentServiceClient(conn), Config: cfg, stop: stop,
	}
}

// Restart stops the agent and starts a new one on the same root, state directory and
// addresses (the gRPC and FTP ports it had), as a restarted process would.
func (a *Agent) Restart(t testing.TB) *Agent {
	t.Helper()
	a.Stop()
	cfg := a.Config
	cfg.GRPCListen, cfg.FTPListen = a.GRPC, a.FTP
	return Start(t, func(c *daemon.Config) { *c = cfg })
}

// URL returns agent://<grpc addr>/<path> for this agent.
func (a *Agent) URL(path string) string { return "agent://" + a.GRPC + "/" + path }
