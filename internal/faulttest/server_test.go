package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
)

// blackholeProxy is a deliberately hostile FTP proxy for TestSilentDataConnection: it relays a
// control connection to a real server, rewriting PASV/EPSV replies so that data connections go
// through it too, and it accepts the FIRST data connection and then sends nothing on it (the
// server's bytes are never read). Later data connections are relayed faithfully.
type blackholeProxy struct {
	t      *testing.T
	host   *testbed.Host
	server string // the real server's control address, inside host
	ln     net.Listener
	data   atomic.Int32

	mu      sync.Mutex
	conns   []net.Conn
	holeAt  time.Time // when the blackholed data connection was accepted
	holeEnd time.Time // when the client gave up on it
}

var (
	pasvReply = regexp.MustCompile(`^227 .*?\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)`)
	epsvReply = regexp.MustCompile(`^229 .*\(\|\|\|(\d+)\|\)`)
)

func startBlackholeProxy(t *testing.T, h *testbed.Host, listen, server string) *blackholeProxy {
	t.Helper()
	ln, err := h.Listen(context.Background(), "tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{t: t, host: h, server: server, ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.control(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *blackholeProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, cs...)
	p.mu.Unlock()
}

func (p *blackholeProxy) control(client net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	server, err := p.host.Dial(ctx, "tcp", p.server)
	cancel()
	if err != nil {
		client.Close()
		return
	}
	p.track(client, server)
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	r := bufio.NewReader(server)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			client.Close()
			return
		}
		if m := pasvReply.FindStringSubmatch(line); m != nil {
			hi, _ := strconv.Atoi(m[5])
			lo, _ := strconv.Atoi(m[6])
			port := p.relayData(fmt.Sprintf("%s.%s.%s.%s:%d", m[1], m[2], m[3], m[4], hi*256+lo))
			line = fmt.Sprintf("227 Entering Passive Mode (127,0,0,1,%d,%d).\r\n", port/256, port%256)
		} else if m := epsvReply.FindStringSubmatch(line); m != nil {
			host, _, _ := net.SplitHostPort(p.server)
			port := p.relayData(net.JoinHostPort(host, m[1]))
			line = fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)\r\n", port)
		}
		if _, err := io.WriteString(client, line); err != nil {
			server.Close()
			return
		}
	}
}

