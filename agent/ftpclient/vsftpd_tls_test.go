package ftpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testftp"
)

// vsftpdTLS starts vsftpd with TLS required for logins and data
// (force_*_logins_ssl, force_*_data_ssl) and require_ssl_reuse=YES (its
// default, spelled out), plus extra lines. It returns the server, a pool
// trusting its certificate and the certificate's DER.
func vsftpdTLS(t *testing.T, implicit bool, extra ...string) (*testftp.Server, *x509.CertPool, []byte) {
	t.Helper()
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
	opts := testftp.Options{Extra: append([]string{
		"ssl_enable=YES",
		"allow_anon_ssl=YES",
		"force_anon_logins_ssl=YES",
		"force_anon_data_ssl=YES",
		"force_local_logins_ssl=YES",
		"force_local_data_ssl=YES",
		"require_ssl_reuse=YES",
		// vsftpd's built-in cipher list has no ECDHE-ECDSA suite for TLS 1.2
		// (TLS 1.3 is unaffected); HIGH is what deployments set.
		"ssl_ciphers=HIGH",
		"rsa_cert_file=" + certFile,
		"rsa_private_key_file=" + keyFile,
	}, extra...)}
	if implicit {
		opts.Extra = append(opts.Extra, "implicit_ssl=YES")
		// The readiness check reads the greeting: through TLS here.
		opts.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tls.Client(conn, &tls.Config{InsecureSkipVerify: true}), nil //nolint:gosec // readiness only
		}
	}
	return testftp.StartVsftpd(t, opts), pool, cert.Certificate[0]
}

// roundTrip uploads, checks, downloads and lists on c.
func roundTrip(t *testing.T, ctx context.Context, c *Client, srv *testftp.Server, name string) {
	t.Helper()
	local, sum := randomFile(t, 1<<20)
	remote := srv.Pub + "/" + name
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
}

var tlsVersions = []struct {
	name string
	max  uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// TestVsftpdTLS runs explicit FTPS (ftpes://) against vsftpd with TLS
// required and require_ssl_reuse=YES, which refuses data connections that do
// not resume the control connection's TLS session: passive and active, with
// TLS 1.2 and 1.3 (Go resumes with session tickets; vsftpd's OpenSSL issues
// them in both).
func TestVsftpdTLS(t *testing.T) {
	srv, pool, _ := vsftpdTLS(t, false)
	for _, v := range tlsVersions {
		for _, mode := range modes {
			t.Run(v.name+"/"+mode.String(), func(t *testing.T) {
				ctx := testCtx(t, 30*time.Second)
				cfg := vsftpdConfig(srv, mode)
				cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test", MaxVersion: v.max}
				c := dial(t, cfg)
				if c.pipelined {
					t.Fatal("the FTPS login to vsftpd was pipelined")
				}
				roundTrip(t, ctx, c, srv, "tls-"+v.name+"-"+mode.String())
			})
		}
	}
	t.Run("StaleEarlyStart", func(t *testing.T) {
		// vsftpd at an address remembered as a Ferry agent's (a port reused): the early AUTH TLS
		// and ClientHello may cost this session, never a hang, and the address is forgotten.
		cfg := vsftpdConfig(srv, ModePassive)
		cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test"}
		cfg.DialTimeout, cfg.ReplyTimeout = 5*time.Second, 2*time.Second
		rememberPipeliner(cfg.Addr, true)
		start := time.Now()
		c, err := Dial(testCtx(t, 10*time.Second), cfg)
		t.Logf("early start toward vsftpd: %v (in %v)", err, time.Since(start))
		if err == nil {
			if !c.earlyAuth || c.pipelined {
				t.Errorf("earlyAuth %v, pipelined %v; want an early start and a sequential login", c.earlyAuth, c.pipelined)
			}
			c.Close()
		}
		if knownPipeliner(cfg.Addr) {
			t.Fatal("vsftpd's address is still remembered as a pipeliner")
		}
		c = dial(t, cfg)
		if c.earlyAuth || c.pipelined {
			t.Fatalf("next session: earlyAuth %v, pipelined %v; want neither", c.earlyAuth, c.pipelined)
		}
	})
	t.Run("PlainRefused", func(t *testing.T) {
		// force_anon_logins_ssl: a plain-text login is refused.
		_, err := Dial(testCtx(t, 10*time.Second), vsftpdConfig(srv, ModePassive))
		if !IsPermanent(err) {
			t.Fatalf("plain login on an FTPS-only server: %v, want a 5xx", err)
		}
	})
	t.Run("UnknownCA", func(t *testing.T) {
		cfg := vsftpdConfig(srv, ModePassive)
		cfg.TLS = &tls.Config{ServerName: "ferry.test"} // system roots: the self-signed certificate is unknown
		_, err := Dial(testCtx(t, 10*time.Second), cfg)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Dial with an untrusted certificate: %v, want a certificate error", err)
		}
	})
}

