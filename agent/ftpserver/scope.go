package ftpserver

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	ftplib "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"

	"github.com/ferry-dev/ferry/agent/storage"
)

// Access is the right granted by a one-time credential.
type Access int

// Access levels.
const (
	AccessRead Access = iota + 1
	AccessWrite
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	default:
		return fmt.Sprintf("Access(%d)", int(a))
	}
}

// Scope limits what a one-time credential may touch.
//
// Path is root-relative and cleaned: a file ("in/big.bin") or a directory
// ("in/tree"); "." is the whole root. A read scope may stat, list, retrieve
// and hash Path and anything under it. A write scope may also store, create
// directories, rename and delete there, and on the temporary sibling
// part files of Path (storage.PartName) used for uploads. Whatever the access, the ancestors of Path
// may be stat'ed (so clients can CWD into them, but not list them) and, with
// AccessWrite, created with MKD (so "in/sub/big.bin" can be uploaded when
// "in/sub" does not exist yet).
//
// TTL bounds the time between IssueCredential and the one login the
// credential allows (0 = 5 minutes); an established session is not cut.
type Scope struct {
	Path   string
	Access Access
	TTL    time.Duration
	// Logins is how many successful logins the credential allows (the parallel streams of one
	// transfer): 0 means 1, at most MaxLogins. The one after the last is refused.
	Logins int
}

// cleanScopePath validates and cleans a Scope.Path.
func cleanScopePath(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New(`empty path (use "." for the whole root)`)
	case strings.ContainsRune(p, 0):
		return "", errors.New("path contains NUL")
	case path.IsAbs(p):
		return "", fmt.Errorf("%q is absolute; want a path relative to the served root", p)
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q escapes the served root", p)
	}
	return c, nil
}

// within reports whether rel is s or below it (both cleaned root-relative).
func within(rel, s string) bool {
	return s == "." || rel == s || strings.HasPrefix(rel, s+"/")
}

// isAncestor reports whether rel is a strict ancestor directory of s.
func isAncestor(rel, s string) bool {
	if rel == s || s == "." {
		return false
	}
	return rel == "." || strings.HasPrefix(s, rel+"/")
}

// InScope reports whether a session holding sc may read (write=false: stat,
// list, retrieve, hash) or modify (write=true: store, mkdir, rename, delete,
// set times) the FTP path p ("/in/big.bin" or "in/big.bin"; ".." cannot climb
// above the root). Reads are allowed on sc.Path and below; writes need
// AccessWrite and are allowed on sc.Path, below it and on its part files (storage.IsPartOf),
// which a write scope may also read (to resume an upload). The ancestor
// exceptions described on Scope (stat for CWD, MKD of the parent chain) are
// not "read"/"write" of data and are not reported here. An invalid scope
// (bad Path or Access) allows nothing.
func InScope(sc Scope, p string, write bool) bool {
	s, err := cleanScopePath(sc.Path)
	if err != nil {
		return false
	}
	switch sc.Access {
	case AccessRead:
		if write {
			return false
		}
	case AccessWrite:
	default:
		return false
	}
	rel := relPath(p)
	if within(rel, s) {
		return true
	}
	return sc.Access == AccessWrite && s != "." && storage.IsPartOf(s, rel)
}

// fsOp classifies afero calls for permission checks.
type fsOp int

const (
	opStat  fsOp = iota // Stat, Lstat
	opRead              // Open, OpenFile read-only (RETR, LIST, MLSD, HASH)
	opWrite             // create, truncate, append, remove, rename, chmod, chtimes
	opMkdir             // Mkdir, MkdirAll
)

type policyKind int

const (
	policyFull     policyKind = iota + 1 // static user
	policyReadOnly                       // anonymous
	policyScoped                         // one-time credential
)

type policy struct {
	kind  policyKind
	scope Scope  // policyScoped only; Path already cleaned
	home  string // accounts (Config.Accounts) only: cleaned root-relative home, "" or "." = the root
}

func (p policy) String() string {
	home := ""
	if p.home != "" && p.home != "." {
		home = " home=" + homeName(p.home)
	}
	switch p.kind {
	case policyFull:
		return "full" + home
	case policyReadOnly:
		return "read-only" + home
	case policyScoped:
		return fmt.Sprintf("%s:%s", p.scope.Access, p.scope.Path)
	default:
		return "none"
	}
}

func (p policy) allows(op fsOp, rel string) bool {
	switch p.kind {
	case policyFull:
		return true
	case policyReadOnly:
		return op == opStat || op == opRead
	case policyScoped:
		sc := p.scope
		switch op {
		case opStat:
			return InScope(sc, rel, false) || isAncestor(rel, sc.Path)
		case opRead:
			return InScope(sc, rel, false)
		case opWrite:
			return InScope(sc, rel, true)
		case opMkdir:
			return InScope(sc, rel, true) || (sc.Access == AccessWrite && isAncestor(rel, sc.Path))
		}
	}
	return false
}

// sessionFs is the ClientDriver of one logged-in session: it checks every
// call against the session's policy and delegates to the shared rootFs,
// returning the *os.File unchanged.
type sessionFs struct {
	fs  *rootFs
	pol policy
	// cwd returns the session's working directory. ftpserverlib resolves
	// names before calling the driver, except for HASH's initial Stat, which
	// passes the raw argument; relative names are resolved here so that
	// "CWD /in" + "HASH big.bin" works. nil: relative to the root.
	cwd func() string
	// lastCmd returns the command being served (ClientContext's
	// GetLastCommand), so that MDTM can refuse directories. nil: unknown.
	lastCmd func() string
	// sess receives the session's file events (session.go); nil: none.
	sess *session
	// data is the server's data-transfer side (datafile.go); nil: plain files, no cached hashes.
	data *dataSide
	// ctl is the session's control connection: a pending tree stream (tree.go). nil: none.
	ctl *controlConn
	// publish, when set, may veto renaming an upload's part file to its final name (auth.go).
	publish func(from, to string) error
}

