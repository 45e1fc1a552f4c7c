// Package security authenticates and authorizes callers of the agent's gRPC API: bearer tokens
// from a token file (`ROLE TOKEN` lines) or client certificates (mutual TLS) map to one of three
// roles, and interceptors check every RPC against the role's allowed methods. It also builds
// the TLS credentials of the API and of calls to peer agents.
//
// Written here rather than taken from a library: grpc-go ships the interceptor hooks and TLS
// credentials used below, and what remains — a token file format, a role table and the
// "watch only what you started" rule for peers — is Ferry's own policy, a few hundred lines.
package security

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Role is what a caller may do.
type Role int

const (
	// RoleNone: no valid credential.
	RoleNone Role = iota
	// RoleViewer may call the read-only RPCs.
	RoleViewer
	// RolePeer may call what agents call on each other: GetAgentInfo, GrantAccess,
	// ReverseTransfer, and watch, get or cancel the transfers it started.
	RolePeer
	// RoleAdmin may call every RPC.
	RoleAdmin
	// RoleFleet is what a fleet coordinator presents (its peer token): all a peer may, plus
	// StartTransfer of an agent:// source into this agent's root (a fleet delivery) and the
	// transfers it started. See docs/fleet.md.
	RoleFleet
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RolePeer:
		return "peer"
	case RoleAdmin:
		return "admin"
	case RoleFleet:
		return "fleet"
	}
	return "none"
}

// ParseRole reads "admin", "peer" or "viewer".
func ParseRole(s string) (Role, error) {
	switch s {
	case "admin":
		return RoleAdmin, nil
	case "peer":
		return RolePeer, nil
	case "viewer":
		return RoleViewer, nil
	case "fleet":
		return RoleFleet, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want admin, peer, viewer or fleet)", s)
}

// MinTokenLen is the shortest token accepted: 16 characters (a token is a password).
const MinTokenLen = 16

// Token is one accepted bearer token.
type Token struct {
	Role  Role
	Value string
}

// Tokens is a set of accepted tokens, looked up by their SHA-256 (so the comparison does not
// leak a token's prefix through timing).
type Tokens struct {
	m map[[32]byte]Token
}

// NewTokens builds the set; tokens shorter than MinTokenLen are refused.
func NewTokens(list []Token) (*Tokens, error) {
	t := &Tokens{m: make(map[[32]byte]Token, len(list))}
	for i, tok := range list {
		if len(tok.Value) < MinTokenLen {
			return nil, fmt.Errorf("token %d: shorter than %d characters", i+1, MinTokenLen)
		}
		if tok.Role == RoleNone {
			return nil, fmt.Errorf("token %d: no role", i+1)
		}
		t.m[sha256.Sum256([]byte(tok.Value))] = tok
	}
	return t, nil
}

// Lookup returns the role of a presented token and a stable, non-secret identity for it.
func (t *Tokens) Lookup(value string) (Role, string) {
	if t == nil {
		return RoleNone, ""
	}
	sum := sha256.Sum256([]byte(value))
	tok, ok := t.m[sum]
	if !ok {
		return RoleNone, ""
	}
	return tok.Role, "token:" + hex.EncodeToString(sum[:4])
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.m) }

// LoadTokenFile reads an agent's token file: one `ROLE TOKEN` per line, `#` comments and blank
// lines allowed. Errors name the file and line, never the token.
func LoadTokenFile(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %v lets other users read the tokens; chmod 600 it", path, fi.Mode().Perm())
	}
	var out []Token
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"ROLE TOKEN\"", path, n)
		}
		role, err := ParseRole(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if len(fields[1]) < MinTokenLen {
			return nil, fmt.Errorf("%s:%d: token shorter than %d characters", path, n, MinTokenLen)
		}
		out = append(out, Token{Role: role, Value: fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return out, nil
}

// ReadClientToken reads the token a client presents from a file: the first line that is not a
// comment, either the bare token or `ROLE TOKEN` (so an agent's token file line, or the
// admin.token an agent creates, both work).
func ReadClientToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		return fields[len(fields)-1], nil
	}
	return "", fmt.Errorf("%s: no token", path)
}

// NewTokenValue is a new random token: 256 bits in hex.
func NewTokenValue() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// AdminTokenFile is the name of the admin token an agent creates in its state directory.
const AdminTokenFile = "admin.token"

// EnsureAdminToken returns the admin token kept in dir/admin.token, creating it (mode 0600,
// 256 random bits) on first use; created tells whether it was made now.
func EnsureAdminToken(dir string) (token, path string, created bool, err error) {
	path = filepath.Join(dir, AdminTokenFile)
	if tok, err := ReadClientToken(path); err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", path, false, fmt.Errorf("%s: mode %v lets other users read the admin token; chmod 600 it", path, fi.Mode().Perm())
		}
		return tok, path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, err
	}
	if token, err = NewTokenValue(); err != nil {
		return "", path, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", path, false, err
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, false, err
	}
	return token, path, true, f.Close()
}
