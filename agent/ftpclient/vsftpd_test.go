package ftpclient

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testftp"
)

const bigSize = 5 << 20

// TestVsftpd runs the whole file API against a real vsftpd in both modes.
func TestVsftpd(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{})
	local, sum := randomFile(t, bigSize)

	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			c := dial(t, vsftpdConfig(srv, mode))
			if c.pipelined {
				t.Fatal("the login to vsftpd was pipelined: only servers announcing PipelineMarker get that")
			}
			dir := path.Join(srv.Pub, mode.String())
			if err := c.Mkdir(ctx, dir); err != nil {
				t.Fatalf("Mkdir: %v", err)
			}
			remote := path.Join(dir, "big.bin")

			t.Run("Stor", func(t *testing.T) {
				if err := upload(ctx, c, local, remote, 0); err != nil {
					t.Fatalf("Stor: %v", err)
				}
				if got := sha256File(t, srv.Local(remote)); got != sum {
					t.Fatalf("server file sha256 = %s, want %s", got, sum)
				}
				info := c.DataInfo()
				wantCmd := map[Mode]string{ModePassive: "EPSV", ModeActive: "EPRT"}[mode]
				if info.Mode != mode || info.Cmd != wantCmd || info.PASVMismatch {
					t.Fatalf("DataInfo = %+v, want mode %v via %s", info, mode, wantCmd)
				}
				if h, _, _ := net.SplitHostPort(info.Peer); h != "127.0.0.1" {
					t.Fatalf("DataInfo.Peer = %q, want 127.0.0.1:*", info.Peer)
				}
			})
			t.Run("Size", func(t *testing.T) {
				n, err := c.Size(ctx, remote)
				if err != nil || n != bigSize {
					t.Fatalf("Size = %d, %v; want %d", n, err, bigSize)
				}
			})
			t.Run("Stat", func(t *testing.T) {
				before := time.Now().Add(-time.Minute)
				e, err := c.Stat(ctx, remote)
				if err != nil {
					t.Fatal(err)
				}
				if e.Name != "big.bin" || e.Size != bigSize || e.IsDir || e.ModTime.Before(before) || e.ModTime.After(time.Now().Add(time.Minute)) {
					t.Fatalf("Stat(file) = %+v", e)
				}
				e, err = c.Stat(ctx, dir)
				if err != nil || !e.IsDir || e.Name != mode.String() {
					t.Fatalf("Stat(dir) = %+v, %v", e, err)
				}
				_, err = c.Stat(ctx, dir+"/missing")
				wantReplyCode(t, err, 550)
			})
			t.Run("List", func(t *testing.T) {
				if _, ok := c.Features()["MLST"]; ok {
					t.Fatal("vsftpd is not expected to offer MLST: the LIST fallback would go untested")
				}
				if err := c.Mkdir(ctx, dir+"/sub dir"); err != nil {
					t.Fatal(err)
				}
				entries, err := c.List(ctx, dir)
				if err != nil {
					t.Fatal(err)
				}
				slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
				if len(entries) != 2 || entries[0].Name != "big.bin" || entries[0].Size != bigSize || entries[0].IsDir ||
					entries[1].Name != "sub dir" || !entries[1].IsDir {
					t.Fatalf("List = %+v", entries)
				}
				if d := time.Since(entries[0].ModTime); d < -time.Minute || d > time.Hour {
					t.Fatalf("List mod time %v is not recent", entries[0].ModTime)
				}
			})
			t.Run("Retr", func(t *testing.T) {
				got, n, err := download(ctx, c, remote, 0)
				if err != nil || n != bigSize || got != sum {
					t.Fatalf("Retr: n=%d err=%v sha256 match=%v", n, err, got == sum)
				}
			})
			t.Run("RetrOffset", func(t *testing.T) {
				const off = bigSize - 12345
				want, err := os.ReadFile(local)
				if err != nil {
					t.Fatal(err)
				}
				r, err := c.Retr(ctx, remote, off)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if cerr := r.Close(); err == nil {
					err = cerr
				}
				if err != nil || string(got) != string(want[off:]) {
					t.Fatalf("Retr(offset): %d bytes, err %v; want the last %d bytes", len(got), err, len(want)-off)
				}
			})
			t.Run("StorResume", func(t *testing.T) {
				part := path.Join(dir, "resumed.bin")
				const half = bigSize / 2
				// First attempt: only the first half arrives.
				f, err := os.Open(local)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				w, err := c.Stor(ctx, part, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.CopyN(w, f, half); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if n, err := c.Size(ctx, part); err != nil || n != half {
					t.Fatalf("after first half: Size = %d, %v", n, err)
				}
				if err := upload(ctx, c, local, part, half); err != nil {
					t.Fatalf("resume: %v", err)
				}
				if got := sha256File(t, srv.Local(part)); got != sum {
					t.Fatal("resumed file differs from the source")
				}
			})
			t.Run("RetrEarlyClose", func(t *testing.T) {
				r, err := c.Retr(ctx, remote, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Size(ctx, remote); err == nil || !strings.Contains(err.Error(), "transfer is in progress") {
					t.Fatalf("command during an open transfer: %v, want refused", err)
				}
				err = r.Close()
				if err == nil {
					t.Fatal("Close before EOF returned nil: the transfer was not complete")
				}
				t.Logf("early Close: %v", err)
				// The control connection stays usable.
				if n, err := c.Size(ctx, remote); err != nil || n != bigSize {
					t.Fatalf("Size after abort = %d, %v", n, err)
				}
			})
			t.Run("Rename", func(t *testing.T) {
				to := path.Join(dir, "renamed.bin")
				if err := c.Rename(ctx, path.Join(dir, "resumed.bin"), to); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(srv.Local(to)); err != nil {
					t.Fatal(err)
				}
				err := c.Rename(ctx, path.Join(dir, "resumed.bin"), to)
				wantReplyCode(t, err, 550)
			})
			t.Run("Delete", func(t *testing.T) {
				p := path.Join(dir, "renamed.bin")
				if err := c.Delete(ctx, p); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(srv.Local(p)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("file still there: %v", err)
				}
				err := c.Delete(ctx, p)
				wantReplyCode(t, err, 550)
			})
			t.Run("MkdirAll", func(t *testing.T) {
				deep := path.Join(dir, "a/b/c")
				for range 2 { // the second call finds everything existing
					if err := c.MkdirAll(ctx, deep); err != nil {
						t.Fatal(err)
					}
				}
				if fi, err := os.Stat(srv.Local(deep)); err != nil || !fi.IsDir() {
					t.Fatalf("%s not created: %v", deep, err)
				}
				// A file in the way is an error.
				err := c.MkdirAll(ctx, remote+"/x")
				if !IsPermanent(err) {
					t.Fatalf("MkdirAll through a file: %v, want a 5xx", err)
				}
			})
			t.Run("Missing", func(t *testing.T) {
				_, err := c.Retr(ctx, dir+"/missing", 0)
				wantReplyCode(t, err, 550)
				if !IsPermanent(err) {
					t.Fatal("IsPermanent(550) = false")
				}
				_, err = c.Size(ctx, dir+"/missing")
				wantReplyCode(t, err, 550)
			})
			t.Run("EmptyFile", func(t *testing.T) {
				p := path.Join(dir, "empty")
				w, err := c.Stor(ctx, p, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if n, err := c.Size(ctx, p); err != nil || n != 0 {
					t.Fatalf("Size = %d, %v", n, err)
				}
				r, err := c.Retr(ctx, p, 0)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(r)
				if cerr := r.Close(); err == nil {
					err = cerr
				}
				if err != nil || len(b) != 0 {
					t.Fatalf("Retr(empty) = %d bytes, %v", len(b), err)
				}
			})
			t.Run("HashUnsupported", func(t *testing.T) {
				_, err := c.Hash(ctx, remote)
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Hash on vsftpd: %v, want ErrUnsupported", err)
				}
				wantReplyCode(t, err, 500)
				if _, err := c.Size(ctx, remote); err != nil {
					t.Fatalf("client unusable after HASH: %v", err)
				}
				_, err = c.HashRange(ctx, remote, 0, 10)
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("HashRange on vsftpd: %v, want ErrUnsupported", err)
				}
				wantReplyCode(t, err, 500)
				if _, err := c.Size(ctx, remote); err != nil {
					t.Fatalf("client unusable after XSHA256: %v", err)
				}
			})
		})
	}
}

func TestVsftpdIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	srv := testftp.StartVsftpd(t, testftp.Options{ListenAddr: "::1"})
	local, sum := randomFile(t, 100<<10)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			c := dial(t, vsftpdConfig(srv, mode))
			remote := srv.Pub + "/v6-" + mode.String()
			if err := upload(ctx, c, local, remote, 0); err != nil {
				t.Fatal(err)
			}
			got, _, err := download(ctx, c, remote, 0)
			if err != nil || got != sum {
				t.Fatalf("download: %v, match=%v", err, got == sum)
			}
			info := c.DataInfo()
			want := map[Mode]string{ModePassive: "EPSV", ModeActive: "EPRT"}[mode]
			if info.Cmd != want || !strings.HasPrefix(info.Peer, "[::1]:") {
				t.Fatalf("DataInfo = %+v, want %s over ::1", info, want)
			}
		})
	}
}

// TestFallbackPASVAndPORT hides EPSV/EPRT from vsftpd (the commands are
// renamed on the wire, so it answers 500) and checks PASV/PORT are used.
func TestFallbackPASVAndPORT(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{PasvAddress: "10.255.0.1"})
	local, sum := randomFile(t, 200<<10)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			var sent []string
			cfg := vsftpdConfig(srv, mode)
			cfg.Dialer = &rewriteDialer{rewrite: func(cmd string) string {
				sent = append(sent, strings.Fields(cmd + " x")[0])
				if strings.HasPrefix(cmd, "EPSV") || strings.HasPrefix(cmd, "EPRT") {
					return "X" + cmd
				}
				return cmd
			}}
			c := dial(t, cfg)
			for i := range 2 {
				if err := upload(ctx, c, local, srv.Pub+"/fb-"+mode.String(), 0); err != nil {
					t.Fatalf("upload %d: %v", i, err)
				}
			}
			got, _, err := download(ctx, c, srv.Pub+"/fb-"+mode.String(), 0)
			if err != nil || got != sum {
				t.Fatalf("download: %v", err)
			}
			info := c.DataInfo()
			want := map[Mode]string{ModePassive: "PASV", ModeActive: "PORT"}[mode]
			if info.Cmd != want {
				t.Fatalf("DataInfo.Cmd = %q, want %q", info.Cmd, want)
			}
			ext := map[Mode]string{ModePassive: "EPSV", ModeActive: "EPRT"}[mode]
			if n := slices.Index(sent, ext); n < 0 || slices.Index(sent[n+1:], ext) >= 0 {
				t.Fatalf("%s sent %d times, want once (the refusal is remembered): %v", ext, countOf(sent, ext), sent)
			}
			if mode == ModePassive {
				// vsftpd announces 10.255.0.1; the client used the control host.
				if !info.PASVMismatch || !strings.HasPrefix(info.Announced, "10.255.0.1:") || !strings.HasPrefix(info.Used, "127.0.0.1:") {
					t.Fatalf("DataInfo = %+v, want a recorded PASV mismatch", info)
				}
			}
		})
	}
}

