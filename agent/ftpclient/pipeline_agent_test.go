package ftpclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
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

// probeDialer records the control connections it makes and which came first on each, a read
// or a write; with hide it hides PipelineMarker in the greeting, so that the client logs in one
// command at a time against the same server.
type probeDialer struct {
	hide  bool
	conns []*probeConn
}

func (d *probeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	pc := &probeConn{Conn: conn, hide: d.hide}
	d.conns = append(d.conns, pc)
	return pc, nil
}

type probeConn struct {
	net.Conn
	hide       bool
	mu         sync.Mutex
	first      string // "read" or "write"
	ahead      int    // bytes written before the first read
	readOnce   bool
	greetingIn bool // the greeting's line end was read
}

func (c *probeConn) op(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first == "" {
		c.first = what
	}
}

func (c *probeConn) firstOp() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

func (c *probeConn) aheadBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ahead
}

func (c *probeConn) Read(p []byte) (int, error) {
	c.op("read")
	c.mu.Lock()
	c.readOnce = true
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hide && !c.greetingIn {
		m := []byte(ftpclient.PipelineMarker)
		copy(p[:n], bytes.ReplaceAll(p[:n], m, bytes.Repeat([]byte{'-'}, len(m))))
		c.greetingIn = bytes.Contains(p[:n], []byte("\n"))
	}
	return n, err
}

