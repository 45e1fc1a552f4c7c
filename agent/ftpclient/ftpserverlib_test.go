package ftpclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"
)

// libDriver is a minimal ftpserverlib driver serving dir to one user.
type libDriver struct {
	dir  string
	tls  *tls.Config
	user string
	pass string
	// listDelay, when > 0, is how long reading a directory takes (a huge or slow one):
	// ftpserverlib reads it before it opens the data connection.
	listDelay time.Duration
}

// slowDirFs reads directories in delay (ftpserverlib's ReadDir extension).
type slowDirFs struct {
	afero.Fs
	delay time.Duration
}

func (f slowDirFs) ReadDir(name string) ([]os.FileInfo, error) {
	time.Sleep(f.delay)
	return afero.ReadDir(f.Fs, name)
}

func (d *libDriver) GetSettings() (*ftpserver.Settings, error) {
	return &ftpserver.Settings{
		ListenAddr:              "127.0.0.1:0",
		EnableHASH:              true,
		ActiveTransferPortNon20: true, // no port 20: tests run in parallel, unprivileged ports only
		ConnectionTimeout:       10,
		IdleTimeout:             60,
	}, nil
}

func (d *libDriver) ClientConnected(ftpserver.ClientContext) (string, error) {
	return "ferry test", nil
}
func (d *libDriver) ClientDisconnected(ftpserver.ClientContext) {}
func (d *libDriver) GetTLSConfig() (*tls.Config, error)         { return d.tls, nil }

func (d *libDriver) AuthUser(_ ftpserver.ClientContext, user, pass string) (ftpserver.ClientDriver, error) {
	if user != d.user || pass != d.pass {
		return nil, errors.New("bad credentials")
	}
	fsys := afero.NewBasePathFs(afero.NewOsFs(), d.dir)
	if d.listDelay > 0 {
		return slowDirFs{Fs: fsys, delay: d.listDelay}, nil
	}
	return fsys, nil
}

// startLib starts an ftpserverlib server (HASH enabled) over a temp dir.
func startLib(t *testing.T, tlsConf *tls.Config) (addr, dir string) {
	return startLibDriver(t, &libDriver{tls: tlsConf})
}

// startLibDriver starts an ftpserverlib server with d (its dir, user and password are set).
func startLibDriver(t *testing.T, d *libDriver) (addr, dir string) {
	t.Helper()
	dir = t.TempDir()
	d.dir, d.user, d.pass = dir, "ferry", "ferry-pw"
	srv := ftpserver.NewFtpServer(d)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	t.Cleanup(func() {
		_ = srv.Stop()
		<-done
	})
	return srv.Addr(), dir
}

func libConfig(addr string, mode Mode) Config {
	return Config{
		Addr: addr, User: "ferry", Password: "ferry-pw", Mode: mode,
		DialTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, ReplyTimeout: 10 * time.Second,
	}
}

func TestHashFtpserverlib(t *testing.T) {
	addr, dir := startLib(t, nil)
	local, sum := randomFile(t, 1<<20)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			c := dial(t, libConfig(addr, mode))
			remote := "/h-" + mode.String()
			if err := upload(ctx, c, local, remote, 0); err != nil {
				t.Fatal(err)
			}
			got, err := c.Hash(ctx, remote)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			if got != sum || got != sha256File(t, filepath.Join(dir, remote)) {
				t.Fatalf("Hash = %s, want %s", got, sum)
			}
			_, err = c.Hash(ctx, "/missing")
			if err == nil || errors.Is(err, ErrUnsupported) {
				t.Fatalf("Hash(missing) = %v, want a reply error (not ErrUnsupported)", err)
			}
			// MLST/MLSD paths (vsftpd only exercises the fallbacks).
			e, err := c.Stat(ctx, remote)
			if err != nil || e.Size != 1<<20 || e.IsDir || e.ModTime.IsZero() {
				t.Fatalf("Stat via MLST = %+v, %v", e, err)
			}
			if err := c.MkdirAll(ctx, "/d1/d2"); err != nil {
				t.Fatal(err)
			}
			if err := c.MkdirAll(ctx, "/d1/d2"); err != nil {
				t.Fatalf("MkdirAll on existing dirs: %v", err)
			}
			entries, err := c.List(ctx, "/")
			if err != nil {
				t.Fatal(err)
			}
			found := map[string]Entry{}
			for _, e := range entries {
				found[e.Name] = e
			}
			if e := found[remote[1:]]; e.Size != 1<<20 || e.IsDir {
				t.Fatalf("MLSD entries %+v lack %s", entries, remote)
			}
			if e, ok := found["d1"]; !ok || !e.IsDir {
				t.Fatalf("MLSD entries %+v lack dir d1", entries)
			}
			got2, _, err := download(ctx, c, remote, 0)
			if err != nil || got2 != sum {
				t.Fatalf("download: %v", err)
			}
		})
	}
}

