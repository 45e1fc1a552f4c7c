package ftpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"time"

	"github.com/ferry-dev/ferry/agent/storage"
)

// Authenticator verifies FTP logins beside the server's own users and one-time grants: the
// agent's auth plugins (agent/pluginhost) stand behind it. It is called on the session's
// goroutine, after the login delay, with a context that ends when the connection closes; the
// implementation bounds its own time.
type Authenticator interface {
	// Authenticate returns where the user lives and what they may do, ErrUnknownUser when it
	// does not know the user (the next source is asked), or any other error to refuse the login
	// (a wrong password; a plugin that is down: logins fail closed). The error goes to the
	// server's log, never to the client; it must not contain the password.
	Authenticate(ctx context.Context, l Login) (Identity, error)
}

// Login is one login attempt as an Authenticator sees it.
type Login struct {
	User     string
	Password string
	Remote   netip.AddrPort // the control connection's client address
	TLS      bool           // the control connection was under TLS (AUTH TLS done)
}

// Identity is an accepted login: Home is a directory under the served root ("" or "/" for the
// whole root, "/users/alice"), which must exist; the user sees it as "/".
type Identity struct {
	Home     string
	ReadOnly bool
}

// ErrUnknownUser is a source's answer for a user it does not know.
var ErrUnknownUser = errors.New("unknown user")

// AuthSource names a source of logins for Config.AuthOrder.
type AuthSource string

// Login sources.
const (
	AuthGrants  AuthSource = "grants"  // one-time credentials (IssueCredential)
	AuthUsers   AuthSource = "users"   // Config.Users and Config.Accounts
	AuthPlugins AuthSource = "plugins" // Config.Authenticators, in their order
)

// DefaultAuthOrder is the order when Config.AuthOrder is empty.
var DefaultAuthOrder = []AuthSource{AuthGrants, AuthUsers, AuthPlugins}

// ParseAuthOrder checks an order (each source at most once; sources left out are not asked).
func ParseAuthOrder(list []string) ([]AuthSource, error) {
	seen := map[AuthSource]bool{}
	var out []AuthSource
	for _, s := range list {
		src := AuthSource(s)
		switch src {
		case AuthGrants, AuthUsers, AuthPlugins:
		default:
			return nil, fmt.Errorf("unknown source %q (want grants, users or plugins)", s)
		}
		if seen[src] {
			return nil, fmt.Errorf("source %q listed twice", s)
		}
		seen[src] = true
		out = append(out, src)
	}
	if len(out) == 0 {
		return nil, errors.New("empty (want a list of grants, users, plugins)")
	}
	return out, nil
}

// maxPluginHomes bounds the homes opened for logins of Authenticators (each an open
// directory, kept until Close).
const maxPluginHomes = 4096

// authenticateUntil authenticates a login with a context that ends when quit is closed (the
// control connection went away).
func (s *Server) authenticateUntil(quit <-chan struct{}, user, pass string, remote net.Addr, tls bool) (policy, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	l := Login{User: user, Password: pass, TLS: tls}
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		l.Remote = ap
	}
	return s.authenticate(ctx, l)
}

// authPlugins asks Config.Authenticators in order; the first that knows the user decides.
func (s *Server) authPlugins(ctx context.Context, l Login) (policy, error) {
	for i, a := range s.cfg.Authenticators {
		id, err := a.Authenticate(ctx, l)
		switch {
		case errors.Is(err, ErrUnknownUser):
			continue
		case err != nil:
			return policy{}, err
		}
		home, err := cleanHome(id.Home)
		if err != nil {
			return policy{}, fmt.Errorf("authenticator %d: home: %w", i, err)
		}
		if home != "." {
			if _, err := s.openHome(home); err != nil {
				return policy{}, fmt.Errorf("authenticator %d: home %q: %w", i, homeName(home), err)
			}
		}
		if id.ReadOnly {
			return policy{kind: policyReadOnly, home: home}, nil
		}
		return policy{kind: policyFull, home: home}, nil
	}
	return policy{}, ErrUnknownUser
}

// homeFs returns an opened home: an account's (opened in New) or one opened at a plugin login.
func (s *Server) homeFs(h string) *rootFs {
	if fs := s.homes[h]; fs != nil {
		return fs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pluginHomes[h]
}

// openHome opens a home named by an Authenticator, once, inside the served root.
func (s *Server) openHome(h string) (*rootFs, error) {
	if fs := s.homeFs(h); fs != nil {
		return fs, nil
	}
	r, err := s.fs.root.OpenRoot(h)
	if err != nil {
		return nil, unwrapPath(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fs := s.pluginHomes[h]; fs != nil {
		_ = r.Close()
		return fs, nil
	}
	if s.closed {
		_ = r.Close()
		return nil, errors.New("server closed")
	}
	if len(s.pluginHomes) >= maxPluginHomes {
		_ = r.Close()
		return nil, fmt.Errorf("more than %d distinct plugin homes in use", maxPluginHomes)
	}
	if s.pluginHomes == nil {
		s.pluginHomes = map[string]*rootFs{}
	}
	fs := &rootFs{root: r, owned: true}
	s.pluginHomes[h] = fs
	return fs, nil
}

// PublishGate is asked before an upload's part file is renamed to its final name
// (storage.IsPartOf: the way Ferry agents publish what they push to this server), so that
// hooks can veto a received file there as the engine's Gate does for downloads. e.Kind is
// EventRename, e.Path the part file and e.To the final name (root-relative, leading "/"). An
// error refuses the rename (550 with the error's text); the part file stays. Other uploads are
// written under the client's name as they arrive: they cannot be vetoed, only observed
// (EventWrite).
type PublishGate interface {
	BeforeFTPPublish(ctx context.Context, e Event) error
}

// publishCheck returns the check a session runs before renaming a part file to its final name,
// or nil without Config.PublishGate.
func (s *Server) publishCheck(remote net.Addr, local net.Addr, user, home string) func(from, to string) error {
	g := s.cfg.PublishGate
	if g == nil {
		return nil
	}
	e := Event{Kind: EventRename, User: user}
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		e.Remote = ap
	}
	s.mu.Lock()
	if c, ok := s.conns[connKey(remote, local)].(*controlConn); ok {
		c.mu.Lock()
		e.TLS = c.tls
		c.mu.Unlock()
	}
	s.mu.Unlock()
	return func(from, to string) error {
		if !storage.IsPartOf(to, from) {
			return nil
		}
		ev := e
		ev.Time, ev.Path, ev.To = time.Now(), path.Join("/", home, from), path.Join("/", home, to)
		return g.BeforeFTPPublish(context.Background(), ev)
	}
}
