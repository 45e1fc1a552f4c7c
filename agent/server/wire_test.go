package server_test

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/internal/testagent"
)

// wiretap is a TCP proxy that keeps a copy of every byte it forwards, both ways. It listens on
// proxyIP and connects to target from proxyIP, so both ends see the proxy's address as their
// peer's (FTP servers and clients check that data connections come from the control peer).
type wiretap struct {
	proxyIP string

	mu    sync.Mutex
	conns int
	seen  bytes.Buffer
	wg    sync.WaitGroup
	lns   []net.Listener
}

// forward listens on proxyIP:port (0: any) and forwards each connection to target.
func (w *wiretap) forward(port int, target string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(w.proxyIP, strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	w.lns = append(w.lns, ln)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.wg.Add(1)
			go w.pipe(c, target)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (w *wiretap) pipe(c net.Conn, target string) {
	defer w.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(w.proxyIP)}}
	s, err := d.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	w.mu.Lock()
	w.conns++
	w.mu.Unlock()
	var cw sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer cw.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				w.mu.Lock()
				w.seen.Write(buf[:n])
				w.mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	cw.Add(2)
	go cp(s, c)
	go cp(c, s)
	cw.Wait()
	c.Close()
	s.Close()
}

func (w *wiretap) close() {
	for _, ln := range w.lns {
		ln.Close()
	}
	w.wg.Wait()
}

func (w *wiretap) bytes() ([]byte, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.seen.Bytes()), w.conns
}

// freeRange finds n consecutive ports free on both 127.0.0.1 and ip.
func freeRange(t *testing.T, ip string, n int) int {
	t.Helper()
	for range 50 {
		lo := 20000 + rand.IntN(20000)
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			for _, h := range []string{"127.0.0.1", ip} {
				ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return lo
		}
	}
	t.Fatal("no free port range")
	return 0
}

// TestAgentToAgentEncryptedOnTheWire watches every byte of an agent-to-agent transfer: A
// reaches B's API at 127.0.0.2, so B's grant sends A's FTP session to 127.0.0.2, where a
// proxy records and forwards the control connection to B's FTP server and, in active mode, B's
// data connections back to A (A announces 127.0.0.2 in EPRT). A file full of a known marker
// moves both ways; with B's FTP TLS at its default the marker, the commands USER and PASS and
// the one-time user name never cross the wire in clear. With B's TLS off (the same test, as a
// control) they do.
func TestAgentToAgentEncryptedOnTheWire(t *testing.T) {
	const proxyIP = "127.0.0.2"
	if ln, err := net.Listen("tcp", proxyIP+":0"); err != nil {
		t.Skipf("no %s on this host: %v", proxyIP, err)
	} else {
		ln.Close()
	}
	marker := []byte("FERRY-PLAINTEXT-MARKER-0123456789\n")
	content := bytes.Repeat(marker, (2<<20)/len(marker))
	for _, tc := range []struct {
		tls       string
		encrypted bool
	}{{daemon.FTPTLSOptional, true}, {daemon.FTPTLSRequired, true}, {daemon.FTPTLSOff, false}} {
		t.Run("ftp-tls-"+tc.tls, func(t *testing.T) {
			w := &wiretap{proxyIP: proxyIP}
			defer w.close()
			const nPorts = 4
			lo := freeRange(t, proxyIP, nPorts)
			a := testagent.Start(t, func(c *daemon.Config) {
				c.ActiveAddr, c.ActiveBind = proxyIP, "127.0.0.1"
				c.ActivePorts = ftpclient.PortRange{Lo: lo, Hi: lo + nPorts - 1}
				c.Retries = -1
			})
			b := testagent.Start(t, func(c *daemon.Config) {
				c.GRPCListen = proxyIP + ":0"
				c.FTPTLS = tc.tls
			})
			_, ftpPort, _ := net.SplitHostPort(b.FTP)
			port, _ := strconv.Atoi(ftpPort)
			if _, err := w.forward(port, b.FTP); err != nil {
				t.Fatalf("proxy for B's FTP port: %v", err)
			}
			for p := lo; p < lo+nPorts; p++ {
				if _, err := w.forward(p, net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err != nil {
					t.Fatalf("proxy for A's active port %d: %v", p, err)
				}
			}
			if err := os.WriteFile(filepath.Join(b.Root, "secret.txt"), content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(a.Root, "up.txt"), content, 0o644); err != nil {
				t.Fatal(err)
			}
			active := modes[1].mode
			checkProgress(t, run(t, a, b.URL("secret.txt"), "got.txt", active), int64(len(content)), 1)
			checkProgress(t, run(t, a, "up.txt", b.URL("in/up.txt"), active), int64(len(content)), 1)
			for _, p := range []string{filepath.Join(a.Root, "got.txt"), filepath.Join(b.Root, "in", "up.txt")} {
				if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, content) {
					t.Fatalf("%s: %v, content equal %v", p, err, bytes.Equal(got, content))
				}
			}
			w.close()
			seen, conns := w.bytes()
			// Two control connections and at least two data connections (listing, file, hash).
			if conns < 4 || len(seen) < 2*len(content) {
				t.Fatalf("the proxy saw %d connections and %d bytes: the transfers did not go through it", conns, len(seen))
			}
			for what, needle := range map[string][]byte{
				"the file's marker": marker[:len(marker)-1], "USER": []byte("USER "), "PASS": []byte("PASS "),
			} {
				switch leaked := bytes.Contains(seen, needle); {
				case tc.encrypted && leaked:
					t.Errorf("%s seen in clear on the wire", what)
				case !tc.encrypted && !leaked:
					t.Errorf("control case: %s not seen in clear with TLS off (is the tap working?)", what)
				}
			}
			if tc.encrypted && !bytes.Contains(seen, []byte("AUTH TLS")) {
				t.Errorf("no AUTH TLS seen: the sessions were not explicit FTPS")
			}
		})
	}
}
