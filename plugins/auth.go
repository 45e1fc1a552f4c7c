package plugins

import (
	"context"
	"errors"
	"strings"
)

// Authenticator is the auth kind: it verifies an FTP login the agent's own users and one-time
// grants do not know. The agent calls it with a deadline (its --plugin-timeout); honour ctx.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (AuthResponse, error)
}

// AuthRequest is one login attempt. Never log Password.
type AuthRequest struct {
	User     string
	Password string
	Remote   string // the client's control-connection address, host:port
	TLS      bool   // the control connection is under TLS
}

// AuthResult is the verdict on a login.
type AuthResult int

const (
	// AuthUnknownUser: this plugin does not know the user; the agent asks its next source.
	AuthUnknownUser AuthResult = iota
	// AuthAllow: the login is accepted with AuthResponse.Home and ReadOnly.
	AuthAllow
	// AuthDeny: the user is known and the login refused.
	AuthDeny
)

func (r AuthResult) String() string {
	switch r {
	case AuthAllow:
		return "allow"
	case AuthDeny:
		return "deny"
	}
	return "unknown-user"
}

// AuthResponse is the verdict, and for an accepted login where the user lives.
type AuthResponse struct {
	Result AuthResult
	// Home is a directory under the served root ("/" or "" = the whole root, "/users/alice");
	// it must exist. The user sees it as "/".
	Home     string
	ReadOnly bool
	// Reason goes to the agent's log (never a password); clients always get the same answer.
	Reason string
}

// Allow, Deny and Unknown build responses.
func Allow(home string, readOnly bool) AuthResponse {
	return AuthResponse{Result: AuthAllow, Home: home, ReadOnly: readOnly}
}

// Deny refuses a known user, saying why in the agent's log.
func Deny(reason string) AuthResponse { return AuthResponse{Result: AuthDeny, Reason: reason} }

// Unknown says the plugin does not know the user.
func Unknown(reason string) AuthResponse {
	return AuthResponse{Result: AuthUnknownUser, Reason: reason}
}

// HomeFor fills a home template: {user} becomes the login name. A name that would climb or
// split the path ("..", "/", "\", NUL) is refused.
func HomeFor(template, user string) (string, error) {
	if !strings.Contains(template, "{user}") {
		return template, nil
	}
	if user == "" || user == "." || user == ".." || strings.ContainsAny(user, "/\\\x00") {
		return "", errors.New("user name not usable in a home directory")
	}
	return strings.ReplaceAll(template, "{user}", user), nil
}
