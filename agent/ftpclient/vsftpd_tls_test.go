package ftpclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testftp"
)

// TestVsftpdTLS runs explicit FTPS against vsftpd, which by default
// (require_ssl_reuse=YES) refuses data connections that do not resume the
// control connection's TLS session.
func TestVsftpdTLS(t *testing.T) {
	serverConf, pool := selfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := serverConf.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testftp.StartVsftpd(t, testftp.Options{Extra: []string{
		"ssl_enable=YES",
		"allow_anon_ssl=YES",
		"force_anon_logins_ssl=YES",
		"force_anon_data_ssl=YES",
		"require_ssl_reuse=YES",
		"rsa_cert_file=" + certFile,
		"rsa_private_key_file=" + keyFile,
	}})
	local, sum := randomFile(t, 1<<20)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			cfg := vsftpdConfig(srv, mode)
			cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test"}
			c := dial(t, cfg)
			remote := srv.Pub + "/tls-" + mode.String()
			if err := upload(ctx, c, local, remote, 0); err != nil {
				t.Fatalf("upload: %v", err)
			}
			if got := sha256File(t, srv.Local(remote)); got != sum {
				t.Fatal("uploaded file differs")
			}
			got, _, err := download(ctx, c, remote, 0)
			if err != nil || got != sum {
				t.Fatalf("download: %v, match=%v", err, got == sum)
			}
			if _, err := c.List(ctx, srv.Pub); err != nil {
				t.Fatalf("List: %v", err)
			}
		})
	}
	t.Run("PlainRefused", func(t *testing.T) {
		// force_anon_logins_ssl: a plain-text login is refused.
		_, err := Dial(testCtx(t, 10*time.Second), vsftpdConfig(srv, ModePassive))
		if !IsPermanent(err) {
			t.Fatalf("plain login on an FTPS-only server: %v, want a 5xx", err)
		}
	})
}
