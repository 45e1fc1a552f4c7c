package ftpserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/storage"
)

// PortRange is an inclusive TCP port range. The zero value means "any free
// port".
type PortRange struct{ Lo, Hi int }

func (r PortRange) isZero() bool { return r.Lo == 0 && r.Hi == 0 }

// User is a static account with full read/write access under Config.Root.
type User struct{ Name, Password string }

// HostOverride makes clients connecting from Network see Host (an IPv4
// address) in PASV replies instead of Config.PublicHost.
type HostOverride struct {
	Network netip.Prefix
	Host    string
}

// Config configures a Server. See New.
type Config struct {
	Listen string // control address, e.g. ":2121"; "127.0.0.1:0" in tests
	Root   string // served directory (must exist)
	// Storage, when set, is the already opened root to serve (the agent shares one with its
	// transfer engine); Root must name the same directory. The server does not close it.
	Storage       *storage.Root
	PassivePorts  PortRange      // passive data ports; zero = any free port
	PublicHost    string         // IPv4 announced in PASV replies ("" = the control connection's local address)
	HostOverrides []HostOverride // per-client-network override of PublicHost (most specific network wins)
	Users         []User         // static accounts (full read/write under Root)
	Accounts      []Account      // accounts with bcrypt hashes, homes and rights (see ReadUsersFile)
	AnonymousRead bool           // allow anonymous/ftp login, read-only; never writable
	TLS           *tls.Config    // optional: explicit FTPS (AUTH TLS) offered when set
	IdleTimeout   time.Duration  // control connection idle timeout; 0 = 5 min
	Logger        *slog.Logger   // nil = discard; passwords are never logged

	// Floods (see limits.go). New control connections beyond MaxConns in all, or beyond
	// MaxConnsPerIP from one source address (IPv6: one /64), get "421 Too many connections" and
	// are closed. 0 = the default (256 and 16); negative = no limit.
	MaxConns      int
	MaxConnsPerIP int
	// A failed login makes the next login attempt from its source address wait: LoginDelay
	// after the first failure, doubling with each further one up to LoginMaxDelay; one step is
	// forgiven per minute without failures. 0 = the defaults (500ms and 8s); a negative
	// LoginDelay turns the delay off.
	LoginDelay    time.Duration
	LoginMaxDelay time.Duration
	// TLSRequired (needs TLS) refuses USER/PASS before AUTH TLS (530) and transfers whose data
	// connection was not set up under PROT P (521), as vsftpd's force_*_ssl options do.
	TLSRequired bool
	// Events, when set, is told of logins and file operations (see events.go).
	Events EventSink
	// Authenticators verify logins the server's own users and grants do not know (auth
	// plugins), asked in order; AuthOrder says where they come among the sources (default
	// DefaultAuthOrder: grants, users, plugins). See auth.go.
	Authenticators []Authenticator
	AuthOrder      []AuthSource
	// TCPCongestion, when set, is the TCP congestion control of the data connections the
	// server sends on (passive and active; netopt.Resolve checks the name). "" = the system's.
	TCPCongestion string
	// PublishGate, when set, may veto the rename of an upload's part file to its final name.
	PublishGate PublishGate
}

const (
	defaultIdleTimeout   = 5 * time.Minute
	defaultMaxConns      = 256
	defaultMaxConnsPerIP = 16
	defaultLoginDelay    = 500 * time.Millisecond
	defaultLoginMaxDelay = 8 * time.Second
	defaultCredentialTTL = 5 * time.Minute
	// welcomeBanner carries ftpclient.PipelineMarker, a promise to Ferry clients: a login sent
	// in one write is read in order, and a TLS ClientHello may follow AUTH TLS without waiting
	// for the 234 (controlConn.auth reads the handshake through its command buffer).
	welcomeBanner = "Ferry FTP server ready (login pipelining)"
)

// validated is the normalized form of a Config used by the server.
type validated struct {
	overrides   []HostOverride // masked, IPv4-mapped prefixes unmapped, Host canonical
	publicHost  string         // canonical IPv4 or ""
	idleSeconds int
	users       map[string][32]byte // name -> SHA-256(password)
	accounts    map[string]*account // Config.Accounts by name
	homes       map[string]string   // cleaned home -> the Source (or field) that named it first
	maxConns    int                 // 0 = no limit
	maxPerIP    int                 // 0 = no limit
	loginDelay  time.Duration       // 0 = off
	loginMax    time.Duration
	authOrder   []AuthSource
}

func fieldErr(field string, format string, args ...any) error {
	return fmt.Errorf("ftpserver: Config.%s: %s", field, fmt.Sprintf(format, args...))
}

// parseIPv4 accepts an IPv4 literal (or an IPv4-mapped IPv6 literal) and
// returns its dotted-quad form.
func parseIPv4(s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address", s)
	}
	a = a.Unmap()
	if !a.Is4() {
		return "", fmt.Errorf("%q is not an IPv4 address (PASV replies carry IPv4 only)", s)
	}
	return a.String(), nil
}

func isAnonymousName(name string) bool {
	return strings.EqualFold(name, "anonymous") || strings.EqualFold(name, "ftp")
}