// relayData listens for one data connection and connects it to the server's data address; it
// returns the port it listens on.
func (p *blackholeProxy) relayData(serverData string) int {
	ln, err := p.host.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Errorf("proxy: %v", err)
		return 0
	}
	go func() {
		defer ln.Close()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
		client, err := ln.Accept()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		server, err := p.host.Dial(ctx, "tcp", serverData)
		cancel()
		if err != nil {
			client.Close()
			return
		}
		p.track(client, server)
		if p.data.Add(1) == 1 {
			// The hostile part: hold the connection open and send nothing. Reading from the
			// client only tells when it gives up.
			p.mu.Lock()
			p.holeAt = time.Now()
			p.mu.Unlock()
			_, _ = io.Copy(io.Discard, client)
			p.mu.Lock()
			p.holeEnd = time.Now()
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		go func() {
			_, _ = io.Copy(server, client)
			server.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(client, server)
		client.(*net.TCPConn).CloseWrite()
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSilentDataConnection: the server accepts the data connection and then sends nothing (a
// hostile proxy in front of vsftpd, see blackholeProxy). With --stall-timeout 3s the attempt must
// fail on the stall, and the retry (relayed faithfully) must complete.
func TestSilentDataConnection(t *testing.T) {
	const size = 32 << 20
	const stall = 3 * time.Second
	bed := newBed(t)
	h := bed.Host("h")
	v := startVsftpd(t, h, 21)
	sha := writeRandom(t, filepath.Join(v.Pub(), "f.bin"), size)
	proxy := startBlackholeProxy(t, h, "127.0.0.1:2100", "127.0.0.1:21")
	a := startAgent(t, h, netip.MustParseAddr("127.0.0.1"), "", "--stall-timeout", stall.String())

	const src = "ftp://anonymous:ferry%40ferry.invalid@127.0.0.1:2100/pub/f.bin"
	id := a.startCopy(src, "in/f.bin", "--mode", "passive").GetId()
	w := watchFinal(t, filepath.Join(a.root, "in", "f.bin"), size)
	a.waitFinal(id, time.Minute)
	got := a.get(id)
	t.Logf("ferryctl transfers get: %s", brief(got))
	mustSucceed(t, got, sha)
	w.check(t, sha)

	proxy.mu.Lock()
	holeAt, holeEnd := proxy.holeAt, proxy.holeEnd
	proxy.mu.Unlock()
	if holeAt.IsZero() {
		t.Fatal("the agent never opened a data connection through the proxy")
	}
	fails := a.failures(id)
	if len(fails) != 1 {
		t.Errorf("failed attempts: %s; want exactly one (the silent one)", fmtFailures(fails, holeAt))
	}
	if got.GetAttempt() != 2 {
		t.Errorf("attempt = %d, want 2 (the silent one and its retry)", got.GetAttempt())
	}
	var detect time.Duration
	if len(fails) > 0 {
		detect = fails[0].at.Sub(holeAt)
		if !strings.Contains(fails[0].err, "stalled") {
			t.Errorf("first attempt failed with %q, want a stall", fails[0].err)
		}
	}
	closed := holeEnd.Sub(holeAt)
	// The data connection is given up within the stall timeout (the client checks the deadline
	// lazily: after 3/4 to 4/4 of it); the attempt then ends after the client's 3 s wait for the
	// server's reply on the control connection, which a silent server never sends.
	if holeEnd.IsZero() || closed > stall+time.Second {
		t.Errorf("the silent data connection was closed by the agent after %v, want within the stall timeout %v", closed, stall)
	}
	if detect > stall+3*time.Second+2*time.Second {
		t.Errorf("the attempt failed %v after the silent data connection opened, want within %v (stall timeout) + 3 s (reply wait) + 2 s", detect, stall)
	}
	figure(t, "silent data connection, --stall-timeout %v: data connection dropped after %v, attempt failed after %v; attempts %d",
		stall, closed.Round(10*time.Millisecond), detect.Round(10*time.Millisecond), got.GetAttempt())
}

// TestServerRestart: the FTP server is restarted mid-download: (a) vsftpd, killed with its
// session processes and started again on the same port a second later; (b) a Ferry agent
// addressed as a plain FTP server (ftp://), stopped with SIGTERM and started again. The
// downloading agent must retry and complete, resuming its part file.
func TestServerRestart(t *testing.T) {
	const size = 64 << 20
	t.Run("vsftpd", func(t *testing.T) {
		p := newPair(t, 100)
		v := startVsftpd(t, p.b, 21)
		sha := writeRandom(t, filepath.Join(v.Pub(), "f.bin"), size)
		a := startAgent(t, p.a, p.addrA, "")
		id := a.startCopy(v.url(p.addrB.String(), "f.bin"), "in/f.bin", "--mode", "passive").GetId()
		w := watchFinal(t, filepath.Join(a.root, "in", "f.bin"), size)
		a.waitBytes(id, size*4/10, time.Minute)
		restartAt := time.Now()
		v.restart(time.Second)
		held := a.heldAfterFailure(id, restartAt, filepath.Join(a.root, "in"), 10*time.Second)
		a.waitFinal(id, 2*time.Minute)
		got := a.get(id)
		t.Logf("ferryctl transfers get: %s", brief(got))
		mustSucceed(t, got, sha)
		w.check(t, sha)
		if got.GetBytesResumed() <= 0 {
			t.Errorf("bytes_resumed = 0: the retry did not resume the part file (size and mtime unchanged)")
		}
		figure(t, "vsftpd restarted (down 1 s) at %.0f%%: detected in %s; attempts %d; %s",
			100*float64(held)/size, a.detection(id, restartAt), got.GetAttempt(), resent(held, got.GetBytesResumed(), size))
	})
	t.Run("agent", func(t *testing.T) {
		p := newPair(t, 100)
		b := startAgent(t, p.b, p.addrB, "")
		sha := writeRandom(t, filepath.Join(b.root, "f.bin"), size)
		a := startAgent(t, p.a, p.addrA, "")
		id := a.startCopy(b.ftpURL("f.bin"), "in/f.bin", "--mode", "passive").GetId()
		w := watchFinal(t, filepath.Join(a.root, "in", "f.bin"), size)
		a.waitBytes(id, size*4/10, time.Minute)
		restartAt := time.Now()
		stopped := b.term()
		held := a.heldAfterFailure(id, restartAt, filepath.Join(a.root, "in"), 10*time.Second)
		b.start()
		a.waitFinal(id, 2*time.Minute)
		got := a.get(id)
		t.Logf("ferryctl transfers get: %s", brief(got))
		mustSucceed(t, got, sha)
		w.check(t, sha)
		if got.GetBytesResumed() <= 0 {
			t.Errorf("bytes_resumed = 0: the retry did not resume the part file")
		}
		figure(t, "agent FTP server restarted (SIGTERM, exit in %v) at %.0f%%: detected in %s; attempts %d; %s",
			stopped.Round(10*time.Millisecond), 100*float64(held)/size, a.detection(id, restartAt), got.GetAttempt(),
			resent(held, got.GetBytesResumed(), size))
	})
}