// TestUsePASVHost: with UsePASVHost the announced IP is dialled.
func TestUsePASVHost(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{PasvAddress: "127.0.0.9"})
	cfg := vsftpdConfig(srv, ModePassive)
	cfg.UsePASVHost = true
	cfg.DataTimeout = 500 * time.Millisecond
	cfg.Dialer = &rewriteDialer{rewrite: func(cmd string) string {
		if cmd == "EPSV" {
			return "XEPSV" // force PASV
		}
		return cmd
	}}
	c := dial(t, cfg)
	// vsftpd listens on 127.0.0.1 only, so 127.0.0.9 refuses: proof the
	// announced address was used.
	_, err := c.Retr(testCtx(t, 10*time.Second), srv.Pub, 0)
	var de *DataConnError
	if !errors.As(err, &de) || !strings.HasPrefix(de.Addr, "127.0.0.9:") {
		t.Fatalf("Retr = %v, want a *DataConnError for 127.0.0.9", err)
	}
	if info := c.DataInfo(); info.Cmd != "PASV" || !info.PASVMismatch || info.Used != info.Announced {
		t.Fatalf("DataInfo = %+v", info)
	}
}

func countOf(s []string, v string) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestVsftpdDialErrors(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{})
	t.Run("WrongPassword", func(t *testing.T) {
		cfg := vsftpdConfig(srv, ModePassive)
		cfg.Password = srv.BadPassword
		start := time.Now()
		_, err := Dial(testCtx(t, 10*time.Second), cfg)
		wantReplyCode(t, err, 530)
		if !strings.Contains(err.Error(), `login as "anonymous" failed`) || strings.Contains(err.Error(), srv.BadPassword) {
			t.Fatalf("error %q should say the login failed and never contain the password", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("Dial took %v", time.Since(start))
		}
	})
	t.Run("UnknownUser", func(t *testing.T) {
		cfg := vsftpdConfig(srv, ModePassive)
		cfg.User, cfg.Password = "ferry-nobody", "s3cret-pw"
		_, err := Dial(testCtx(t, 10*time.Second), cfg)
		wantReplyCode(t, err, 530)
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("password leaked: %v", err)
		}
	})
	t.Run("NothingListening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = Dial(testCtx(t, 10*time.Second), Config{Addr: addr})
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Fatalf("Dial to a closed port: %v", err)
		}
	})
}