// TestVsftpdImplicitTLS runs implicit FTPS (ftps://: TLS from the first byte
// of the control connection) against vsftpd's implicit_ssl, both modes.
func TestVsftpdImplicitTLS(t *testing.T) {
	srv, pool, _ := vsftpdTLS(t, true)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			cfg := vsftpdConfig(srv, mode)
			cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test"}
			cfg.Implicit = true
			c := dial(t, cfg)
			roundTrip(t, ctx, c, srv, "implicit-"+mode.String())
		})
	}
	t.Run("ExplicitOnImplicitPort", func(t *testing.T) {
		cfg := vsftpdConfig(srv, ModePassive)
		cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test"}
		cfg.DialTimeout = 2 * time.Second
		if _, err := Dial(testCtx(t, 10*time.Second), cfg); err == nil {
			t.Fatal("explicit FTPS on an implicit-TLS port succeeded")
		}
	})
}

// TestVsftpdTLSPinned trusts vsftpd's certificate by its SHA-256 only (as
// agents trust each other), and refuses any other certificate.
func TestVsftpdTLSPinned(t *testing.T) {
	srv, _, der := vsftpdTLS(t, false)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			pin, err := PinSHA256(Fingerprint(der))
			if err != nil {
				t.Fatal(err)
			}
			cfg := vsftpdConfig(srv, mode)
			cfg.TLS = pin
			c := dial(t, cfg)
			roundTrip(t, testCtx(t, 30*time.Second), c, srv, "pinned-"+mode.String())
		})
	}
	t.Run("WrongPin", func(t *testing.T) {
		pin, err := PinSHA256(strings.Repeat("ab", 32))
		if err != nil {
			t.Fatal(err)
		}
		cfg := vsftpdConfig(srv, ModePassive)
		cfg.TLS = pin
		_, err = Dial(testCtx(t, 10*time.Second), cfg)
		if err == nil || !strings.Contains(err.Error(), "not the pinned one") {
			t.Fatalf("Dial with a wrong pin: %v, want the pin mismatch", err)
		}
	})
	if _, err := PinSHA256("abc"); err == nil {
		t.Error("PinSHA256 accepted a short fingerprint")
	}
}

// TestVsftpdTLSNoReuse: a client that cannot resume the control session on
// data connections (session tickets disabled) is refused by vsftpd's
// require_ssl_reuse=YES; the error names that setting.
func TestVsftpdTLSNoReuse(t *testing.T) {
	srv, pool, _ := vsftpdTLS(t, false)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			cfg := vsftpdConfig(srv, mode)
			cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test", SessionTicketsDisabled: true}
			c := dial(t, cfg)
			_, err := c.List(ctx, srv.Pub)
			if err == nil || !strings.Contains(err.Error(), "require_ssl_reuse") {
				t.Fatalf("List without session reuse: %v, want an error naming require_ssl_reuse", err)
			}
		})
	}
}
