package ftpclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hostileServer is a deliberately hostile FTP server that no real peer can
// play: it logs in like a normal server, then answers the commands a test
// hands to its handler with endless replies, endless listings, silent or
// reset data connections. Raw sockets on 127.0.0.1:0.
type hostileServer struct {
	Addr string
	// Feat is the FEAT reply (default: EPSV only, so List uses LIST).
	Feat []string
	// RcvBuf, when > 0, is the SO_RCVBUF of the passive listener (and so of
	// the accepted data connections): a small window for upload stalls.
	RcvBuf int
	// Handle answers every command the built-in login/EPSV/ABOR/QUIT
	// handling does not. It runs on the control connection's goroutine.
	Handle func(h *hostileConn, verb, arg string)
}

// hostileConn is one control session of a hostileServer.
type hostileConn struct {
	srv  *hostileServer
	ctrl net.Conn
	pasv net.Listener // listener announced by the last EPSV
	mu   sync.Mutex
	data []net.Conn // accepted data connections, closed at the end
}

// reply writes raw lines on the control connection.
func (h *hostileConn) reply(lines ...string) error {
	for _, l := range lines {
		if _, err := io.WriteString(h.ctrl, l+"\r\n"); err != nil {
			return err
		}
	}
	return nil
}

// accept accepts the data connection on the last EPSV listener.
func (h *hostileConn) accept() net.Conn {
	if h.pasv == nil {
		return nil
	}
	_ = h.pasv.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	conn, err := h.pasv.Accept()
	h.pasv.Close()
	h.pasv = nil
	if err != nil {
		return nil
	}
	h.mu.Lock()
	h.data = append(h.data, conn)
	h.mu.Unlock()
	return conn
}

func (h *hostileConn) close() {
	h.ctrl.Close()
	if h.pasv != nil {
		h.pasv.Close()
	}
	h.mu.Lock()
	for _, c := range h.data {
		c.Close()
	}
	h.mu.Unlock()
}

func startHostile(t *testing.T, s *hostileServer) *hostileServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []*hostileConn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, h := range conns {
			h.close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			h := &hostileConn{srv: s, ctrl: conn}
			mu.Lock()
			conns = append(conns, h)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer h.close()
				h.serve()
			}()
		}
	}()
	return s
}

func (h *hostileConn) serve() {
	_ = h.ctrl.SetDeadline(time.Now().Add(60 * time.Second))
	_ = h.reply("220 hostile")
	r := bufio.NewReader(h.ctrl)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "USER":
			err = h.reply("331 password please")
		case "PASS":
			err = h.reply("230 logged in")
		case "TYPE":
			err = h.reply("200 binary")
		case "FEAT":
			feat := h.srv.Feat
			if feat == nil {
				feat = []string{" EPSV"}
			}
			err = h.reply(append(append([]string{"211-Features:"}, feat...), "211 End")...)
		case "EPSV":
			lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
				if h.srv.RcvBuf > 0 {
					_ = rc.Control(func(fd uintptr) {
						_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, h.srv.RcvBuf)
					})
				}
				return nil
			}}
			ln, lerr := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if lerr != nil {
				err = h.reply("425 cannot listen")
				break
			}
			h.pasv = ln
			err = h.reply(fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", ln.Addr().(*net.TCPAddr).Port))
		case "ABOR":
			err = h.reply("426 transfer aborted", "226 ABOR successful")
		case "QUIT":
			_ = h.reply("221 bye")
			return
		default:
			if h.srv.Handle == nil {
				err = h.reply("502 not implemented")
				break
			}
			h.srv.Handle(h, strings.ToUpper(verb), arg)
		}
		if err != nil {
			return
		}
	}
}

func hostileConfig(addr string) Config {
	return Config{Addr: addr, User: "u", Password: "p",
		DialTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, ReplyTimeout: 5 * time.Second}
}

