package ftpserver

import (
	"fmt"
	"os"
	"path"
	"time"

	"github.com/spf13/afero"

	"github.com/ferry-dev/ferry/agent/storage"
)

// rootFs is an afero.Fs confined to one directory through os.Root. Names are
// FTP paths: absolute ("/in/big.bin") or relative to the root ("in/big.bin"),
// both meaning <root>/in/big.bin. Files are returned as *os.File (never
// wrapped) so that io.Copy to/from a TCP connection can use sendfile/splice.
// See the package documentation.
type rootFs struct {
	root  *storage.Root
	owned bool // opened by newRootFs: closed with the server
}

var (
	_ afero.Fs      = (*rootFs)(nil)
	_ afero.Lstater = (*rootFs)(nil)
)

func newRootFs(dir string) (*rootFs, error) {
	r, err := storage.Open(dir)
	if err != nil {
		return nil, err
	}
	return &rootFs{root: r, owned: true}, nil
}

// close releases the root if this server opened it (a shared one belongs to its owner).
func (f *rootFs) close() error {
	if !f.owned {
		return nil
	}
	return f.root.Close()
}

// relPath maps an FTP path to the cleaned root-relative name handed to
// os.Root: "/" and "" become ".", ".." cannot climb above the root
// ("/../etc" becomes "etc"). Symlinks are os.Root's business.
func relPath(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// ftpPath is the inverse of relPath, used in error messages.
func ftpPath(rel string) string {
	if rel == "." {
		return "/"
	}
	return "/" + rel
}

func denied(op, rel string) error {
	return &os.PathError{Op: op, Path: ftpPath(rel), Err: os.ErrPermission}
}

// file returns f as an afero.File. The local storage hands out *os.File, which is one, and
// returning it unwrapped keeps io.Copy's sendfile/splice paths.
func file(f storage.File, err error) (afero.File, error) {
	if err != nil {
		return nil, err
	}
	af, ok := f.(afero.File)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("storage returned a %T, not a file the FTP server can serve", f)
	}
	return af, nil
}

func (f *rootFs) Name() string { return "ferry-rootfs" }

func (f *rootFs) Create(name string) (afero.File, error) {
	return file(f.root.OpenFile(relPath(name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666))
}

func (f *rootFs) Open(name string) (afero.File, error) {
	return file(f.root.Open(relPath(name)))
}

func (f *rootFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	return file(f.root.OpenFile(relPath(name), flag, perm.Perm()))
}

func (f *rootFs) Mkdir(name string, perm os.FileMode) error {
	return f.root.Mkdir(relPath(name), perm.Perm())
}

func (f *rootFs) MkdirAll(name string, perm os.FileMode) error {
	return f.root.MkdirAll(relPath(name), perm.Perm())
}

func (f *rootFs) Remove(name string) error {
	rel := relPath(name)
	if rel == "." {
		return denied("remove", rel)
	}
	return f.root.Remove(rel)
}

func (f *rootFs) RemoveAll(name string) error {
	rel := relPath(name)
	if rel == "." {
		return denied("removeall", rel)
	}
	return f.root.RemoveAll(rel)
}

func (f *rootFs) Rename(oldname, newname string) error {
	o, n := relPath(oldname), relPath(newname)
	if o == "." || n == "." {
		return denied("rename", ".")
	}
	return f.root.Rename(o, n)
}

func (f *rootFs) Stat(name string) (os.FileInfo, error) {
	return f.root.Stat(relPath(name))
}

func (f *rootFs) LstatIfPossible(name string) (os.FileInfo, bool, error) {
	fi, err := f.root.Lstat(relPath(name))
	return fi, true, err
}

func (f *rootFs) Chmod(name string, mode os.FileMode) error {
	rel := relPath(name)
	if rel == "." {
		return denied("chmod", rel)
	}
	return f.root.Chmod(rel, mode)
}

func (f *rootFs) Chown(name string, uid, gid int) error {
	rel := relPath(name)
	if rel == "." {
		return denied("chown", rel)
	}
	return f.root.Chown(rel, uid, gid)
}

func (f *rootFs) Chtimes(name string, atime, mtime time.Time) error {
	return f.root.Chtimes(relPath(name), atime, mtime)
}