func (c *Config) validate() (*validated, error) {
	v := &validated{users: make(map[string][32]byte, len(c.Users))}

	if c.Listen == "" {
		return nil, fieldErr("Listen", "empty")
	}

	if c.Root == "" {
		return nil, fieldErr("Root", "empty")
	}
	fi, err := os.Stat(c.Root)
	if err != nil {
		return nil, fieldErr("Root", "%v", err)
	}
	if !fi.IsDir() {
		return nil, fieldErr("Root", "%q is not a directory", c.Root)
	}

	if pr := c.PassivePorts; !pr.isZero() {
		if pr.Lo < 1 || pr.Hi > math.MaxUint16 || pr.Lo > pr.Hi {
			return nil, fieldErr("PassivePorts", "invalid range %d-%d (want 1 <= Lo <= Hi <= 65535, or both 0 for any port)", pr.Lo, pr.Hi)
		}
	}

	if c.PublicHost != "" {
		h, err := parseIPv4(c.PublicHost)
		if err != nil {
			return nil, fieldErr("PublicHost", "%v", err)
		}
		v.publicHost = h
	}

	for i, o := range c.HostOverrides {
		field := fmt.Sprintf("HostOverrides[%d]", i)
		if !o.Network.IsValid() {
			return nil, fieldErr(field+".Network", "invalid or missing prefix")
		}
		p := o.Network.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		h, err := parseIPv4(o.Host)
		if err != nil {
			return nil, fieldErr(field+".Host", "%v", err)
		}
		v.overrides = append(v.overrides, HostOverride{Network: p, Host: h})
	}

	for i, u := range c.Users {
		field := fmt.Sprintf("Users[%d]", i)
		switch {
		case u.Name == "":
			return nil, fieldErr(field+".Name", "empty")
		case strings.ContainsAny(u.Name, " \t\r\n\x00"):
			return nil, fieldErr(field+".Name", "contains whitespace or NUL")
		case isAnonymousName(u.Name):
			return nil, fieldErr(field+".Name", "%q is reserved for anonymous access (see AnonymousRead)", u.Name)
		case u.Password == "":
			return nil, fieldErr(field+".Password", "empty")
		}
		if _, dup := v.users[u.Name]; dup {
			return nil, fieldErr(field+".Name", "duplicate user %q", u.Name)
		}
		v.users[u.Name] = digest(u.Password)
	}

	v.accounts = make(map[string]*account, len(c.Accounts))
	v.homes = map[string]string{}
	for i, a := range c.Accounts {
		where := fmt.Sprintf("ftpserver: Config.Accounts[%d]", i)
		if a.Source != "" {
			where = a.Source
		}
		if err := checkAccount(a); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if _, dup := v.users[a.Name]; dup {
			return nil, fmt.Errorf("%s: user %q is also a static user (Users)", where, a.Name)
		}
		if _, dup := v.accounts[a.Name]; dup {
			return nil, fmt.Errorf("%s: duplicate user %q", where, a.Name)
		}
		home, _ := cleanHome(a.Home)
		v.accounts[a.Name] = &account{hash: []byte(a.Hash), home: home, readOnly: a.ReadOnly}
		if _, ok := v.homes[home]; !ok && home != "." {
			v.homes[home] = where
		}
	}

	v.maxConns = limitOrDefault(c.MaxConns, defaultMaxConns)
	v.maxPerIP = limitOrDefault(c.MaxConnsPerIP, defaultMaxConnsPerIP)
	switch {
	case c.LoginDelay == 0:
		v.loginDelay = defaultLoginDelay
	case c.LoginDelay > 0:
		v.loginDelay = c.LoginDelay
	}
	switch {
	case c.LoginMaxDelay < 0:
		return nil, fieldErr("LoginMaxDelay", "negative (%v)", c.LoginMaxDelay)
	case c.LoginMaxDelay == 0:
		v.loginMax = max(defaultLoginMaxDelay, v.loginDelay)
	case c.LoginMaxDelay < v.loginDelay:
		return nil, fieldErr("LoginMaxDelay", "%v is below LoginDelay (%v)", c.LoginMaxDelay, v.loginDelay)
	default:
		v.loginMax = c.LoginMaxDelay
	}
	v.authOrder = DefaultAuthOrder
	if len(c.AuthOrder) > 0 {
		list := make([]string, len(c.AuthOrder))
		for i, a := range c.AuthOrder {
			list[i] = string(a)
		}
		order, err := ParseAuthOrder(list)
		if err != nil {
			return nil, fieldErr("AuthOrder", "%v", err)
		}
		v.authOrder = order
	}
	for i, a := range c.Authenticators {
		if a == nil {
			return nil, fieldErr(fmt.Sprintf("Authenticators[%d]", i), "nil")
		}
	}
	if c.TLSRequired && c.TLS == nil {
		return nil, fieldErr("TLSRequired", "needs TLS (a certificate)")
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
		return nil, fieldErr("TLS", "has no certificate")
	}

	switch {
	case c.IdleTimeout < 0:
		return nil, fieldErr("IdleTimeout", "negative (%v)", c.IdleTimeout)
	case c.IdleTimeout == 0:
		v.idleSeconds = int(defaultIdleTimeout / time.Second)
	default:
		// ftpserverlib counts whole seconds; round up so that 1ms is not "off".
		v.idleSeconds = int((c.IdleTimeout + time.Second - 1) / time.Second)
	}

	return v, nil
}

// limitOrDefault maps a configured limit to its value: 0 = def, negative = none (0).
func limitOrDefault(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}

var errNoTLS = errors.New("TLS is not configured on this server")