// TestHostileReplies: endless or over-long control replies fail quickly
// with ErrReplyTooLong or ErrReplyTimeout and leave the client broken.
func TestHostileReplies(t *testing.T) {
	tests := []struct {
		name    string
		handle  func(h *hostileConn)
		want    error
		texts   []string // in the error message
		maxTime time.Duration
	}{
		{"EndlessMultiLine", func(h *hostileConn) {
			// Buffered: the cap, not this server's write rate, must end the reply.
			w := bufio.NewWriterSize(h.ctrl, 64<<10)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "213-line %d of a reply that never ends\r\n", i); err != nil {
					return
				}
			}
		}, ErrReplyTooLong, []string{"longer than 1048576 bytes", `"213-line 0 of a reply that never ends"`}, 3 * time.Second},
		{"LineWithoutEnd", func(h *hostileConn) {
			_, _ = io.WriteString(h.ctrl, "213 ")
			chunk := strings.Repeat("\x01x", 4096)
			for {
				if _, err := io.WriteString(h.ctrl, chunk); err != nil {
					return
				}
			}
		}, ErrReplyTooLong, []string{"a reply line from", "longer than 8192 bytes", `"213 ?x?x`}, 3 * time.Second},
		{"SlowEndlessMultiLine", func(h *hostileConn) {
			_ = h.reply("213-here it comes")
			for range 100 { // bounded: 10s, twice the test's limit
				time.Sleep(100 * time.Millisecond)
				if h.reply("213-still coming") != nil {
					return
				}
			}
		}, ErrReplyTimeout, []string{"no complete reply from", "within 700ms"}, 2 * time.Second},
		{"EndlessPreliminary", func(h *hostileConn) {
			for range 100 {
				if h.reply("150 wait for it") != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}, ErrReplyTimeout, []string{"within 700ms"}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHostile(t, &hostileServer{Handle: func(h *hostileConn, verb, _ string) {
				if verb == "SIZE" {
					tt.handle(h)
				}
			}})
			cfg := hostileConfig(srv.Addr)
			cfg.ReplyTimeout = 700 * time.Millisecond
			if tt.want == ErrReplyTooLong {
				// Only the size cap may end these: with 700ms, a loaded machine under -race
				// sometimes moved less than the 1 MiB cap in time (a timeout, not the cap).
				cfg.ReplyTimeout = 30 * time.Second
			}
			c := dial(t, cfg)
			start := time.Now()
			_, err := c.Size(testCtx(t, 10*time.Second), "/f")
			if !errors.Is(err, tt.want) {
				t.Fatalf("Size = %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > tt.maxTime {
				t.Fatalf("failed after %v, want under %v", d, tt.maxTime)
			}
			for _, want := range append(tt.texts, srv.Addr) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long: remote text must be a short excerpt", len(err.Error()))
			}
			if got := Transient(err); got != (tt.want == ErrReplyTimeout) {
				t.Errorf("Transient = %v", got)
			}
			if _, err := c.Size(testCtx(t, 5*time.Second), "/f"); !errors.Is(err, errBroken) {
				t.Fatalf("after a hostile reply: %v, want the client broken", err)
			}
		})
	}
}