func (c *probeConn) Write(p []byte) (int, error) {
	c.op("write")
	c.mu.Lock()
	if !c.readOnce {
		c.ahead += len(p)
	}
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
			ctx, c := dialAgent(t, a, tc.tls)
			if !c.Pipelined() {
				t.Error("Pipelined() = false toward a Ferry agent")
			}
			// Loopback: the control connection's round trip is known, and far under the 5 ms
			// from which a file is split into parallel streams.
			if rtt := c.RTT(); rtt <= 0 || rtt > 5*time.Millisecond {
				t.Errorf("RTT() = %v on loopback, want (0, 5ms]", rtt)
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
			b, err := retrAll(ctx, c, "/f.bin", 0)
			if err != nil || string(b) != "pipelined login" {
				t.Fatalf("RETR after a pipelined login: %q, %v", b, err)
			}
			// EPSV, REST and the transfer command go in one flight to an agent: the ranges
			// are right both ways.
			b, err = retrAll(ctx, c, "/f.bin", 10)
			if err != nil || string(b) != "login" {
				t.Fatalf("RETR from offset 10: %q, %v", b, err)
			}
			w, err := c.Stor(ctx, "/f.bin", 10)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.WriteString(w, "pipelined "+tc.name)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			got, rerr := os.ReadFile(filepath.Join(a.Root, "f.bin"))
			if err != nil || rerr != nil || string(got) != "pipelined pipelined "+tc.name {
				t.Fatalf("STOR from offset 10: file %q (%v), %v", got, rerr, err)
			}
			if err := os.WriteFile(filepath.Join(a.Root, "f.bin"), []byte("pipelined login"), 0o644); err != nil {
				t.Fatal(err)
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
			dialFail := func(d ftpclient.ContextDialer) (time.Duration, error) {
				cfg := agentConfig(a, conf)
				cfg.Password, cfg.Dialer = wrong, d
				start := time.Now()
				c, err := ftpclient.Dial(ctx, cfg)
				if err == nil {
					c.Close()
					t.Fatal("Dial with a wrong password succeeded")
				}
				return time.Since(start), err
			}
			// The sequential login first: its error is the reference.
			_, want := dialFail(&probeDialer{hide: true})
			base := settledGoroutines() // the agent fully up, the reference session ended
			pd := &probeDialer{}
			took, got := dialFail(pd)
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
			// No goroutine is left (the agent's session handler ends with the connection).
			if n := settledGoroutines(); n > base {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines after the failed pipelined login, %d after the sequential one:\n%s",
					n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// settledGoroutines waits (up to 5 s) until the number of goroutines stays the same for 200 ms,
// and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for stable, deadline := 0, time.Now().Add(5*time.Second); stable < 10 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			stable++
		} else {
			n, stable = m, 0
		}
	}
	return n
}

// TestAgentEarlyAuthTLS: once an agent has announced PipelineMarker, the next FTPS session to it
// sends AUTH TLS and the ClientHello before reading anything, and works; a greeting without the
// marker (hidden here, after AUTH TLS and the ClientHello went out) still gives a working
// session, logged in one command at a time, and makes the client forget the address; plain FTP
// never writes first.
func TestAgentEarlyAuthTLS(t *testing.T) {
	a := testagent.Start(t)
	pin := agentPin(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := os.WriteFile(filepath.Join(a.Root, "f.bin"), []byte("early"), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		first     string
		ahead     int
		pipelined bool
	}
	dial := func(tlsConf *tls.Config, hide bool) result {
		t.Helper()
		d := &probeDialer{hide: hide}
		cfg := agentConfig(a, tlsConf)
		cfg.Dialer = d
		c, err := ftpclient.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := retrAll(ctx, c, "/f.bin", 0) // a TLS data connection
		if err != nil || string(b) != "early" {
			t.Fatalf("RETR: %q, %v", b, err)
		}
		return result{d.conns[0].firstOp(), d.conns[0].aheadBytes(), c.Pipelined()}
	}
	dial(pin, false) // learns (an earlier test may have taught it already: no assertion)
	// AUTH TLS (10 bytes) and a ClientHello (hundreds) before the first read.
	if r := dial(pin, false); r.first != "write" || r.ahead < 100 || !r.pipelined {
		t.Fatalf("second FTPS session: %+v; want AUTH TLS and the ClientHello written first, pipelined", r)
	}
	if r := dial(pin, true); r.first != "write" || r.pipelined {
		t.Fatalf("session with the marker hidden: %+v; want an early start, then a sequential login", r)
	}
	if r := dial(pin, false); r.first != "read" || !r.pipelined {
		t.Fatalf("after a greeting without the marker: %+v; want the greeting read first", r)
	}
	if r := dial(nil, false); r.first != "read" {
		t.Fatalf("plain FTP session: %+v, want the greeting read first", r)
	}
}

// TestAgentTransferDigest: the pipelined login asks an agent for digests in transfer replies
// (OPTS XDIGEST ON), so HashSize of a file just moved whole answers from the 226 without
// asking the agent: it still answers after the file was removed behind the agent's back, once;
// the next one, or one for another size, asks the agent (and gets 550).
func TestAgentTransferDigest(t *testing.T) {
	a := testagent.Start(t)
	data := bytes.Repeat([]byte("digest in the 226 reply "), 50000)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(a.Root, "d.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, c := dialAgent(t, a, agentPin(t, a))
	if _, err := retrAll(ctx, c, "/d.bin", 0); err != nil {
		t.Fatal(err)
	}
	// storRemoved uploads data to e.bin, then removes it behind the agent's back.
	storRemoved := func() {
		t.Helper()
		w, err := c.Stor(ctx, "/e.bin", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(a.Root, "e.bin")); err != nil {
			t.Fatal(err)
		}
	}
	storRemoved()
	size := int64(len(data))
	if got, err := c.HashSize(ctx, "/e.bin", size); err != nil || got != want {
		t.Fatalf("HashSize after STOR = %q, %v; want %s from the 226", got, err, want)
	}
	if _, err := c.HashSize(ctx, "/e.bin", size); err == nil {
		t.Fatal("a second HashSize of the removed file succeeded: the digest was used twice")
	}
	// A digest of another size (the first of parallel ranges) is not the file's: HASH is asked.
	storRemoved()
	if _, err := c.HashSize(ctx, "/e.bin", 2*size); err == nil {
		t.Fatal("HashSize for another size used the 226's digest")
	}
	// The RETR's digest was replaced by the STOR's: HashSize of d.bin asks the agent.
	if got, err := c.HashSize(ctx, "/d.bin", size); err != nil || got != want {
		t.Fatalf("HashSize of d.bin = %q, %v", got, err)
	}
}

// TestAgentRenameOneFlight: to an agent RNFR and RNTO go in one write; a rename works, a
// refused RNFR is reported as RNFR's error (the RNTO behind it is refused too, and its reply
// read), a refused RNTO as RNTO's, and the session stays usable after each.
func TestAgentRenameOneFlight(t *testing.T) {
	a := testagent.Start(t)
	if err := os.WriteFile(filepath.Join(a.Root, "r.bin"), []byte("rename"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, c := dialAgent(t, a, agentPin(t, a))
	if err := c.Rename(ctx, "/r.bin", "/s.bin"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(a.Root, "s.bin")); err != nil || string(b) != "rename" {
		t.Fatalf("s.bin after the rename: %q, %v", b, err)
	}
	err := c.Rename(ctx, "/missing.bin", "/t.bin")
	if err == nil || !strings.HasPrefix(err.Error(), "ftp RNFR /missing.bin: ") {
		t.Fatalf("rename of a missing file: %v, want RNFR's error", err)
	}
	err = c.Rename(ctx, "/s.bin", "/no/such/dir/t.bin")
	if err == nil || !strings.HasPrefix(err.Error(), "ftp RNTO /no/such/dir/t.bin: ") {
		t.Fatalf("rename into a missing directory: %v, want RNTO's error", err)
	}
	if err := c.Rename(ctx, "/s.bin", "/u.bin"); err != nil {
		t.Fatalf("the session after two refusals: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.Root, "u.bin")); err != nil {
		t.Fatal(err)
	}
}

// retrAll reads path from offset to its end, then closes the transfer (its final reply).
func retrAll(ctx context.Context, c *ftpclient.Client, path string, offset int64) ([]byte, error) {
	r, err := c.Retr(ctx, path, offset)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// dialAgent logs in to agent a (FTPS with tlsConf, or plain FTP) for a test of 20 s at most;
// the session and the context end with the test.
func dialAgent(t *testing.T, a *testagent.Agent, tlsConf *tls.Config) (context.Context, *ftpclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	c, err := ftpclient.Dial(ctx, agentConfig(a, tlsConf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}
