package ftpclient

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
)

// PinSHA256 returns a TLS configuration that trusts exactly the server
// certificate whose DER encoding has the SHA-256 fingerprint hexSum
// (lower- or upper-case hex, colons allowed): no CA, no name check. Ferry
// agents pin each other's FTP certificates this way, the fingerprint coming
// from the authenticated API.
func PinSHA256(hexSum string) (*tls.Config, error) {
	want, err := ParseFingerprint(hexSum)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is not verified against CAs: VerifyConnection compares
		// the leaf with the pin instead, on full and resumed handshakes.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("tls: the server's certificate (SHA-256 %s) is not the pinned one (%s)",
					hex.EncodeToString(got[:]), hex.EncodeToString(want))
			}
			return nil
		},
	}, nil
}

// ParseFingerprint decodes a SHA-256 fingerprint in hex (colons allowed).
func ParseFingerprint(hexSum string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hexSum), ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("tls pin: want a SHA-256 fingerprint (64 hex digits), got %d characters", len(hexSum))
	}
	return b, nil
}

// Fingerprint is the lower-case hex SHA-256 of a DER certificate, as
// PinSHA256 takes it.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// tlsConfig prepares the session's TLS configuration: ServerName defaults
// to the host of Addr and a session cache is shared by the control and the
// data connections (the cache key is ServerName, the same for all of them,
// so data connections on other ports resume the control session).
func (c *Client) tlsConfig() (*tls.Config, error) {
	conf := c.cfg.TLS.Clone()
	if conf.ServerName == "" {
		host, _, err := net.SplitHostPort(c.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		conf.ServerName = host
	}
	if conf.ClientSessionCache == nil {
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(16)
	}
	if conf.MinVersion == 0 {
		conf.MinVersion = tls.VersionTLS12
	}
	c.tlsConf = conf
	return conf, nil
}

// handshake upgrades the control connection to TLS.
func (c *Client) handshake(ctx context.Context, conf *tls.Config) error {
	tc := tls.Client(c.conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.mu.Lock()
	c.conn = tc
	c.mu.Unlock()
	c.r = bufio.NewReader(tc)
	return nil
}

// earlyTLS is the start of an explicit FTPS session to a server address that announced
// PipelineMarker before (knownPipeliner): AUTH TLS and the TLS ClientHello are written at once,
// right after connecting, and the greeting, the 234 and the server's handshake come back
// together (one round trip instead of three). A Ferry agent's control connection filter reads
// the ClientHello through the buffered reader it read AUTH TLS with, so bytes sent ahead of
// its 234 are not lost; the greeting and the AUTH reply are checked as startTLS does, from the
// handshake's first read. It returns whether the greeting still announces pipelining (a server
// that no longer does is forgotten).
func (c *Client) earlyTLS(ctx context.Context) (pipeline bool, err error) {
	conf, err := c.tlsConfig()
	if err != nil {
		return false, err
	}
	c.earlyAuth = true
	if err := c.send("AUTH TLS"); err != nil {
		return false, fmt.Errorf("AUTH TLS: %w", err)
	}
	ec := &earlyConn{Conn: c.conn, c: c, r: c.r}
	tc := tls.Client(ec, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ec.err != nil {
			return false, ec.err
		}
		return false, fmt.Errorf("tls handshake: %w", err)
	}
	c.mu.Lock()
	c.conn = tc
	c.mu.Unlock()
	c.r = bufio.NewReader(tc)
	return ec.pipeline, nil
}

// earlyConn is the raw control connection under earlyTLS's handshake: its first read takes the
// greeting and the reply to AUTH TLS off the stream (through the client's buffered reader,
// which then holds the first TLS bytes).
type earlyConn struct {
	net.Conn               // writes and deadlines go to the raw connection
	c        *Client       // its r is replaced once the handshake is done
	r        *bufio.Reader // the client's reader of the raw connection
	read     bool          // the FTP replies were read
	err      error         // their failure, if any: the session's error
	pipeline bool
}

func (e *earlyConn) Read(p []byte) (int, error) {
	if !e.read {
		e.read = true
		e.pipeline, e.err = e.c.greeting()
		if e.err == nil {
			r, err := e.c.readFinal(e.c.cfg.ReplyTimeout)
			if err != nil {
				e.err = fmt.Errorf("AUTH TLS: %w", err)
			} else {
				e.err = authOK(r)
			}
		}
	}
	if e.err != nil {
		return 0, e.err
	}
	return e.r.Read(p)
}

// protectData asks for TLS on data connections (RFC 4217: PBSZ 0, PROT P).
func (c *Client) protectData() error {
	if _, err := c.expect("PBSZ 0", 200); err != nil {
		return fmt.Errorf("PBSZ: %w", err)
	}
	if _, err := c.expect("PROT P", 200); err != nil {
		return fmt.Errorf("PROT P (TLS on data connections): %w", err)
	}
	return nil
}

// implicitTLS runs the TLS handshake before the greeting (implicit FTPS).
func (c *Client) implicitTLS(ctx context.Context) error {
	conf, err := c.tlsConfig()
	if err != nil {
		return err
	}
	if err := c.handshake(ctx, conf); err != nil {
		return fmt.Errorf("implicit FTPS: %w", err)
	}
	return nil
}

// reuseHint is added to data-connection TLS failures: the usual cause is a
// server requiring the data connection to resume the control connection's
// TLS session (vsftpd's require_ssl_reuse=YES, its default) when the
// session could not be resumed. Go resumes sessions only with tickets.
const reuseHint = "the server may require TLS session reuse on data connections " +
	"(vsftpd: require_ssl_reuse=YES) and this session could not be resumed " +
	"(Go resumes only with session tickets): enable session tickets on the server, " +
	"or set require_ssl_reuse=NO"

// reuseRefused reports whether a reply refuses a data connection for lack of
// TLS session reuse (vsftpd: "522 SSL connection failed: session reuse required").
func reuseRefused(r *reply) bool {
	return r.Code == 522 || (r.Code/100 >= 4 && strings.Contains(strings.ToLower(r.msg()), "reuse"))
}

// replyErr is r as an error, with a hint when a TLS session's data
// connection was refused for lack of session reuse.
func (c *Client) replyErr(r *reply) *ReplyError {
	e := r.err()
	if c.tlsConf != nil && (reuseRefused(r) || (c.noResume && r.Code/100 >= 4)) {
		e.Hint = reuseHint
	}
	return e
}
