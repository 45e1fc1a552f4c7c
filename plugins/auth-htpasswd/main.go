// Command auth-htpasswd is a Ferry auth plugin: FTP logins checked against an htpasswd file of
// bcrypt hashes (as `htpasswd -B` writes them), reloaded when the file changes.
//
//	ferry-agent --root /srv/ferry --plugin '/usr/lib/ferry/auth-htpasswd -file /etc/ferry/ftp.htpasswd -home /users/{user}'
//
// Users not in the file are "unknown" (the agent asks its next source); they cost one bcrypt
// check all the same, so that a name's existence does not show in the timing.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/plugins"
)

func main() {
	fs := flag.NewFlagSet("auth-htpasswd", flag.ExitOnError)
	file := fs.String("file", "", "htpasswd file: NAME:BCRYPT-HASH lines (htpasswd -B); required")
	home := fs.String("home", "/", "home of every user under the served root; {user} is replaced by the login name")
	readOnly := fs.Bool("read-only", false, "every user is read-only")
	_ = fs.Parse(os.Args[1:])
	if *file == "" {
		fmt.Fprintln(os.Stderr, "auth-htpasswd: -file: required")
		os.Exit(2)
	}
	a := &htpasswd{file: *file, home: *home, readOnly: *readOnly}
	if err := a.reload(); err != nil {
		fmt.Fprintln(os.Stderr, "auth-htpasswd:", err)
		os.Exit(2)
	}
	plugins.Serve(plugins.Impl{Name: "auth-htpasswd", Version: "1", Auth: a})
}

type htpasswd struct {
	file     string
	home     string
	readOnly bool

	mu    sync.Mutex
	users map[string][]byte
	mtime time.Time
	size  int64
	dummy []byte
}

// reload reads the file when its modification time or size changed since the last read.
func (a *htpasswd) reload() error {
	fi, err := os.Stat(a.file)
	if err != nil {
		return err
	}
	a.mu.Lock()
	same := a.users != nil && fi.ModTime().Equal(a.mtime) && fi.Size() == a.size
	a.mu.Unlock()
	if same {
		return nil
	}
	users, err := read(a.file)
	if err != nil {
		return err
	}
	dummy, _ := bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)
	a.mu.Lock()
	a.users, a.mtime, a.size, a.dummy = users, fi.ModTime(), fi.Size(), dummy
	a.mu.Unlock()
	return nil
}

func read(file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s:%d: want NAME:HASH", file, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: not a bcrypt hash (htpasswd -B writes them)", file, n) // never quote it
		}
		users[name] = []byte(hash)
	}
	return users, sc.Err()
}

func (a *htpasswd) Authenticate(_ context.Context, r plugins.AuthRequest) (plugins.AuthResponse, error) {
	if err := a.reload(); err != nil {
		// Keep serving the last good version; the agent's log says why.
		fmt.Fprintln(os.Stderr, "auth-htpasswd: reload:", err)
	}
	a.mu.Lock()
	hash, known := a.users[r.User]
	dummy := a.dummy
	a.mu.Unlock()
	if !known {
		_ = bcrypt.CompareHashAndPassword(dummy, []byte(r.Password)) // same time as a known user
		return plugins.Unknown("not in " + a.file), nil
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(r.Password))
	switch {
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return plugins.Deny("wrong password"), nil
	case err != nil:
		return plugins.Deny("bad hash"), nil
	}
	home, err := plugins.HomeFor(a.home, r.User)
	if err != nil {
		return plugins.Deny(err.Error()), nil
	}
	return plugins.Allow(home, a.readOnly), nil
}
