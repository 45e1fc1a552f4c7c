package ftpserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// stubAuth stands in for an auth plugin (the real ones run in agent/pluginhost's tests).
type stubAuth struct {
	mu   sync.Mutex
	seen []Login
	down bool
}

func (a *stubAuth) Authenticate(_ context.Context, l Login) (Identity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, l)
	switch {
	case a.down:
		return Identity{}, errors.New("plugin down")
	case l.User == "pl-rw" && l.Password == "pw":
		return Identity{Home: "/users/rw"}, nil
	case l.User == "pl-ro" && l.Password == "pw":
		return Identity{Home: "/users/ro", ReadOnly: true}, nil
	case l.User == "pl-nohome" && l.Password == "pw":
		return Identity{Home: "/missing"}, nil
	case l.User == testUser && l.Password == "plugin-pw":
		return Identity{}, nil
	case l.User == "pl-rw", l.User == "pl-ro", l.User == testUser:
		return Identity{}, errors.New("wrong password")
	}
	return Identity{}, ErrUnknownUser
}

func TestAuthenticators(t *testing.T) {
	a := &stubAuth{}
	ts := startServer(t, func(c *Config) {
		c.Authenticators = []Authenticator{a}
		c.LoginDelay = -1
	})
	for _, d := range []string{"users/rw", "users/ro"} {
		if err := os.MkdirAll(filepath.Join(ts.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		user, pass string
		want       int
	}{
		{"pl-rw", "pw", 230},
		{"pl-rw", "bad", 530},
		{"pl-nohome", "pw", 530},     // the home must exist
		{testUser, testPass, 230},    // the agent's own user first (default order)
		{testUser, "plugin-pw", 530}, // ... and it decides: the plugin is not asked
		{"nobody", "x", 530},
	}
	for _, c := range cases {
		f := dialRaw(t, ts)
		if got := f.login(c.user, c.pass); got != c.want {
			t.Errorf("login %s: %d, want %d", c.user, got, c.want)
		}
	}
	// Read-only plugin user: may list, may not store; the home is its "/".
	f := dialRaw(t, ts)
	if got := f.login("pl-ro", "pw"); got != 230 {
		t.Fatalf("pl-ro login: %d", got)
	}
	f.expect(257, "PWD")
	if code, _ := f.cmd("MKD x"); code != 550 {
		t.Errorf("read-only MKD: %d, want 550", code)
	}
	a.mu.Lock()
	for _, l := range a.seen {
		if l.User == testUser {
			t.Errorf("plugin asked for %s, a user the agent knows", testUser)
		}
		if !l.Remote.IsValid() || l.TLS {
			t.Errorf("login %+v: want a remote address, no TLS", l.User)
		}
	}
	a.down = true
	a.mu.Unlock()
	f = dialRaw(t, ts)
	if got := f.login("pl-rw", "pw"); got != 530 {
		t.Errorf("plugin down: login %d, want 530 (fail closed)", got)
	}
}

func TestAuthOrderPluginsFirst(t *testing.T) {
	a := &stubAuth{}
	ts := startServer(t, func(c *Config) {
		c.Authenticators = []Authenticator{a}
		c.AuthOrder = []AuthSource{AuthPlugins, AuthUsers}
		c.LoginDelay = -1
	})
	f := dialRaw(t, ts)
	if got := f.login(testUser, "plugin-pw"); got != 230 {
		t.Errorf("plugins first: %d, want 230", got)
	}
	f = dialRaw(t, ts)
	if got := f.login(testUser, testPass); got != 530 {
		t.Errorf("plugins first, plugin refuses: %d, want 530", got)
	}
	if _, err := grantLogin(ts); err == nil {
		t.Error("grants left out of AuthOrder, yet a grant logged in")
	}
	if _, err := ParseAuthOrder([]string{"users", "users"}); err == nil {
		t.Error("ParseAuthOrder accepted a source twice")
	}
	if _, err := ParseAuthOrder([]string{"ldap"}); err == nil {
		t.Error("ParseAuthOrder accepted an unknown source")
	}
}

// grantLogin authenticates with a fresh grant: an error when it is refused.
func grantLogin(ts *testServer) (bool, error) {
	u, p, err := ts.IssueCredential(Scope{Path: ".", Access: AccessRead, TTL: time.Minute})
	if err != nil {
		return false, err
	}
	pol, err := ts.authenticate(context.Background(), Login{User: u, Password: p})
	return pol.kind == policyScoped, err
}