// TestCancel checks that cancelling the context unblocks an in-flight Read
// or Write within a second. vsftpd throttles the transfer (anon_max_rate)
// so that the data connection really blocks.
func TestCancel(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{Extra: []string{"anon_max_rate=200000"}})
	if err := os.Truncate(mustCreate(t, srv.Local(srv.Pub+"/large")), 64<<20); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		for _, dir := range []string{"Retr", "Stor"} {
			t.Run(mode.String()+"/"+dir, func(t *testing.T) {
				c := dial(t, vsftpdConfig(srv, mode))
				ctx, cancel := context.WithCancel(testCtx(t, 30*time.Second))
				var (
					rc   io.ReadCloser
					wc   io.WriteCloser
					err  error
					loop func() error
				)
				buf := make([]byte, 64<<10)
				if dir == "Retr" {
					rc, err = c.Retr(ctx, srv.Pub+"/large", 0)
					loop = func() error {
						for {
							if _, err := rc.Read(buf); err != nil {
								return err
							}
						}
					}
				} else {
					wc, err = c.Stor(ctx, srv.Pub+"/upload-"+mode.String(), 0)
					loop = func() error {
						for {
							if _, err := wc.Write(buf); err != nil {
								return err
							}
						}
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- loop() }()
				time.Sleep(300 * time.Millisecond) // well into the throttled transfer
				start := time.Now()
				cancel()
				select {
				case err := <-done:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("I/O error after cancel = %v, want context.Canceled", err)
					}
				case <-time.After(time.Second):
					t.Fatal("I/O did not return within 1s of cancel")
				}
				if rc != nil {
					err = rc.Close()
				} else {
					err = wc.Close()
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Close after cancel = %v, want context.Canceled", err)
				}
				if d := time.Since(start); d > time.Second {
					t.Fatalf("cancel + Close took %v", d)
				}
				if _, err := c.Size(context.Background(), srv.Pub+"/large"); err == nil {
					t.Fatal("client still usable after cancellation; it must be marked broken")
				}
			})
		}
	}
}