// TestHashRangeFtpserverlib: XSHA256 range hashes equal the SHA-256 of the
// byte range, also for a path with spaces and quotes; HashSize equals Hash.
func TestHashRangeFtpserverlib(t *testing.T) {
	addr, dir := startLib(t, nil)
	const size = 1 << 20
	local, sum := randomFile(t, size)
	data, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	c := dial(t, libConfig(addr, ModePassive))
	for _, remote := range []string{"/range.bin", `/with space "and" quotes.bin`} {
		if err := upload(ctx, c, local, remote, 0); err != nil {
			t.Fatal(err)
		}
		if got := sha256File(t, filepath.Join(dir, remote)); got != sum {
			t.Fatal("uploaded file differs")
		}
		for _, r := range [][2]int64{{0, size}, {0, 0}, {1000, 500_001}, {size - 1, size}, {12345, 12346}} {
			got, err := c.HashRange(ctx, remote, r[0], r[1])
			if err != nil {
				t.Fatalf("HashRange(%q, %d, %d): %v", remote, r[0], r[1], err)
			}
			want := sha256.Sum256(data[r[0]:r[1]])
			if got != hex.EncodeToString(want[:]) {
				t.Fatalf("HashRange(%q, %d, %d) = %s, want %x", remote, r[0], r[1], got, want)
			}
		}
	}
	if got, err := c.HashSize(ctx, "/range.bin", size); err != nil || got != sum {
		t.Fatalf("HashSize = %s, %v; want %s", got, err, sum)
	}
	// ftpserverlib splits HASH's argument at spaces unless it is quoted.
	if got, err := c.Hash(ctx, `/with space "and" quotes.bin`); err != nil || got != sum {
		t.Fatalf("Hash of a path with spaces = %s, %v; want %s", got, err, sum)
	}
	if _, err := c.HashRange(ctx, "/range.bin", 10, 5); err == nil {
		t.Fatal("HashRange accepted end < start")
	}
	_, err = c.HashRange(ctx, "/missing", 0, 10)
	if err == nil || errors.Is(err, ErrUnsupported) || IsPermanent(err) == false {
		t.Fatalf("HashRange(missing) = %v, want a 5xx reply error", err)
	}
	if _, err := c.Size(ctx, "/range.bin"); err != nil {
		t.Fatalf("session unusable: %v", err)
	}
}

func TestWrongPasswordFtpserverlib(t *testing.T) {
	addr, _ := startLib(t, nil)
	cfg := libConfig(addr, ModePassive)
	cfg.Password = "not-the-password"
	_, err := Dial(testCtx(t, 10*time.Second), cfg)
	wantReplyCode(t, err, 530)
	if !IsPermanent(err) {
		t.Fatal("530 should be permanent")
	}
	if msg := err.Error(); !strings.Contains(msg, `login as "ferry" failed`) || strings.Contains(msg, "not-the-password") {
		t.Fatalf("error %q: want a clear login failure without the password", msg)
	}
}

// TestTLSFtpserverlib runs explicit FTPS (AUTH TLS, PROT P) in both modes.
func TestTLSFtpserverlib(t *testing.T) {
	serverConf, pool := selfSigned(t)
	addr, dir := startLib(t, serverConf)
	local, sum := randomFile(t, 512<<10)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			cfg := libConfig(addr, mode)
			cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test"}
			c := dial(t, cfg)
			if _, ok := c.conn.(*tls.Conn); !ok {
				t.Fatal("control connection is not TLS")
			}
			remote := "/tls-" + mode.String()
			if err := upload(ctx, c, local, remote, 0); err != nil {
				t.Fatal(err)
			}
			if got := sha256File(t, filepath.Join(dir, remote)); got != sum {
				t.Fatal("uploaded file differs")
			}
			r, err := c.Retr(ctx, remote, 0)
			if err != nil {
				t.Fatal(err)
			}
			dc, ok := r.(*reader).t.conn.(*tls.Conn)
			if !ok {
				t.Fatal("data connection is not TLS")
			}
			h := sha256.New()
			if _, err := io.Copy(h, r); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(h.Sum(nil)) != sum {
				t.Fatal("downloaded file differs")
			}
			if !dc.ConnectionState().DidResume {
				t.Fatal("the data connection did not resume the control connection's TLS session")
			}
		})
	}
	t.Run("UntrustedCert", func(t *testing.T) {
		cfg := libConfig(addr, ModePassive)
		cfg.TLS = &tls.Config{ServerName: "ferry.test"} // system roots only
		_, err := Dial(testCtx(t, 10*time.Second), cfg)
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) {
			t.Fatalf("Dial with an untrusted certificate: %v, want x509.UnknownAuthorityError", err)
		}
	})
}

// selfSigned returns a server TLS config for "ferry.test" and a pool
// trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ferry.test"},
		DNSNames:              []string{"ferry.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// TestSlowListingFtpserverlib: a server that takes longer than the data timeout to read a
// directory before it opens the data connection (ftpserverlib reads the whole directory first;
// an agent listing 120,000 files on a loaded machine) is busy, not blocked: a passive listing,
// plain and FTPS (the TLS handshake waits for the server), waits for it as for a reply.
func TestSlowListingFtpserverlib(t *testing.T) {
	serverConf, pool := selfSigned(t)
	const delay = 1500 * time.Millisecond
	addr, dir := startLibDriver(t, &libDriver{tls: serverConf, listDelay: delay})
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "Plain", true: "TLS"}[withTLS], func(t *testing.T) {
			cfg := libConfig(addr, ModePassive)
			cfg.DataTimeout, cfg.FirstDataTimeout = 300*time.Millisecond, 300*time.Millisecond
			if withTLS {
				cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "ferry.test"}
			}
			c := dial(t, cfg)
			start := time.Now()
			entries, err := c.List(testCtx(t, 30*time.Second), "/")
			if err != nil || len(entries) != 3 {
				t.Fatalf("List = %d entries, %v; want 3 after the server's %v", len(entries), err, delay)
			}
			if d := time.Since(start); d < delay {
				t.Fatalf("listed in %v: the server's delay did not apply", d)
			}
		})
	}
}
