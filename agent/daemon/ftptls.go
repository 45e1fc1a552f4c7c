package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/ftpserver"
)

// FTP server TLS modes (Config.FTPTLS, --ftp-tls).
const (
	FTPTLSOff      = "off"
	FTPTLSOptional = "optional" // the default
	FTPTLSRequired = "required"
)

// ftpServerTLS builds the FTP server's TLS configuration from cfg: the given certificate and key,
// or a self-signed certificate kept in the state directory (made in memory without one). It
// returns nil when TLS is off, and the certificate's SHA-256 that grants carry to peers.
func ftpServerTLS(cfg Config) (conf *tls.Config, fingerprint string, err error) {
	switch cfg.FTPTLS {
	case FTPTLSOff:
		if cfg.FTPTLSCert != "" || cfg.FTPTLSKey != "" {
			return nil, "", fmt.Errorf("ftp-tls-cert: given with --ftp-tls off")
		}
		return nil, "", nil
	case "", FTPTLSOptional, FTPTLSRequired:
	default:
		return nil, "", fmt.Errorf("ftp-tls: want off, optional or required, got %q", cfg.FTPTLS)
	}
	var cert tls.Certificate
	switch {
	case cfg.FTPTLSCert != "" && cfg.FTPTLSKey != "":
		if cert, err = tls.LoadX509KeyPair(cfg.FTPTLSCert, cfg.FTPTLSKey); err != nil {
			return nil, "", fmt.Errorf("ftp-tls-cert/ftp-tls-key: %w", err)
		}
	case cfg.FTPTLSCert != "":
		return nil, "", fmt.Errorf("ftp-tls-key: required with --ftp-tls-cert")
	case cfg.FTPTLSKey != "":
		return nil, "", fmt.Errorf("ftp-tls-cert: required with --ftp-tls-key")
	default:
		var created bool
		cert, created, err = ftpserver.SelfSigned(cfg.StateDir, certHosts(cfg))
		if err != nil {
			return nil, "", fmt.Errorf("ftp-tls: self-signed certificate in state-dir: %w", err)
		}
		if created && cfg.StateDir != "" {
			cfg.Logger.Info("created a self-signed FTP TLS certificate", "cert", cfg.StateDir+"/"+ftpserver.SelfSignedCertFile)
		}
	}
	fingerprint = ftpclient.Fingerprint(cert.Certificate[0])
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// Session tickets stay on (Go's default): data connections resume the control
		// connection's session, which clients such as ours and lftp expect.
	}, fingerprint, nil
}

// certHosts are the names a generated certificate is valid for: the FTP listen address's host,
// the announced public host and this host's name ("localhost" and 127.0.0.1 are always added).
func certHosts(cfg Config) []string {
	var hosts []string
	if h, _, err := net.SplitHostPort(cfg.FTPListen); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if cfg.PublicHost != "" {
		hosts = append(hosts, cfg.PublicHost)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// ftpClientTLS is the base TLS configuration of ftpes:// and ftps:// sessions: the system roots,
// or the PEM bundle in cfg.FTPCA.
func ftpClientTLS(cfg Config) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.FTPCA == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(cfg.FTPCA)
	if err != nil {
		return nil, fmt.Errorf("ftp-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ftp-ca: %s holds no PEM certificate", cfg.FTPCA)
	}
	conf.RootCAs = pool
	return conf, nil
}

// FTPTLSFingerprint is the SHA-256 (hex) of the FTP server's certificate, "" with TLS off: what
// grants carry to peers (server.TLSPinner).
func (g granter) FTPTLSFingerprint() string { return g.d.ftpPin }