// TestPassiveFirewalled simulates a firewall that drops the passive data
// connection (the dialer never completes): a *DataConnError after
// DataTimeout naming the cause, and the control connection stays usable.
func TestPassiveFirewalled(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{})
	ctx := testCtx(t, 30*time.Second)
	cfg := vsftpdConfig(srv, ModePassive)
	cfg.DataTimeout = 300 * time.Millisecond
	d := &rewriteDialer{block: func(string) bool { return true }}
	cfg.Dialer = d
	c := dial(t, cfg)
	start := time.Now()
	_, err := c.Retr(ctx, srv.Pub, 0)
	var de *DataConnError
	if !errors.As(err, &de) || !de.Timeout || de.Mode != ModePassive {
		t.Fatalf("Retr = %v, want a passive timeout *DataConnError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v with DataTimeout 300ms", d)
	}
	for _, want := range []string{"passive data connection to 127.0.0.1:", "timed out after 300ms", "firewall", "use active mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := c.Size(ctx, srv.Pub+"/nothing"); !IsPermanent(err) {
		t.Fatalf("control connection unusable after a data failure: %v", err)
	}
}

// TestActiveUnreachable announces an address where nothing listens:
// vsftpd's connection back is refused and it answers 425.
func TestActiveUnreachable(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{})
	ctx := testCtx(t, 30*time.Second)
	cfg := vsftpdConfig(srv, ModeActive)
	cfg.ActiveBind = "127.0.0.3" // we listen here...
	cfg.ActiveAddr = "127.0.0.1" // ...but announce the control IP (vsftpd only connects there)
	c := dial(t, cfg)
	if err := os.WriteFile(srv.Local(srv.Pub+"/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.Retr(ctx, srv.Pub+"/f", 0)
	var de *DataConnError
	if !errors.As(err, &de) || de.Mode != ModeActive || !strings.HasPrefix(de.Addr, "127.0.0.1:") {
		t.Fatalf("Retr = %v, want an active *DataConnError for 127.0.0.1", err)
	}
	wantReplyCode(t, err, 425)
	for _, want := range []string{"could not connect back to 127.0.0.1:", "use passive mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if info := c.DataInfo(); !strings.HasPrefix(info.Used, "127.0.0.3:") || !strings.HasPrefix(info.Announced, "127.0.0.1:") {
		t.Fatalf("DataInfo = %+v", info)
	}
	if _, err := c.Size(ctx, srv.Pub+"/f"); err != nil {
		t.Fatalf("control connection unusable after 425: %v", err)
	}
}

// TestActiveRejectsForeignIP: before vsftpd connects back, a third party
// (from 127.0.0.2) connects to our active listener and offers forged data.
// The client must drop it and take vsftpd's connection (from 127.0.0.1).
func TestActiveRejectsForeignIP(t *testing.T) {
	srv := testftp.StartVsftpd(t, testftp.Options{})
	want := "genuine content from vsftpd"
	if err := os.WriteFile(srv.Local(srv.Pub+"/real"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	intruder := make(chan net.Conn, 1)
	cfg := vsftpdConfig(srv, ModeActive)
	cfg.Dialer = &rewriteDialer{rewrite: func(cmd string) string {
		if port, ok := strings.CutPrefix(cmd, "EPRT |1|127.0.0.1|"); ok {
			// The intruder connects before the server even learns the port,
			// so its connection is first in the accept queue.
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
			conn, err := d.Dial("tcp", "127.0.0.1:"+strings.TrimSuffix(port, "|"))
			if err != nil {
				t.Errorf("intruder dial: %v", err)
			} else {
				_, _ = conn.Write([]byte("forged"))
				intruder <- conn
			}
		}
		return cmd
	}}
	c := dial(t, cfg)
	r, err := c.Retr(ctx, srv.Pub+"/real", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || string(got) != want {
		t.Fatalf("Retr = %q, %v; want %q", got, err, want)
	}
	if h, _, _ := net.SplitHostPort(c.DataInfo().Peer); h != "127.0.0.1" {
		t.Fatalf("data peer %q, want 127.0.0.1", c.DataInfo().Peer)
	}
	select {
	case conn := <-intruder:
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 10)); err == nil || n != 0 {
			t.Fatalf("intruder connection not closed by the client: n=%d err=%v", n, err)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("intruder connection left open")
		}
	default:
		t.Fatal("the intruder never connected: the test did not exercise the filter")
	}
}

func mustCreate(t *testing.T, p string) string {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
