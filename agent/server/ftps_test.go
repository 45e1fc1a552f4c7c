package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// vsftpdFTPS starts vsftpd with TLS required for logins and data and require_ssl_reuse=YES
// (its default), with a self-signed certificate valid for 127.0.0.1; it returns the server and
// the certificate's PEM file (what --ftp-ca takes).
func vsftpdFTPS(t *testing.T, implicit bool) (*testftp.Server, string) {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := ftpserver.SelfSigned(dir, nil); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, ftpserver.SelfSignedCertFile), filepath.Join(dir, ftpserver.SelfSignedKeyFile)
	opts := testftp.Options{Extra: []string{
		"ssl_enable=YES", "allow_anon_ssl=YES",
		"force_anon_logins_ssl=YES", "force_anon_data_ssl=YES",
		"force_local_logins_ssl=YES", "force_local_data_ssl=YES",
		"require_ssl_reuse=YES", "ssl_ciphers=HIGH",
		"rsa_cert_file=" + certFile, "rsa_private_key_file=" + keyFile,
	}}
	if implicit {
		opts.Extra = append(opts.Extra, "implicit_ssl=YES")
		opts.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tls.Client(c, &tls.Config{InsecureSkipVerify: true}), nil //nolint:gosec // readiness check only
		}
	}
	return testftp.StartVsftpd(t, opts), certFile
}

// TestFTPSWithVsftpd: the engine moves a file both ways over ftpes:// (explicit, AUTH TLS) and
// ftps:// (implicit) to vsftpd with TLS required and require_ssl_reuse=YES, in passive and
// active mode, verifying the server with --ftp-ca; without that CA the certificate is refused.
func TestFTPSWithVsftpd(t *testing.T) {
	explicit, ca := vsftpdFTPS(t, false)
	implicit, ca2 := vsftpdFTPS(t, true)
	caBoth := filepath.Join(t.TempDir(), "ca.pem")
	pem1, _ := os.ReadFile(ca)
	pem2, _ := os.ReadFile(ca2)
	if err := os.WriteFile(caBoth, append(pem1, pem2...), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testagent.Start(t, func(c *daemon.Config) { c.FTPCA = caBoth })
	const size = 3 << 20
	want := writeRandom(t, filepath.Join(a.Root, "out/file.bin"), size)
	for _, srv := range []struct {
		name string
		v    *testftp.Server
	}{{"ftpes", explicit}, {"ftps", implicit}} {
		base := fmt.Sprintf("%s://%s:%s@%s%s", srv.name, url.PathEscape(srv.v.User), url.PathEscape(srv.v.Password), srv.v.Addr, srv.v.Pub)
		for _, m := range modes {
			t.Run(srv.name+"/"+m.name, func(t *testing.T) {
				checkProgress(t, run(t, a, "out/file.bin", base+"/"+m.name+".bin", m.mode), size, 1)
				if got := fileSHA(t, srv.v.Local(srv.v.Pub+"/"+m.name+".bin")); got != want {
					t.Fatalf("uploaded sha256 %s, want %s", got, want)
				}
				checkProgress(t, run(t, a, base+"/"+m.name+".bin", "back/"+srv.name+"-"+m.name+".bin", m.mode), size, 1)
				if got := fileSHA(t, filepath.Join(a.Root, "back", srv.name+"-"+m.name+".bin")); got != want {
					t.Fatalf("downloaded sha256 %s, want %s", got, want)
				}
			})
		}
	}
	t.Run("ftp-plain-refused", func(t *testing.T) {
		// ftp:// stays plain, as in curl: vsftpd refuses the login.
		final := run(t, a, fmt.Sprintf("ftp://%s:%s@%s%s/passive.bin", explicit.User, explicit.Password, explicit.Addr, explicit.Pub), "x.bin", modes[0].mode)
		if last := final[len(final)-1]; last.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(last.GetError(), "530") {
			t.Fatalf("plain ftp:// to an FTPS-only vsftpd: %v %q, want a failure with 530", last.GetState(), last.GetError())
		}
	})
	t.Run("unknown-CA", func(t *testing.T) {
		b := testagent.Start(t, func(c *daemon.Config) { c.Retries = -1 })
		writeRandom(t, filepath.Join(b.Root, "f.bin"), 10)
		final := run(t, b, "f.bin", fmt.Sprintf("ftpes://%s:%s@%s%s/ca.bin", explicit.User, explicit.Password, explicit.Addr, explicit.Pub), modes[0].mode)
		if last := final[len(final)-1]; last.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(last.GetError(), "certificate") {
			t.Fatalf("ftpes:// to a server no known CA signed: %v %q, want a certificate error", last.GetState(), last.GetError())
		}
	})
}

// TestFTPSBetweenAgents: a grant carries the FTP server certificate's SHA-256 unless the
// granting agent has TLS off; agent:// transfers succeed in both modes with the peer's TLS
// optional (the default), required, and off (plain FTP, the documented fallback).
func TestFTPSBetweenAgents(t *testing.T) {
	a := testagent.Start(t)
	const size = 1 << 20
	upWant := writeRandom(t, filepath.Join(a.Root, "up.bin"), size)
	for _, mode := range []string{daemon.FTPTLSOptional, daemon.FTPTLSRequired, daemon.FTPTLSOff} {
		t.Run(mode, func(t *testing.T) {
			b := testagent.Start(t, func(c *daemon.Config) { c.FTPTLS = mode })
			want := writeRandom(t, filepath.Join(b.Root, "src.bin"), size)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g, err := b.Client.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "src.bin", Access: ferryv1.Access_ACCESS_READ})
			if err != nil {
				t.Fatal(err)
			}
			if pin := g.GetTlsCertSha256(); (pin == "") != (mode == daemon.FTPTLSOff) || (pin != "" && len(pin) != 64) {
				t.Fatalf("grant's tls_cert_sha256 %q with --ftp-tls %s", pin, mode)
			}
			for _, m := range modes {
				checkProgress(t, run(t, a, b.URL("src.bin"), "in/"+mode+"-"+m.name+".bin", m.mode), size, 1)
				if got := fileSHA(t, filepath.Join(a.Root, "in", mode+"-"+m.name+".bin")); got != want {
					t.Fatalf("%s download: sha256 %s, want %s", m.name, got, want)
				}
				checkProgress(t, run(t, a, "up.bin", b.URL("in/"+m.name+".bin"), m.mode), size, 1)
				if got := fileSHA(t, filepath.Join(b.Root, "in", m.name+".bin")); got != upWant {
					t.Fatalf("%s upload: sha256 %s, want %s", m.name, got, upWant)
				}
			}
		})
	}
}

