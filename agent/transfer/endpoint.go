package transfer

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Kind says where an endpoint lives.
type Kind int

const (
	// KindLocal is a path under this agent's root.
	KindLocal Kind = iota + 1
	// KindFTP is any FTP server: ftp://user:pass@host:port/path (plain), ftpes:// (explicit
	// FTPS: AUTH TLS, required) or ftps:// (implicit FTPS, port 990 by default).
	KindFTP
	// KindAgent is another Ferry agent: agent://host:grpcport/path.
	KindAgent
)

// Endpoint is a parsed source or destination.
type Endpoint struct {
	Kind Kind
	// Host is host:port (FTP control port for KindFTP, gRPC port for KindAgent).
	Host     string
	User     string
	Password string
	// Path is root-relative for KindLocal and KindAgent ("in/a.bin"), and as sent to the server
	// for KindFTP (relative to the login directory unless the URL had "//").
	Path string
	// Dir is true when the text ended with "/": "into this directory".
	Dir bool
	// TLS is the FTPS flavour of a KindFTP endpoint (from the scheme).
	TLS TLSMode
	// Pin, when set, is the SHA-256 of the only server certificate accepted (a peer agent's, from
	// the authenticated API); the certificate is then not checked against CAs.
	Pin string
	raw string
}

// place is the endpoint without credentials: kind, host and path.
func (e Endpoint) place() string {
	if e.Kind == KindLocal {
		return e.Path
	}
	scheme := "ftp"
	if e.Kind == KindAgent {
		scheme = "agent"
	}
	return scheme + "://" + e.Host + "/" + e.Path
}

// TLSMode is how an FTP session is protected.
type TLSMode int

const (
	// TLSNone: plain FTP (ftp://), as curl does.
	TLSNone TLSMode = iota
	// TLSExplicit: AUTH TLS on the control connection, PROT P on data connections (ftpes://).
	TLSExplicit
	// TLSImplicit: TLS from the first byte of the control connection, PROT P (ftps://).
	TLSImplicit
)

// String is the endpoint as given, with any password replaced: safe to log and to show.
func (e Endpoint) String() string { return redact(e.raw) }

// redact hides the password of a URL-like string; other strings are returned as they are.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	return u.String()
}

// ParseEndpoint parses a local path, an ftp:// URL or an agent:// URL. field names the request
// field in errors ("source", "destination").
func ParseEndpoint(field, s string) (Endpoint, error) {
	if strings.TrimSpace(s) == "" {
		return Endpoint{}, invalid(field, "is empty")
	}
	if !strings.Contains(s, "://") {
		p, err := cleanLocal(s)
		if err != nil {
			return Endpoint{}, invalid(field, err.Error())
		}
		return Endpoint{Kind: KindLocal, Path: p, Dir: strings.HasSuffix(s, "/"), raw: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		// Nothing of the text is quoted: what the parser stumbled on may be part of a password.
		msg := "is not a valid URL"
		if strings.Contains(s, "@") {
			msg += " (a user name or password holding # / ? % @ : or a space must percent-encode it, e.g. # as %23)"
		}
		return Endpoint{}, invalid(field, msg)
	}
	e := Endpoint{raw: s, Dir: strings.HasSuffix(u.Path, "/")}
	switch u.Scheme {
	case "ftp", "ftpes", "ftps":
		e.Kind = KindFTP
		port := "21"
		switch u.Scheme {
		case "ftpes":
			e.TLS = TLSExplicit
		case "ftps":
			e.TLS, port = TLSImplicit, "990"
		}
		e.Host = withDefaultPort(u.Host, port)
		e.User, e.Password = "anonymous", "ferry@"
		if u.User != nil {
			e.User = u.User.Username()
			e.Password, _ = u.User.Password()
		}
		// As curl does: the URL path is relative to the login directory; "//abs" is absolute.
		e.Path = "."
		if p := strings.TrimPrefix(u.Path, "/"); p != "" {
			e.Path = path.Clean(p)
		}
	case "agent":
		e.Kind = KindAgent
		if u.User != nil {
			return Endpoint{}, invalid(field, "agent:// URLs carry no credentials (the peer grants a one-time FTP credential)")
		}
		e.Host = withDefaultPort(u.Host, "7070")
		p, err := cleanLocal(strings.TrimPrefix(u.Path, "/"))
		if err != nil {
			return Endpoint{}, invalid(field, err.Error())
		}
		e.Path = p
	default:
		return Endpoint{}, invalid(field, fmt.Sprintf("scheme %q is not supported (use a path under the agent root, ftp://, ftpes://, ftps:// or agent://)", u.Scheme))
	}
	if u.Hostname() == "" {
		return Endpoint{}, invalid(field, "has no host")
	}
	if h, _, err := net.SplitHostPort(e.Host); err != nil || h == "" || (strings.Contains(h, ":") && !isIPv6(h)) {
		return Endpoint{}, invalid(field, "has an invalid host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Endpoint{}, invalid(field, fmt.Sprintf("port %s is not in 1-65535", p))
		}
	}
	return e, nil
}

func isIPv6(h string) bool {
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is6()
}

func withDefaultPort(host, port string) string {
	if h, p, err := net.SplitHostPort(host); err == nil {
		if p != "" {
			return host
		}
		host = h // "h:" has the default port, as in RFC 3986
	}
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.JoinHostPort(h, port)
}

// cleanLocal turns a user path into a root-relative, slash-separated path. A leading "/" means
// the root; ".." that would climb above the root is refused rather than silently clamped.
func cleanLocal(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path contains a NUL byte")
	}
	depth := 0
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", fmt.Errorf("path %q escapes the agent root", p)
			}
		default:
			depth++
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		c = "."
	}
	return c, nil
}
