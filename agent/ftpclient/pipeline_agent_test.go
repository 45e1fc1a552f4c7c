package ftpclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// agentPin returns the TLS pin of a test agent's FTP server (from a grant, as a peer gets it).
func agentPin(t *testing.T, a *testagent.Agent) *tls.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.Client.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "/", Access: ferryv1.Access_ACCESS_READ})
	if err != nil {
		t.Fatal(err)
	}
	pin, err := ftpclient.PinSHA256(resp.GetTlsCertSha256())
	if err != nil {
		t.Fatal(err)
	}
	return pin
}

// unmarkDialer hides PipelineMarker in the greeting (the first bytes read, before the client
// writes anything), so that the client logs in one command at a time against the same server.
type unmarkDialer struct{ conns []net.Conn }

func (d *unmarkDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.conns = append(d.conns, conn)
	return &unmarkConn{Conn: conn}, nil
}

type unmarkConn struct {
	net.Conn
	mu      sync.Mutex
	written bool
}

func (c *unmarkConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.written {
		m := []byte(ftpclient.PipelineMarker)
		copy(p[:n], bytes.ReplaceAll(p[:n], m, bytes.Repeat([]byte{'-'}, len(m))))
	}
	return n, err
}

func (c *unmarkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.written = true
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func agentConfig(a *testagent.Agent, tlsConf *tls.Config) ftpclient.Config {
	return ftpclient.Config{Addr: a.FTP, User: testagent.User, Password: testagent.Password, TLS: tlsConf,
		DialTimeout: 10 * time.Second, DataTimeout: 5 * time.Second, ReplyTimeout: 10 * time.Second}
}

// TestAgentPipelinedLogin: a Ferry agent announces login pipelining in its greeting; the client
// sends its login in one write, with and without TLS, and the session works (features read,
// binary mode, TLS-protected data connections).
func TestAgentPipelinedLogin(t *testing.T) {
	a := testagent.Start(t)
	if err := os.WriteFile(filepath.Join(a.Root, "f.bin"), []byte("pipelined login"), 0o644); err != nil {
		t.Fatal(err)
	}
	pin := agentPin(t, a)
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{{"ftps", pin}, {"ftp", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := ftpclient.Dial(ctx, agentConfig(a, tc.tls))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !c.Pipelined() {
				t.Error("Pipelined() = false toward a Ferry agent")
			}
			for _, f := range []string{"MLSD", "EPSV", "UTF8"} {
				if _, ok := c.Features()[f]; !ok {
					t.Errorf("feature %s missing from the pipelined FEAT: %v", f, c.Features())
				}
			}
			if tc.tls != nil {
				if _, ok := c.Features()["AUTH"]; !ok {
					t.Errorf("FEAT over TLS lacks AUTH TLS: %v", c.Features())
				}
			}
			// Over FTPS the client's data connection is TLS: it works only if the server took
			// the pipelined PROT P.
			r, err := c.Retr(ctx, "/f.bin", 0)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil || string(b) != "pipelined login" {
				t.Fatalf("RETR after a pipelined login: %q, %v", b, err)
			}
		})
	}
}

// TestAgentPipelinedLoginRefused: a wrong password fails the pipelined login with the error the
// one-command-at-a-time login gives against the same agent, promptly (the replies still due are
// not awaited), without the password in it, and leaves no goroutine or connection behind.
func TestAgentPipelinedLoginRefused(t *testing.T) {
	const wrong = "not-the-password-s3cr3t"
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"ftps", true}, {"ftp", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// An agent each: failed logins from one address make the next ones wait longer.
			a := testagent.Start(t)
			var conf *tls.Config
			if tc.tls {
				conf = agentPin(t, a)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dialFail := func(d ftpclient.ContextDialer) (error, time.Duration) {
				cfg := agentConfig(a, conf)
				cfg.Password, cfg.Dialer = wrong, d
				start := time.Now()
				c, err := ftpclient.Dial(ctx, cfg)
				if err == nil {
					c.Close()
					t.Fatal("Dial with a wrong password succeeded")
				}
				return err, time.Since(start)
			}
			// The sequential login first: its error is the reference.
			base := runtime.NumGoroutine()
			seq := &unmarkDialer{}
			want, _ := dialFail(seq)
			pd := &unmarkDialer{} // records the connection; the greeting is not read before Dial
			got, took := dialFail(&markDialer{pd})
			t.Logf("refused: %v (in %v)", got, took)
			if got.Error() != want.Error() {
				t.Errorf("pipelined login error\n got: %v\nwant: %v", got, want)
			}
			if !strings.Contains(got.Error(), `login as "ferry" failed: ftp 530`) {
				t.Errorf("error %q does not say the login failed with 530", got)
			}
			if strings.Contains(got.Error(), wrong) {
				t.Errorf("the password leaked into the error: %v", got)
			}
			// The agent delays a failed login (its LoginDelay); nothing else may be waited for.
			if took > 5*time.Second {
				t.Errorf("the refused pipelined login took %v", took)
			}
			// The client closed its control connection.
			if _, err := pd.conns[0].Write([]byte("NOOP\r\n")); err == nil || !strings.Contains(err.Error(), "closed") {
				t.Errorf("control connection still open after the failed login: write gave %v", err)
			}
			// No goroutine is left (the agent's session handlers end with the connections).
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > base {
				t.Errorf("%d goroutines after the failed login, %d before", n, base)
			}
		})
	}
}

// markDialer dials without touching the greeting, recording the connection in d.
type markDialer struct{ d *unmarkDialer }

func (m *markDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		m.d.conns = append(m.d.conns, conn)
	}
	return conn, err
}
