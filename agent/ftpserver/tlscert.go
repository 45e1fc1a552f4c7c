package ftpserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Names of the generated certificate and key in the state directory.
const (
	SelfSignedCertFile = "ftp-tls.crt"
	SelfSignedKeyFile  = "ftp-tls.key"
	selfSignedLifetime = 365 * 24 * time.Hour
)

// SelfSigned returns the certificate in dir/ftp-tls.crt and dir/ftp-tls.key, creating both
// (ECDSA P-256, valid for a year, key mode 0600) when neither exists: one certificate per agent,
// the same across restarts, so peers that pinned it keep trusting it. hosts become its subject
// alternative names (IP addresses or DNS names; "localhost" and 127.0.0.1 are always added). With
// dir "" the certificate is made in memory only. created reports a new certificate.
func SelfSigned(dir string, hosts []string) (cert tls.Certificate, created bool, err error) {
	if dir == "" {
		certPEM, keyPEM, err := newSelfSigned(hosts)
		if err != nil {
			return tls.Certificate{}, false, err
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		return c, true, err
	}
	certFile, keyFile := filepath.Join(dir, SelfSignedCertFile), filepath.Join(dir, SelfSignedKeyFile)
	_, cerr := os.Stat(certFile)
	_, kerr := os.Stat(keyFile)
	switch {
	case cerr == nil && kerr == nil:
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("%s: %w (remove both files to make a new certificate)", certFile, err)
		}
		return c, false, nil
	case !errors.Is(cerr, fs.ErrNotExist) || !errors.Is(kerr, fs.ErrNotExist):
		return tls.Certificate{}, false, fmt.Errorf("%s and %s: want both or neither (remove the other to make a new certificate)", certFile, keyFile)
	}
	certPEM, keyPEM, err := newSelfSigned(hosts)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	// The key first, created exclusively with mode 0600: never readable by others, not even
	// for a moment, and never overwriting a file another agent just wrote.
	if err := writeExclusive(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := writeExclusive(certFile, certPEM, 0o644); err != nil {
		_ = os.Remove(keyFile)
		return tls.Certificate{}, false, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	return c, true, err
}

func writeExclusive(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

// newSelfSigned makes a self-signed ECDSA P-256 certificate for hosts, in PEM.
func newSelfSigned(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ferry-agent FTP server", Organization: []string{"Ferry (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	seen := map[string]bool{}
	for _, h := range append([]string{"localhost", "127.0.0.1"}, hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
