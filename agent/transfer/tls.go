package transfer

import (
	"crypto/tls"
	"fmt"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/netcheck"
)

// pin makes the remote endpoint accept only the certificate with SHA-256 hexSum (Spec.TLSPin).
func (p *plan) pin(hexSum string) error {
	if _, err := ftpclient.ParseFingerprint(hexSum); err != nil {
		return invalid("tls_pin", err.Error())
	}
	e := &p.src
	if p.dir == Upload {
		e = &p.dst
	}
	if e.Kind != KindFTP || e.TLS == TLSNone {
		return invalid("tls_pin", "applies to an ftpes:// or ftps:// endpoint only")
	}
	e.Pin = hexSum
	return nil
}

// tlsFor returns the TLS settings of a session to the FTP server of e (nil: plain FTP) and
// whether TLS is implicit. A pin (a peer agent's certificate, from its grant) replaces the CA
// check; otherwise the server is verified against base's RootCAs (nil: the system roots) and
// the host name of the URL.
func tlsFor(base *tls.Config, mode TLSMode, pin string) (*tls.Config, bool, error) {
	if mode == TLSNone {
		return nil, false, nil
	}
	var conf *tls.Config
	if pin != "" {
		var err error
		if conf, err = ftpclient.PinSHA256(pin); err != nil {
			return nil, false, err
		}
	} else if base != nil {
		conf = base.Clone()
	} else {
		conf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return conf, mode == TLSImplicit, nil
}

// secure adds the TLS settings of endpoint e (or of a peer's grant) to a login.
func (d *dialer) secure(l *netcheck.Login, mode TLSMode, pin string) error {
	conf, implicit, err := tlsFor(d.opts.TLS, mode, pin)
	if err != nil {
		return fmt.Errorf("ftp %s: %w", l.Addr, err)
	}
	l.TLS, l.Implicit = conf, implicit
	return nil
}