// countingDialer counts the bytes read from data connections (every dial
// after the first, the control connection).
type countingDialer struct {
	dials atomic.Int32
	read  atomic.Int64
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil || d.dials.Add(1) == 1 {
		return conn, err
	}
	return &countingConn{Conn: conn, n: &d.read}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// endlessListing writes MLSD (or LIST) lines on the data connection until
// the client goes away (bounded at 1 GiB).
func endlessListing(h *hostileConn, mlsd bool) {
	_ = h.reply("150 here comes an endless listing")
	conn := h.accept()
	if conn == nil {
		return
	}
	defer conn.Close()
	w := bufio.NewWriterSize(conn, 64<<10)
	format := "-rw-r--r--    1 0        0         %8d Mar 02  2024 file-%08d\r\n"
	if mlsd {
		format = "type=file;size=%d;modify=20240101000000; file-%08d\r\n"
	}
	for i := 0; i < 1<<24; i++ {
		if _, err := fmt.Fprintf(w, format, i, i); err != nil {
			return
		}
	}
}

// TestHostileListing: an endless listing fails with ErrListTooLarge at the
// byte or entry cap, having read at most the cap, and the session survives
// (the hostile server answers ABOR).
func TestHostileListing(t *testing.T) {
	const byteCap = 1 << 20
	for _, mlsd := range []bool{true, false} {
		name := map[bool]string{true: "MLSD", false: "LIST"}[mlsd]
		t.Run(name, func(t *testing.T) {
			var feat []string
			if mlsd {
				feat = []string{" EPSV", " MLST type*;size*;modify*;"}
			}
			srv := startHostile(t, &hostileServer{Feat: feat, Handle: func(h *hostileConn, verb, _ string) {
				switch verb {
				case "MLSD", "LIST", "NLST":
					endlessListing(h, verb == "MLSD")
				case "SIZE":
					_ = h.reply("213 42")
				default:
					_ = h.reply("502 not implemented")
				}
			}})
			ctx := testCtx(t, 20*time.Second)
			d := &countingDialer{}
			cfg := hostileConfig(srv.Addr)
			cfg.Dialer = d
			cfg.MaxListBytes = byteCap
			c := dial(t, cfg)

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			entries, err := c.List(ctx, "/")
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrListTooLarge) || entries != nil {
				t.Fatalf("List = %d entries, %v; want ErrListTooLarge", len(entries), err)
			}
			for _, want := range []string{"ftp " + name + " /:", "more than 1048576 bytes", srv.Addr, "MaxListBytes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if n := d.read.Load(); n > byteCap+1 {
				t.Errorf("read %d bytes of listing, want at most the cap %d (+1)", n, byteCap)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32*byteCap {
				t.Errorf("List allocated %d MiB for a %d MiB cap", grew>>20, byteCap>>20)
			}
			if Transient(err) {
				t.Error("ErrListTooLarge must not be transient")
			}
			if n, err := c.Size(ctx, "/f"); err != nil || n != 42 {
				t.Fatalf("session unusable after the aborted listing: %d, %v", n, err)
			}

			// The entry cap, through ListFunc, and NameList.
			c.cfg.MaxListEntries = 1000
			count := 0
			err = c.ListFunc(ctx, "/", func(Entry) error { count++; return nil })
			if !errors.Is(err, ErrListTooLarge) || count != 1000 || !strings.Contains(err.Error(), "more than 1000 entries") {
				t.Fatalf("ListFunc = %v after %d entries; want ErrListTooLarge after 1000", err, count)
			}
			names, err := c.NameList(ctx, "/")
			if !errors.Is(err, ErrListTooLarge) || names != nil {
				t.Fatalf("NameList = %d names, %v", len(names), err)
			}
			// A callback error stops the listing and is returned.
			stop := errors.New("enough")
			err = c.ListFunc(ctx, "/", func(Entry) error { return stop })
			if !errors.Is(err, stop) {
				t.Fatalf("ListFunc with a failing callback = %v", err)
			}
			if n, err := c.Size(ctx, "/f"); err != nil || n != 42 {
				t.Fatalf("session unusable after the aborted listings: %d, %v", n, err)
			}
		})
	}
}

// TestListLongLine: a listing line without end is cut at 64 KiB.
func TestListLongLine(t *testing.T) {
	srv := startHostile(t, &hostileServer{Handle: func(h *hostileConn, verb, _ string) {
		if verb != "LIST" {
			_ = h.reply("502 not implemented")
			return
		}
		_ = h.reply("150 listing")
		if conn := h.accept(); conn != nil {
			_, _ = conn.Write([]byte(strings.Repeat("-", 200<<10)))
			conn.Close()
		}
	}})
	c := dial(t, hostileConfig(srv.Addr))
	_, err := c.List(testCtx(t, 10*time.Second), "/")
	if !errors.Is(err, ErrListTooLarge) || !strings.Contains(err.Error(), "a line longer than 65536 bytes") {
		t.Fatalf("List = %v, want ErrListTooLarge for a long line", err)
	}
}

// TestStall: a data connection on which nothing moves fails with ErrStalled
// after StallTimeout: a download the server never sends, an upload it never
// reads (through Write and through ReadFrom's sendfile), a listing.
func TestStall(t *testing.T) {
	const stall = 300 * time.Millisecond
	srv := startHostile(t, &hostileServer{RcvBuf: 4096, Handle: func(h *hostileConn, verb, _ string) {
		switch verb {
		case "RETR", "STOR", "LIST":
			_ = h.reply("150 opening data connection")
			h.accept() // and then nothing: neither data nor reading
		case "SIZE":
			_ = h.reply("213 42")
		default:
			_ = h.reply("502 not implemented")
		}
	}})
	// A small send buffer so that an upload blocks early.
	smallSnd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 16<<10)
		})
	}}
	sparse := filepath.Join(t.TempDir(), "sparse")
	if err := os.WriteFile(sparse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 256<<20); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func(ctx context.Context, c *Client) error
	}{
		{"Retr", func(ctx context.Context, c *Client) error {
			r, err := c.Retr(ctx, "/f", 0)
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = r.Read(make([]byte, 1024))
			return err
		}},
		{"StorWrite", func(ctx context.Context, c *Client) error {
			w, err := c.Stor(ctx, "/f", 0)
			if err != nil {
				return err
			}
			defer w.Close()
			buf := make([]byte, 64<<10)
			for range 4096 { // at most 256 MiB
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
			return errors.New("256 MiB written to a server that reads nothing")
		}},
		{"StorReadFrom", func(ctx context.Context, c *Client) error {
			f, err := os.Open(sparse)
			if err != nil {
				return err
			}
			defer f.Close()
			w, err := c.Stor(ctx, "/f", 0)
			if err != nil {
				return err
			}
			defer w.Close()
			if _, ok := w.(*writer).t.conn.(*net.TCPConn); !ok {
				return errors.New("data connection is not a *net.TCPConn: sendfile untested")
			}
			_, err = w.(io.ReaderFrom).ReadFrom(f)
			return err
		}},
		{"List", func(ctx context.Context, c *Client) error {
			_, err := c.List(ctx, "/")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := hostileConfig(srv.Addr)
			cfg.StallTimeout = stall
			cfg.Dialer = smallSnd
			c := dial(t, cfg)
			ctx := testCtx(t, 20*time.Second)
			start := time.Now()
			err := tt.run(ctx, c)
			if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "no data for 300ms") {
				t.Fatalf("error = %v, want ErrStalled", err)
			}
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Fatalf("stall detected after %v with StallTimeout %v", d, stall)
			}
			if !Transient(err) {
				t.Error("a stall must be transient")
			}
			// Close aborted the transfer; the server answered ABOR.
			if n, err := c.Size(ctx, "/f"); err != nil || n != 42 {
				t.Fatalf("session unusable after a stall: %d, %v", n, err)
			}
		})
	}
}

