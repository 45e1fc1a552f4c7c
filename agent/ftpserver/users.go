package ftpserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Account is a configured FTP login whose password is checked against a bcrypt hash: the
// accounts of ferry-agent's --ftp-users-file (see ReadUsersFile).
//
// Home confines the user the way chroot would: the directory (root-relative, "" or "/" for the
// whole root) is opened as a root of its own, the user sees it as "/" and nothing above it,
// whatever the path or symlink. It must exist when the server starts.
type Account struct {
	Name     string
	Hash     string // bcrypt, as htpasswd -nbB writes it ($2y$) or Go does ($2a$)
	Home     string // root-relative directory the user is confined to; "" = the whole root
	ReadOnly bool   // read-only (ro) rather than read-write (rw)
	// Source is where the account was defined ("/etc/ferry/users:3"); validation errors name
	// it instead of the field. Optional.
	Source string
}

// ReadUsersFile reads accounts from a file of lines
//
//	name:bcrypt-hash[:home[:ro|rw]]
//
// The first two fields are what `htpasswd -nbB name password` prints. home defaults to "/" (the
// served root) and the right to rw. Blank lines and lines starting with # are ignored. Errors
// name the file and the line; they never quote a hash.
func ReadUsersFile(file string) ([]Account, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Account
	seen := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	n := 0
	for sc.Scan() {
		n++
		src := fmt.Sprintf("%s:%d", file, n)
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a, err := parseAccountLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		a.Source = src
		if err := checkAccount(a); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if prev, dup := seen[a.Name]; dup {
			return nil, fmt.Errorf("%s: user %q already defined at %s", src, a.Name, prev)
		}
		seen[a.Name] = src
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, n+1, err)
	}
	return out, nil
}

func parseAccountLine(line string) (Account, error) {
	fields := strings.Split(line, ":")
	if len(fields) < 2 || len(fields) > 4 {
		return Account{}, errors.New("want name:bcrypt-hash[:home[:ro|rw]]")
	}
	a := Account{Name: fields[0], Hash: fields[1]}
	if len(fields) > 2 {
		a.Home = fields[2]
	}
	if len(fields) > 3 {
		switch fields[3] {
		case "ro":
			a.ReadOnly = true
		case "rw", "":
		default:
			return Account{}, fmt.Errorf("right %q: want ro or rw", fields[3])
		}
	}
	return a, nil
}

// checkAccount validates one account, except that its home exists (see New).
func checkAccount(a Account) error {
	switch {
	case a.Name == "":
		return errors.New("name: empty")
	case strings.ContainsAny(a.Name, " \t\r\n\x00:"):
		return errors.New("name: contains whitespace, ':' or NUL")
	case isAnonymousName(a.Name):
		return fmt.Errorf("name: %q is reserved for anonymous access", a.Name)
	}
	if _, err := bcrypt.Cost([]byte(a.Hash)); err != nil {
		// Never quote the hash itself.
		return errors.New("hash: not a bcrypt hash (make one with: htpasswd -nbB NAME PASSWORD)")
	}
	if _, err := cleanHome(a.Home); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	return nil
}

// cleanHome turns an account's home ("", "/", "/data/alice", "data/alice/") into the cleaned
// root-relative form ("." for the root).
func cleanHome(h string) (string, error) {
	if strings.ContainsRune(h, 0) {
		return "", errors.New("contains NUL")
	}
	if strings.Contains(h, "\\") {
		return "", fmt.Errorf("%q contains a backslash; use /", h)
	}
	for _, part := range strings.Split(h, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q contains ..; want a directory under the served root", h)
		}
	}
	return relPath(h), nil
}

// account is a validated Account as the server keeps it.
type account struct {
	hash     []byte
	home     string // cleaned root-relative, "." = the root
	readOnly bool
}

func (a *account) policy() policy {
	if a.readOnly {
		return policy{kind: policyReadOnly, home: a.home}
	}
	return policy{kind: policyFull, home: a.home}
}

// accountSet verifies bcrypt passwords. bcrypt is slow by design (tens of milliseconds at cost
// 10), so a verification holds no lock: it runs on the session's own goroutine, and at most
// GOMAXPROCS run at once so that a login flood cannot take every CPU from transfers.
type accountSet struct {
	byName map[string]*account
	dummy  []byte        // hash checked for unknown names, so that they take as long
	sem    chan struct{} // bounds concurrent verifications
}

func newAccountSet(byName map[string]*account) (*accountSet, error) {
	as := &accountSet{byName: byName, sem: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	if len(byName) == 0 {
		return as, nil
	}
	cost := bcrypt.DefaultCost
	for _, a := range byName {
		if c, err := bcrypt.Cost(a.hash); err == nil && c > cost {
			cost = c
		}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(randomHex(16)), cost)
	if err != nil {
		return nil, err
	}
	as.dummy = h
	return as, nil
}

// verify checks pass for name. known reports whether name is an account at all.
func (as *accountSet) verify(name, pass string) (a *account, known, ok bool) {
	a, known = as.byName[name]
	if !known && as.dummy == nil {
		return nil, false, false
	}
	hash := as.dummy
	if known {
		hash = a.hash
	}
	as.sem <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-as.sem
	return a, known, known && err == nil
}

// homeName is how a home shows in logs.
func homeName(h string) string {
	if h == "." || h == "" {
		return "/"
	}
	return "/" + path.Clean(h)
}

// openHomes opens each account's home as a root of its own, inside the served root (so a home
// reached through a symlink that leaves the root is refused). where names the Source or field
// that named each home, for errors.
func openHomes(fs *rootFs, where map[string]string) (map[string]*rootFs, error) {
	homes := make(map[string]*rootFs, len(where))
	for h, src := range where {
		r, err := fs.root.OpenRoot(h)
		if err != nil {
			closeHomes(homes)
			return nil, fmt.Errorf("%s: home %q: %w", src, homeName(h), unwrapPath(err))
		}
		homes[h] = &rootFs{root: r, owned: true}
	}
	return homes, nil
}

func closeHomes(homes map[string]*rootFs) {
	for _, h := range homes {
		_ = h.close()
	}
}

// unwrapPath drops the host path from an *os.PathError (the home is already named).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
