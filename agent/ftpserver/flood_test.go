package ftpserver

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dialFrom connects to addr from the local IP src ("" = any): 127.0.0.2 is a second source
// address on Linux loopback.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

// guessPasswords sends wrong passwords for testUser to addr for d over conns parallel
// connections, reconnecting whenever the server closes one (after 3 failures), and returns the
// number of guesses answered within d.
func guessPasswords(t *testing.T, addr string, conns int, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	var guesses atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				c, err := dialFrom("", addr)
				if err != nil {
					return
				}
				_ = c.SetDeadline(deadline)
				tp := textproto.NewConn(c)
				if code, _, err := tp.ReadResponse(0); err != nil || code != 220 {
					tp.Close()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				for {
					if err := tp.PrintfLine("USER %s", testUser); err != nil {
						break
					}
					if _, _, err := tp.ReadResponse(331); err != nil {
						break
					}
					if err := tp.PrintfLine("PASS guess-%d", n); err != nil {
						break
					}
					code, _, err := tp.ReadResponse(0)
					if err != nil {
						break
					}
					if code == 530 && time.Now().Before(deadline) {
						guesses.Add(1)
					}
				}
				tp.Close()
			}
		}()
	}
	wg.Wait()
	return int(guesses.Load())
}

// TestLoginFloodSlowed measures password guesses per second from one address without the
// login delay (the code path before it existed: Config.LoginDelay < 0) and with the defaults,
// with one connection and with eight in parallel, and checks the slowdown. Refused logins are
// logged with the user and the address, never the password.
func TestLoginFloodSlowed(t *testing.T) {
	const window = 3 * time.Second
	before := startServer(t, func(c *Config) { c.LoginDelay = -1 })
	nBefore := guessPasswords(t, before.Addr().String(), 1, time.Second)
	rateBefore := float64(nBefore) / time.Second.Seconds()

	var logs syncBuffer
	after := startServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	nAfter := guessPasswords(t, after.Addr().String(), 1, window)
	rateAfter := float64(nAfter) / window.Seconds()

	parallel := startServer(t, nil)
	nPar := guessPasswords(t, parallel.Addr().String(), 8, window)
	ratePar := float64(nPar) / window.Seconds()

	t.Logf("guesses/s from one address: %.0f without the delay; %.2f with it (%d in %v); %.2f over 8 parallel connections (%d in %v)",
		rateBefore, rateAfter, nAfter, window, ratePar, nPar, window)
	// One connection: 0.5 s, 1 s, 2 s...: guesses at 0, 0.5, 1.5 (3.5) s. Eight connections:
	// their first guesses go together (no failure yet), then all wait 8 s: the first burst is
	// bounded by the connections one address may hold (MaxConnsPerIP).
	if nAfter > 4 || nPar > 8+2 {
		t.Errorf("with the delay: %d guesses (1 conn) and %d (8 conns) in %v, want at most 4 and 10", nAfter, nPar, window)
	}
	if rateBefore < 30*max(rateAfter, ratePar) {
		t.Errorf("slowdown below 30x: %.1f/s before, %.2f/s and %.2f/s after", rateBefore, rateAfter, ratePar)
	}
	out := logs.String()
	if !strings.Contains(out, "ftp login refused") || !strings.Contains(out, "user="+testUser) ||
		!strings.Contains(out, "remote=127.0.0.1:") || !strings.Contains(out, "nextDelay=") {
		t.Errorf("refused logins not logged with user and address:\n%s", out)
	}
	if strings.Contains(out, "guess-") {
		t.Errorf("log contains a password:\n%s", out)
	}
}

