package ftpserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// credential is a login issued to a peer agent, valid for sc.Logins successful logins.
type credential struct {
	pass    [32]byte // SHA-256 of the password
	scope   Scope    // Path cleaned
	expires time.Time
	left    int // successful logins still allowed
}

// MaxLogins bounds Scope.Logins.
const MaxLogins = 16

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// passwordOK compares SHA-256 digests in constant time (the digest also hides
// the password length).
func passwordOK(want [32]byte, given string) bool {
	got := digest(given)
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (Go >= 1.24 crashes instead)
	return hex.EncodeToString(b)
}

// IssueCredential creates a one-time account limited to sc: user
// "ferry-<16 hex>" and a password of 32 random bytes (64 hex characters).
// It is valid for sc.Logins successful logins (default one), which must happen within
// sc.TTL (default 5 minutes). It fails if sc.Path is empty, absolute or
// escapes the root, if sc.Access is unknown, or if TTL is negative.
func (s *Server) IssueCredential(sc Scope) (user, password string, err error) {
	p, err := cleanScopePath(sc.Path)
	if err != nil {
		return "", "", fmt.Errorf("ftpserver: Scope.Path: %w", err)
	}
	if sc.Access != AccessRead && sc.Access != AccessWrite {
		return "", "", fmt.Errorf("ftpserver: Scope.Access: invalid value %d", int(sc.Access))
	}
	switch {
	case sc.TTL < 0:
		return "", "", fmt.Errorf("ftpserver: Scope.TTL: negative (%v)", sc.TTL)
	case sc.TTL == 0:
		sc.TTL = defaultCredentialTTL
	}
	switch {
	case sc.Logins < 0 || sc.Logins > MaxLogins:
		return "", "", fmt.Errorf("ftpserver: Scope.Logins: %d; want 0 to %d", sc.Logins, MaxLogins)
	case sc.Logins == 0:
		sc.Logins = 1
	}
	sc.Path = p

	password = randomHex(32)
	now := time.Now()
	c := &credential{pass: digest(password), scope: sc, expires: now.Add(sc.TTL), left: sc.Logins}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", "", errors.New("ftpserver: server closed")
	}
	for name, old := range s.creds { // drop expired ones
		if now.After(old.expires) {
			delete(s.creds, name)
		}
	}
	for {
		user = "ferry-" + randomHex(8)
		if _, taken := s.creds[user]; !taken {
			break
		}
	}
	s.creds[user] = c
	s.log.Info("ftp credential issued", "user", user, "access", sc.Access.String(), "path", sc.Path, "ttl", sc.TTL.String(), "logins", sc.Logins)
	return user, password, nil
}

// authenticate returns the session policy for a login, or why the login is refused (for the
// log only; clients get a uniform answer). The sources are asked in Config.AuthOrder; the first
// that knows the user decides. A credential is consumed by its first successful login.
func (s *Server) authenticate(ctx context.Context, l Login) (policy, error) {
	if isAnonymousName(l.User) {
		if !s.cfg.AnonymousRead {
			return policy{}, errors.New("anonymous access disabled")
		}
		return policy{kind: policyReadOnly}, nil
	}
	for _, src := range s.v.authOrder {
		var pol policy
		var err error
		switch src {
		case AuthGrants:
			pol, err = s.authGrant(l.User, l.Password)
		case AuthUsers:
			pol, err = s.authUsers(l.User, l.Password)
		case AuthPlugins:
			pol, err = s.authPlugins(ctx, l)
		}
		if !errors.Is(err, ErrUnknownUser) {
			return pol, err
		}
	}
	return policy{}, ErrUnknownUser
}

// authGrant checks the one-time credentials (IssueCredential).
func (s *Server) authGrant(user, pass string) (policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[user]
	if !ok {
		return policy{}, ErrUnknownUser
	}
	switch {
	case time.Now().After(c.expires):
		delete(s.creds, user)
		return policy{}, errors.New("credential expired")
	case !passwordOK(c.pass, pass):
		return policy{}, errors.New("wrong password")
	}
	if c.left--; c.left <= 0 {
		delete(s.creds, user)
	}
	return policy{kind: policyScoped, scope: c.scope}, nil
}

// authUsers checks the configured users (Config.Users and Config.Accounts).
func (s *Server) authUsers(user, pass string) (policy, error) {
	if want, known := s.v.users[user]; known {
		if !passwordOK(want, pass) {
			return policy{}, errors.New("wrong password")
		}
		return policy{kind: policyFull}, nil
	}
	// Accounts (bcrypt): unknown names are checked against a dummy hash, so that they take as
	// long as known ones.
	a, known, ok := s.accounts.verify(user, pass)
	if !known {
		passwordOK(digest("\x00unknown user"), pass) // same work as for a static user
		return policy{}, ErrUnknownUser
	}
	if !ok {
		return policy{}, errors.New("wrong password")
	}
	return a.policy(), nil
}