// TestReverseTransferPinned: a reversed transfer carries the caller's certificate fingerprint;
// the called agent then uses ftpes:// against the caller's FTP server and accepts only that
// certificate, while a wrong fingerprint fails the transfer.
func TestReverseTransferPinned(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t, func(c *daemon.Config) { c.Retries = -1 })
	want := writeRandom(t, filepath.Join(a.Root, "r.bin"), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		pin  func(real string) string
		ok   bool
	}{
		{"pinned", func(p string) string { return p }, true},
		{"wrong-pin", func(string) string { return strings.Repeat("0", 64) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The credential a would issue for a reversed transfer (its own FTP server).
			g, err := a.Client.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "r.bin", Access: ferryv1.Access_ACCESS_READ})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := b.Client.ReverseTransfer(ctx, &ferryv1.ReverseTransferRequest{
				Path: "got-" + tc.name + ".bin", Direction: ferryv1.Direction_DIRECTION_DOWNLOAD,
				FtpPort: g.GetFtpPort(), User: g.GetUser(), Password: g.GetPassword(), RemotePath: "r.bin",
				Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE, TlsCertSha256: tc.pin(g.GetTlsCertSha256()),
			})
			if err != nil {
				t.Fatal(err)
			}
			if src := resp.GetTransfer().GetSource(); !strings.HasPrefix(src, "ftpes://") {
				t.Errorf("reversed transfer's source %q, want ftpes://", src)
			}
			seen := watch(t, ctx, b, resp.GetTransfer().GetId())
			last := seen[len(seen)-1]
			if !tc.ok {
				if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(last.GetError(), "pinned") {
					t.Fatalf("wrong pin: %v %q, want a failure naming the pin", last.GetState(), last.GetError())
				}
				return
			}
			checkProgress(t, seen, 1<<20, 1)
			if got := fileSHA(t, filepath.Join(b.Root, "got-"+tc.name+".bin")); got != want {
				t.Fatalf("sha256 %s, want %s", got, want)
			}
		})
	}
	_, err := b.Client.ReverseTransfer(ctx, &ferryv1.ReverseTransferRequest{
		Path: "x.bin", Direction: ferryv1.Direction_DIRECTION_DOWNLOAD, FtpPort: 21, User: "u", Password: "p",
		RemotePath: "x.bin", TlsCertSha256: "not-hex",
	})
	if err == nil || !strings.Contains(err.Error(), "tls_cert_sha256") {
		t.Errorf("ReverseTransfer with a malformed fingerprint: %v, want InvalidArgument naming tls_cert_sha256", err)
	}
}