// TestLoginLimiter checks the delays on a fake clock: doubling to the cap, one step forgiven
// per quiet minute, attempts from one source serialized, sources independent, a queue too long
// refused.
func TestLoginLimiter(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newLoginLimiter(500*time.Millisecond, 8*time.Second)
	l.now = func() time.Time { return now }
	const a, b = "192.0.2.1", "192.0.2.2"

	if w, ok := l.admit(a); w != 0 || !ok {
		t.Fatalf("first attempt waits %v", w)
	}
	var got []time.Duration
	for range 7 {
		got = append(got, l.failed(a))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if w, _ := l.admit(b); w != 0 {
		t.Errorf("another source waits %v", w)
	}
	// Parallel attempts are spaced by the current delay.
	w1, _ := l.admit(a)
	w2, _ := l.admit(a)
	if w1 != 8*time.Second || w2 != 16*time.Second {
		t.Errorf("parallel attempts wait %v and %v, want 8s and 16s", w1, w2)
	}
	l.admit(a)
	l.admit(a)
	if _, ok := l.admit(a); ok {
		t.Errorf("a fifth queued attempt (40 s away) admitted")
	}
	// Quiet periods forgive one step each: 7 steps, 3 minutes later 4 remain (delay 4 s).
	now = now.Add(3*time.Minute + time.Second)
	if w, _ := l.admit(a); w != 0 {
		t.Errorf("after the queue drained: wait %v", w)
	}
	if d := l.failed(a); d != 8*time.Second {
		t.Errorf("after 3 quiet minutes, 5th step: %v, want 8s", d)
	}
	now = now.Add(10 * time.Minute)
	if d := l.failed(a); d != 500*time.Millisecond {
		t.Errorf("after 10 quiet minutes: %v, want 500ms", d)
	}
	if newLoginLimiter(-1, time.Second) != nil {
		t.Errorf("negative delay: limiter not off")
	}
}

// readLine reads the first reply line on c (or the error).
func readLine(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestConnectionLimits opens 300 connections from one address against MaxConnsPerIP=5: five
// are served, the rest get 421 and are closed; another address is still served, and a slot
// freed by a closed session is reused. MaxConns counts all addresses.
func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConnsPerIP = 5; c.MaxConns = 8 })
	addr := ts.Addr().String()
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	served, refused := 0, 0
	for i := 0; i < 300; i++ {
		c, err := dialFrom("127.0.0.1", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		line, err := readLine(c)
		switch {
		case strings.HasPrefix(line, "220 "):
			served++
			held = append(held, c)
			continue
		case strings.HasPrefix(line, "421 Too many connections"):
			refused++
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("refused connection not closed: %v", err)
			}
		default:
			t.Fatalf("connection %d: %q, %v", i, line, err)
		}
		c.Close()
	}
	t.Logf("300 connections from 127.0.0.1 with MaxConnsPerIP=5: %d served, %d refused with 421", served, refused)
	if served != 5 || refused != 295 {
		t.Fatalf("served %d, refused %d; want 5 and 295", served, refused)
	}

	// Another address gets its own five, up to MaxConns=8 in all.
	for i := 0; i < 4; i++ {
		c, err := dialFrom("127.0.0.2", addr)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := readLine(c)
		want := "220 "
		if i == 3 {
			want = "421 " // 5 + 3 = 8
		}
		if !strings.HasPrefix(line, want) {
			t.Fatalf("127.0.0.2 connection %d: %q, want %q", i, line, want)
		}
		if want == "220 " {
			held = append(held, c)
		} else {
			c.Close()
		}
	}

	// A session that ends frees its slot.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialFrom("127.0.0.1", addr)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := readLine(c)
		if strings.HasPrefix(line, "220 ") {
			held = append(held, c)
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after a session ended: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pasvPort logs in on f and returns the port of an EPSV reply.
func epsvPort(t *testing.T, f *rawFTP) int {
	t.Helper()
	m := epsvRe.FindStringSubmatch(f.expect(229, "EPSV"))
	if m == nil {
		t.Fatal("bad EPSV reply")
	}
	p, _ := strconv.Atoi(m[1])
	return p
}

// TestPassiveBindsListenAddr: with Listen on 127.0.0.1, passive listeners accept on 127.0.0.1
// only (127.0.0.2 is refused by the kernel: nothing listens there), with any port and with a
// PassivePorts range, and transfers work; with an unspecified Listen they accept on any
// address, as ftpserverlib binds them.
func TestPassiveBindsListenAddr(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		ports        PortRange
		bound        bool
	}{
		{"specific IP, any port", "127.0.0.1:0", PortRange{}, true},
		{"specific IP, port range", "127.0.0.1:0", PortRange{Lo: 41200, Hi: 41209}, true},
		{"unspecified", "0.0.0.0:0", PortRange{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) { c.Listen = tc.listen; c.PassivePorts = tc.ports })
			sum := writeRandom(t, ts.root, "f.bin", 100000)
			ctl, err := dialFrom("127.0.0.1", net.JoinHostPort("127.0.0.1", strconv.Itoa(ts.port)))
			if err != nil {
				t.Fatal(err)
			}
			_ = ctl.SetDeadline(time.Now().Add(rawTimeout))
			f := &rawFTP{t: t, conn: ctl, tp: textproto.NewConn(ctl)}
			t.Cleanup(func() { f.tp.Close() })
			f.read()
			if code := f.login(testUser, testPass); code != 230 {
				t.Fatalf("login: %d", code)
			}
			for i := 0; i < 2; i++ { // twice: the port range's ports are reused
				port := epsvPort(t, f)
				if !tc.ports.isZero() && (port < tc.ports.Lo || port > tc.ports.Hi) {
					t.Fatalf("port %d outside %v", port, tc.ports)
				}
				other, err := dialFrom("127.0.0.1", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
				if tc.bound {
					if err == nil {
						other.Close()
						t.Fatalf("passive port %d reachable on 127.0.0.2", port)
					}
					if !errors.Is(err, syscall.ECONNREFUSED) {
						t.Fatalf("dial 127.0.0.2:%d: %v, want connection refused", port, err)
					}
				} else {
					if err != nil {
						t.Fatalf("unspecified listen: passive port not reachable on 127.0.0.2: %v", err)
					}
					other.Close()
					f.expect(229, "EPSV") // the connection above used the listener up
					port = epsvPort(t, f)
				}
				d, err := dialFrom("127.0.0.1", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
				if err != nil {
					t.Fatalf("dial data: %v", err)
				}
				f.expect(150, "RETR f.bin")
				b, _ := io.ReadAll(d)
				d.Close()
				if code, _ := f.read(); code != 226 || sha256Hex(b) != sum {
					t.Fatalf("RETR: %d, %d bytes", code, len(b))
				}
			}
		})
	}
}

