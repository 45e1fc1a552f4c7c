package server_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func allowRemote(rules ...string) func(*daemon.Config) {
	return func(c *daemon.Config) { c.AllowRemote = rules }
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// finalOf starts a transfer and waits for its final snapshot.
func finalOf(t *testing.T, a *testagent.Agent, src, dst string) *ferryv1.Transfer {
	t.Helper()
	seen := run(t, a, src, dst, ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED)
	return seen[len(seen)-1]
}

// TestOutboundPolicy: without --allow-remote a link-local address (the metadata service) is
// refused, at once and for good; with rules only what they allow is reached: the peer agent's
// gRPC address and the FTP address its grant names, and ListFiles and Diagnose obey too.
func TestOutboundPolicy(t *testing.T) {
	b := testagent.Start(t)
	writeRandom(t, filepath.Join(b.Root, "f.bin"), 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("link-local refused by default", func(t *testing.T) {
		a := testagent.Start(t)
		final := finalOf(t, a, "ftp://169.254.169.254:80/latest/meta-data", "x")
		const want = "outbound connection to 169.254.169.254:80 refused by policy (--allow-remote)"
		if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), want) ||
			final.GetErrorCode() != "permission_denied" || final.GetAttempt() != 1 {
			t.Errorf("final: state %v attempt %d code %q error %q", final.GetState(), final.GetAttempt(), final.GetErrorCode(), final.GetError())
		}
		_, err := a.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: "ftp://169.254.169.254/"})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "refused by policy") {
			t.Errorf("ListFiles: %v, want PermissionDenied", err)
		}
		_, err = a.Client.Diagnose(ctx, &ferryv1.DiagnoseRequest{Url: "agent://[fe80::1%25lo]:7070/"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Diagnose: %v, want PermissionDenied", err)
		}
		// Everything else still works.
		if final := finalOf(t, a, b.URL("f.bin"), "in/"); final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			t.Errorf("agent:// without rules: %v %q", final.GetState(), final.GetError())
		}
	})

	t.Run("agent address not allowed", func(t *testing.T) {
		a := testagent.Start(t, allowRemote("10.0.0.0/8"))
		final := finalOf(t, a, b.URL("f.bin"), "in/")
		want := fmt.Sprintf("outbound connection to %s refused by policy", b.GRPC)
		if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), want) || final.GetAttempt() != 1 {
			t.Errorf("final: %v attempt %d %q", final.GetState(), final.GetAttempt(), final.GetError())
		}
		_, err := a.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: b.URL("")})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("ListFiles: %v, want PermissionDenied", err)
		}
		_, err = a.Client.Diagnose(ctx, &ferryv1.DiagnoseRequest{Url: b.URL("")})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Diagnose: %v, want PermissionDenied", err)
		}
	})

	t.Run("grant's FTP address not allowed", func(t *testing.T) {
		a := testagent.Start(t, allowRemote("127.0.0.1:"+port(t, b.GRPC)))
		final := finalOf(t, a, b.URL("f.bin"), "in/")
		want := fmt.Sprintf("outbound connection to %s refused by policy", b.FTP)
		if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), want) ||
			final.GetErrorCode() != "permission_denied" || final.GetAttempt() != 1 {
			t.Errorf("final: %v attempt %d %q %q", final.GetState(), final.GetAttempt(), final.GetErrorCode(), final.GetError())
		}
	})

	t.Run("allowed", func(t *testing.T) {
		// The peer's gRPC and FTP ports only: passive data connections to the same host are
		// allowed on any port.
		a := testagent.Start(t, allowRemote("127.0.0.1:"+port(t, b.GRPC), "127.0.0.1:"+port(t, b.FTP)))
		for _, m := range modes {
			seen := run(t, a, b.URL("f.bin"), "in-"+m.name+"/", m.mode)
			if f := seen[len(seen)-1]; f.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
				t.Errorf("%s: %v %q", m.name, f.GetState(), f.GetError())
			}
		}
		if _, err := a.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: b.URL("")}); err != nil {
			t.Errorf("ListFiles: %v", err)
		}
		// A host name rule: localhost resolves to loopback.
		h := testagent.Start(t, allowRemote("localhost:"+port(t, b.FTP)))
		url := fmt.Sprintf("ftp://%s:%s@localhost:%s/f.bin", testagent.User, testagent.Password, port(t, b.FTP))
		if f := finalOf(t, h, url, "got.bin"); f.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			t.Errorf("host rule: %v %q", f.GetState(), f.GetError())
		}
		if f := finalOf(t, h, strings.Replace(url, "localhost", "127.0.0.1", 1), "got2.bin"); f.GetErrorCode() != "permission_denied" {
			t.Errorf("host rule, address instead of the name: %v %q", f.GetState(), f.GetError())
		}
	})

	t.Run("bad flag", func(t *testing.T) {
		_, err := daemon.New(daemon.Config{Root: t.TempDir(), GRPCListen: "127.0.0.1:0", FTPListen: "127.0.0.1:0", AllowRemote: []string{"10.0.0.0/8:99999"}})
		if err == nil || !strings.HasPrefix(err.Error(), `allow-remote "10.0.0.0/8:99999"`) {
			t.Errorf("New: %v", err)
		}
	})
}

// TestNotAnFTPServer: a transfer from a port where another service answers (an HTTP server's
// reply, a 10 KB binary banner) fails at once, says it is not an FTP server and quotes at
// most a short, printable excerpt of what came back.
func TestNotAnFTPServer(t *testing.T) {
	http := "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n" + strings.Repeat("<html>secret-banner</html>\n", 300)
	binary := make([]byte, 10<<10)
	for i := range binary {
		binary[i] = byte(i*7 + 3)
		if binary[i] == '\n' {
			binary[i] = 0
		}
	}
	a := testagent.Start(t)
	for name, banner := range map[string]string{"http": http, "binary": string(binary)} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Write([]byte(banner))
					time.Sleep(100 * time.Millisecond)
					c.Close()
				}
			}()
			final := finalOf(t, a, "ftp://"+ln.Addr().String()+"/x", "x")
			e := final.GetError()
			if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || final.GetAttempt() != 1 ||
				!strings.Contains(e, "not an FTP server") || len(e) > 400 {
				t.Errorf("final: %v attempt %d, error (%d bytes) %q", final.GetState(), final.GetAttempt(), len(e), e)
			}
			for _, r := range e {
				if r < 0x20 || r > 0x7e {
					t.Fatalf("error holds %q: %q", r, e)
				}
			}
			if strings.Count(e, "secret-banner") > 1 {
				t.Errorf("error quotes the banner at length: %q", e)
			}
			t.Logf("%s", e)
		})
	}
}
