// Package storage is the agent's served root: one directory, opened once with Go's os.Root and
// shared by the transfer engine and the FTP server. Every name is root-relative and
// slash-separated; os.Root makes the kernel refuse any path (.., symlinks) that would leave the
// root. Files are handed out as File values whose dynamic type is *os.File, so io.Copy to and
// from sockets keeps the sendfile/splice fast paths.
//
// The package also owns the naming of part files (part.go): the engine writes under them and the
// FTP server lets a one-time grant write to them, so both must agree on one rule.
package storage

import (
	"io"
	"io/fs"
	"os"
	"time"
)

// File is an open file of a Storage. The local root always returns *os.File.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Seeker
	io.Closer
	Name() string
	Stat() (fs.FileInfo, error)
	Sync() error
	Truncate(size int64) error
}

// Root is a directory on the local disk. Safe for concurrent use.
type Root struct {
	dir string
	r   *os.Root
}

// Open opens dir as a root.
func Open(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Root{dir: dir, r: r}, nil
}

// Dir is the directory the root was opened at.
func (s *Root) Dir() string { return s.dir }

// Close releases the root.
func (s *Root) Close() error { return s.r.Close() }

// OpenFile opens name with os.OpenFile's flags.
func (s *Root) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := s.r.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open opens name for reading.
func (s *Root) Open(name string) (File, error) { return s.OpenFile(name, os.O_RDONLY, 0) }

// Stat describes name, following symlinks inside the root.
func (s *Root) Stat(name string) (fs.FileInfo, error) { return s.r.Stat(name) }

// Lstat describes name without following a final symlink.
func (s *Root) Lstat(name string) (fs.FileInfo, error) { return s.r.Lstat(name) }

// Rename renames oldname to newname, replacing a file at newname.
func (s *Root) Rename(oldname, newname string) error { return s.r.Rename(oldname, newname) }

// Remove removes a file or an empty directory.
func (s *Root) Remove(name string) error { return s.r.Remove(name) }

// RemoveAll removes name and everything below it.
func (s *Root) RemoveAll(name string) error { return s.r.RemoveAll(name) }

// Mkdir creates one directory.
func (s *Root) Mkdir(name string, perm fs.FileMode) error { return s.r.Mkdir(name, perm) }

// MkdirAll creates a directory and its missing parents.
func (s *Root) MkdirAll(name string, perm fs.FileMode) error { return s.r.MkdirAll(name, perm) }

// Chmod, Chown and Chtimes change a file's metadata.
func (s *Root) Chmod(name string, mode fs.FileMode) error { return s.r.Chmod(name, mode) }

// Chown changes the owner of name.
func (s *Root) Chown(name string, uid, gid int) error { return s.r.Chown(name, uid, gid) }

// Chtimes changes the access and modification times of name.
func (s *Root) Chtimes(name string, atime, mtime time.Time) error {
	return s.r.Chtimes(name, atime, mtime)
}

// FS is the root as an fs.FS (for fs.WalkDir and fs.ReadDir).
func (s *Root) FS() fs.FS { return s.r.FS() }