// TestForeignPassiveConnectionRefused: a data connection to the passive port from another
// address than the control connection's (127.0.0.2 vs 127.0.0.1) gets no data and the transfer
// fails (ftpserverlib's PasvConnectionsCheck = IPMatchRequired).
func TestForeignPassiveConnectionRefused(t *testing.T) {
	ts := startServer(t, nil)
	writeRandom(t, ts.root, "secret.bin", 50000)
	f := dialRaw(t, ts)
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatalf("login: %d", code)
	}
	port := epsvPort(t, f)
	thief, err := dialFrom("127.0.0.2", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	defer thief.Close()
	code, msg := f.cmd("RETR secret.bin")
	if code == 150 {
		code, msg = f.read()
	}
	if code < 400 {
		t.Fatalf("RETR with a foreign data connection: %d %q, want a refusal", code, msg)
	}
	// The session goes on: a data connection from the right address works (its EPSV also
	// closes the refused connection).
	if _, code := f.retr("secret.bin"); code != 226 {
		t.Errorf("RETR afterwards: %d", code)
	}
	_ = thief.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, thief)
	if n != 0 || err != nil {
		t.Fatalf("foreign data connection received %d bytes (%v)", n, err)
	}
	t.Logf("RETR with a data connection from 127.0.0.2: %d %q; the foreign connection got 0 bytes", code, msg)
}