var (
	_ ftplib.ClientDriver                   = (*sessionFs)(nil)
	_ ftplib.ClientDriverExtensionRemoveDir = (*sessionFs)(nil)
	_ afero.Lstater                         = (*sessionFs)(nil)
)

const (
	uploadFileMode = 0o666 // before umask; clients do not choose modes
	uploadDirMode  = 0o777
)

func (s *sessionFs) check(op fsOp, opName, name string) (string, error) {
	if s.cwd != nil && !path.IsAbs(name) {
		name = path.Join(s.cwd(), name)
	}
	rel := relPath(name)
	if !s.pol.allows(op, rel) {
		return rel, denied(opName, rel)
	}
	return rel, nil
}

func isWriteFlag(flag int) bool {
	return flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0
}

func (s *sessionFs) Name() string { return "ferry-session" }

func (s *sessionFs) Create(name string) (afero.File, error) {
	return s.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, uploadFileMode)
}

func (s *sessionFs) Open(name string) (afero.File, error) {
	return s.OpenFile(name, os.O_RDONLY, 0)
}

func (s *sessionFs) OpenFile(name string, flag int, _ os.FileMode) (afero.File, error) {
	op := opRead
	if isWriteFlag(flag) {
		op = opWrite
	}
	if t, ok, err := s.openTree(name); ok {
		return t, err
	}
	rel, err := s.check(op, "open", name)
	if err != nil {
		return nil, err
	}
	f, err := s.fs.OpenFile(rel, flag, uploadFileMode)
	if err != nil {
		return nil, err
	}
	return s.transferFile(f, rel, op == opWrite), nil
}

func (s *sessionFs) Mkdir(name string, _ os.FileMode) error {
	rel, err := s.check(opMkdir, "mkdir", name)
	if err != nil {
		return err
	}
	return s.done(EventMkdir, rel, "", s.fs.Mkdir(rel, uploadDirMode))
}

func (s *sessionFs) MkdirAll(name string, _ os.FileMode) error {
	rel, err := s.check(opMkdir, "mkdir", name)
	if err != nil {
		return err
	}
	return s.fs.MkdirAll(rel, uploadDirMode)
}

// Remove serves DELE (RMD goes to RemoveDir): files only, as RFC 959 has
// it; a directory is refused (550).
func (s *sessionFs) Remove(name string) error {
	rel, err := s.check(opWrite, "remove", name)
	if err != nil {
		return err
	}
	fi, _, err := s.fs.LstatIfPossible(rel)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &os.PathError{Op: "remove", Path: ftpPath(rel), Err: errors.New("is a directory (use RMD)")}
	}
	return s.done(EventDelete, rel, "", s.fs.Remove(rel))
}

// RemoveDir serves RMD (ftpserverlib's ClientDriverExtensionRemoveDir).
func (s *sessionFs) RemoveDir(name string) error {
	rel, err := s.check(opWrite, "rmdir", name)
	if err != nil {
		return err
	}
	fi, _, err := s.fs.LstatIfPossible(rel)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "rmdir", Path: ftpPath(rel), Err: errors.New("not a directory")}
	}
	return s.done(EventRmdir, rel, "", s.fs.Remove(rel))
}

func (s *sessionFs) RemoveAll(name string) error {
	rel, err := s.check(opWrite, "removeall", name)
	if err != nil {
		return err
	}
	return s.fs.RemoveAll(rel)
}

func (s *sessionFs) Rename(oldname, newname string) error {
	o, err := s.check(opWrite, "rename", oldname)
	if err != nil {
		return err
	}
	n, err := s.check(opWrite, "rename", newname)
	if err != nil {
		return err
	}
	if s.publish != nil {
		if err := s.publish(o, n); err != nil {
			return err
		}
	}
	return s.done(EventRename, o, n, s.fs.Rename(o, n))
}

func (s *sessionFs) Stat(name string) (os.FileInfo, error) {
	rel, err := s.check(opStat, "stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := s.fs.Stat(rel)
	if err == nil && fi.IsDir() && s.lastCmd != nil && s.lastCmd() == "MDTM" {
		// RFC 3659 section 3.1: MDTM is for files; ftpserverlib's MDTM
		// answers with the Stat of whatever the name is.
		return nil, &os.PathError{Op: "mdtm", Path: ftpPath(rel), Err: errors.New("not a plain file")}
	}
	return fi, err
}

func (s *sessionFs) LstatIfPossible(name string) (os.FileInfo, bool, error) {
	rel, err := s.check(opStat, "lstat", name)
	if err != nil {
		return nil, true, err
	}
	return s.fs.LstatIfPossible(rel)
}

func (s *sessionFs) Chmod(name string, mode os.FileMode) error {
	rel, err := s.check(opWrite, "chmod", name)
	if err != nil {
		return err
	}
	return s.fs.Chmod(rel, mode)
}

func (s *sessionFs) Chown(name string, uid, gid int) error {
	rel, err := s.check(opWrite, "chown", name)
	if err != nil {
		return err
	}
	return s.fs.Chown(rel, uid, gid)
}

func (s *sessionFs) Chtimes(name string, atime, mtime time.Time) error {
	rel, err := s.check(opWrite, "chtimes", name)
	if err != nil {
		return err
	}
	return s.fs.Chtimes(rel, atime, mtime)
}