// TestDataFailureReply: when the server resets the data connection and says
// why on the control connection, that reply is the error (with the I/O
// error), and the session stays usable.
func TestDataFailureReply(t *testing.T) {
	reset := func(conn net.Conn) {
		_ = conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
		conn.Close()
	}
	srv := startHostile(t, &hostileServer{Handle: func(h *hostileConn, verb, _ string) {
		switch verb {
		case "STOR":
			_ = h.reply("150 ok")
			conn := h.accept()
			if conn == nil {
				return
			}
			_, _ = io.CopyN(io.Discard, conn, 256<<10)
			_ = h.reply("452 Error writing file: no space left on device.")
			time.Sleep(50 * time.Millisecond)
			reset(conn)
		case "RETR":
			_ = h.reply("150 ok")
			conn := h.accept()
			if conn == nil {
				return
			}
			_, _ = conn.Write(make([]byte, 256<<10))
			_ = h.reply("451 Failure reading local file.")
			time.Sleep(50 * time.Millisecond)
			reset(conn)
		case "SIZE":
			_ = h.reply("213 42")
		default:
			_ = h.reply("502 not implemented")
		}
	}})
	c := dial(t, hostileConfig(srv.Addr))
	ctx := testCtx(t, 20*time.Second)

	t.Run("Stor", func(t *testing.T) {
		w, err := c.Stor(ctx, "/f", 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		for range 4096 {
			if _, err = w.Write(buf); err != nil {
				break
			}
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		wantReplyCode(t, err, 452)
		var re *ReplyError
		errors.As(err, &re)
		if !re.NoSpace() || Transient(err) {
			t.Fatalf("NoSpace = %v, Transient = %v for %v", re.NoSpace(), Transient(err), err)
		}
		if !strings.Contains(err.Error(), "data connection: ") {
			t.Errorf("error %q lacks the I/O error", err)
		}
		if n, err := c.Size(ctx, "/f"); err != nil || n != 42 {
			t.Fatalf("session unusable: %d, %v", n, err)
		}
	})
	t.Run("Retr", func(t *testing.T) {
		r, err := c.Retr(ctx, "/f", 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		wantReplyCode(t, err, 451)
		if !Transient(err) {
			t.Errorf("451 should be transient: %v", err)
		}
		if n, err := c.Size(ctx, "/f"); err != nil || n != 42 {
			t.Fatalf("session unusable: %d, %v", n, err)
		}
	})
}
