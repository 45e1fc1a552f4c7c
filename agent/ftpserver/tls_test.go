package ftpserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// upgrade runs AUTH TLS and the handshake on a raw session.
func (f *rawFTP) upgrade(conf *tls.Config) {
	f.t.Helper()
	f.expect(234, "AUTH TLS")
	tc := tls.Client(f.conn, conf)
	if err := tc.Handshake(); err != nil {
		f.t.Fatalf("handshake: %v", err)
	}
	f.conn, f.tp = tc, textproto.NewConn(tc)
}

// TestTLSRequired: with Config.TLSRequired the control filter refuses USER and
// PASS before AUTH TLS (530), transfers without PROT P (521), and a transfer
// whose data connection was set up before PROT P (521); with AUTH TLS and
// PROT P the transfer runs, over a TLS data connection.
func TestTLSRequired(t *testing.T) {
	if _, err := New(Config{Listen: "127.0.0.1:0", Root: t.TempDir(), TLSRequired: true}); err == nil ||
		!strings.Contains(err.Error(), "TLSRequired") {
		t.Fatalf("TLSRequired without TLS: %v, want an error naming Config.TLSRequired", err)
	}
	ts := startServer(t, func(c *Config) { c.TLS = testTLSConfig(t); c.TLSRequired = true })
	want := writeRandom(t, ts.root, "f.bin", 64<<10)
	ccfg := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)} //nolint:gosec // test certificate

	t.Run("PlainLogin", func(t *testing.T) {
		f := dialRaw(t, ts)
		if msg := f.expect(530, "USER %s", testUser); !strings.Contains(msg, "AUTH TLS") {
			t.Errorf("USER reply %q does not say to use AUTH TLS", msg)
		}
		f.expect(530, "PASS %s", testPass)
		f.expect(530, "PWD") // never logged in
	})
	t.Run("NoPROT", func(t *testing.T) {
		f := dialRaw(t, ts)
		f.upgrade(ccfg)
		if code := f.login(testUser, testPass); code != 230 {
			t.Fatalf("login over TLS: %d", code)
		}
		d := f.openData()
		defer d.Close()
		if msg := f.expect(521, "RETR /f.bin"); !strings.Contains(msg, "PROT P") {
			t.Errorf("reply %q does not name PROT P", msg)
		}
		f.expect(200, "PROT C")
		f.expect(521, "LIST /")
	})
	t.Run("PROTAfterPASV", func(t *testing.T) {
		f := dialRaw(t, ts)
		f.upgrade(ccfg)
		f.login(testUser, testPass)
		d := f.openData() // set up in clear
		defer d.Close()
		f.expect(200, "PBSZ 0")
		f.expect(200, "PROT P")
		f.expect(521, "RETR /f.bin")
	})
	t.Run("Encrypted", func(t *testing.T) {
		f := dialRaw(t, ts)
		f.upgrade(ccfg)
		f.login(testUser, testPass)
		f.expect(200, "PBSZ 0")
		f.expect(200, "PROT P")
		d := f.openData()
		f.expect(150, "RETR /f.bin")
		dc := tls.Client(d, ccfg)
		b, err := io.ReadAll(dc)
		dc.Close()
		if err != nil {
			t.Fatalf("read data: %v", err)
		}
		if code, msg := f.read(); code != 226 || sha256Hex(b) != want {
			t.Fatalf("RETR: %d %q, data match %v", code, msg, sha256Hex(b) == want)
		}
	})
	// Ferry's own client, both modes, pinning the server's certificate.
	for _, mode := range []ftpclient.Mode{ftpclient.ModePassive, ftpclient.ModeActive} {
		t.Run("ftpclient/"+mode.String(), func(t *testing.T) {
			pin, err := ftpclient.PinSHA256(ftpclient.Fingerprint(ts.cfg.TLS.Certificates[0].Certificate[0]))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := ftpclient.Dial(ctx, ftpclient.Config{Addr: ts.Addr().String(), User: testUser, Password: testPass,
				Mode: mode, TLS: pin})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			r, err := c.Retr(ctx, "/f.bin", 0)
			if err != nil {
				t.Fatalf("Retr: %v", err)
			}
			b, err := io.ReadAll(r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil || sha256Hex(b) != want {
				t.Fatalf("Retr: %v, match %v", err, sha256Hex(b) == want)
			}
			// Without TLS the same client is refused at login.
			_, err = ftpclient.Dial(ctx, ftpclient.Config{Addr: ts.Addr().String(), User: testUser, Password: testPass, Mode: mode})
			var re *ftpclient.ReplyError
			if !errors.As(err, &re) || re.Code != 530 {
				t.Fatalf("plain login: %v, want 530", err)
			}
		})
	}
	t.Run("curl", func(t *testing.T) {
		requireTool(t, "curl")
		local := filepath.Join(t.TempDir(), "f.bin")
		// Without --ssl-reqd curl logs in in clear: refused.
		if out, err := tryTool(t, "curl", append(curlArgs(ts, "passive"), "--output", local, ts.url("/f.bin"))); err == nil {
			t.Fatalf("plain curl download succeeded:\n%s", out)
		}
		runTool(t, "curl", append(curlArgs(ts, "passive"), "--ssl-reqd", "--insecure", "--output", local, ts.url("/f.bin")))
		if fileSHA256(t, local) != want {
			t.Fatal("curl over FTPS: data differs")
		}
	})
}

// TestSelfSigned: the certificate is made once (key mode 0600), names the given
// hosts, localhost and 127.0.0.1, lasts about a year, and is reused later; a
// lone half of the pair is an error.
func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	c1, created, err := SelfSigned(dir, []string{"10.1.2.3", "agent.example", "0.0.0.0"})
	if err != nil || !created {
		t.Fatalf("SelfSigned: created=%v, %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, SelfSignedKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	leaf, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"10.1.2.3", "agent.example", "localhost", "127.0.0.1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate not valid for %s: %v", h, err)
		}
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 360*24*time.Hour || life > 370*24*time.Hour {
		t.Errorf("lifetime %s, want about a year", life)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	c2, created, err := SelfSigned(dir, nil)
	if err != nil || created {
		t.Fatalf("second SelfSigned: created=%v, %v", created, err)
	}
	if string(c2.Certificate[0]) != string(c1.Certificate[0]) {
		t.Fatal("the certificate changed between starts: pinned peers would refuse it")
	}
	if err := os.Remove(filepath.Join(dir, SelfSignedCertFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SelfSigned(dir, nil); err == nil || !strings.Contains(err.Error(), "both or neither") {
		t.Fatalf("lone key file: %v", err)
	}
	if _, created, err := SelfSigned("", nil); err != nil || !created {
		t.Fatalf("in-memory certificate: %v", err)
	}
}

// tryTool runs a command and returns its combined output and error.
func tryTool(t *testing.T, bin string, args []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}
