package ftpserver

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"
)

func newTestRootFs(t *testing.T) (*rootFs, string) {
	t.Helper()
	dir := t.TempDir()
	fs, err := newRootFs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.close() })
	return fs, dir
}

// TestFsReturnsOSFile: downloads and uploads must see a bare *os.File so
// that io.Copy with a *net.TCPConn can use sendfile/splice.
func TestFsReturnsOSFile(t *testing.T) {
	rfs, dir := newTestRootFs(t)
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	sessions := map[string]afero.Fs{
		"rootFs":  rfs,
		"full":    &sessionFs{fs: rfs, pol: policy{kind: policyFull}},
		"anon":    &sessionFs{fs: rfs, pol: policy{kind: policyReadOnly}},
		"scopedR": &sessionFs{fs: rfs, pol: policy{kind: policyScoped, scope: Scope{Path: "f.bin", Access: AccessRead}}},
		"scopedW": &sessionFs{fs: rfs, pol: policy{kind: policyScoped, scope: Scope{Path: "g.bin", Access: AccessWrite}}},
	}
	for name, fs := range sessions {
		t.Run(name, func(t *testing.T) {
			if name != "scopedW" {
				f, err := fs.OpenFile("/f.bin", os.O_RDONLY, os.ModePerm)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := f.(*os.File); !ok {
					t.Fatalf("OpenFile read returned %T, want *os.File", f)
				}
				b, _ := io.ReadAll(f)
				f.Close()
				if string(b) != "hello" {
					t.Fatalf("read %q", b)
				}
			}
			if name == "anon" || name == "scopedR" {
				return
			}
			target := "/g.bin"
			if name != "scopedW" {
				target = "/" + name + ".bin"
			}
			f, err := fs.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.ModePerm)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.(*os.File); !ok {
				t.Fatalf("OpenFile write returned %T, want *os.File", f)
			}
			f.Close()
			fi, err := os.Stat(filepath.Join(dir, target))
			if err != nil {
				t.Fatal(err)
			}
			// Sessions ignore the client-side 0777 ftpserverlib passes.
			if name != "rootFs" && fi.Mode().Perm()&0o111 != 0 {
				t.Errorf("uploaded file is executable: %v", fi.Mode())
			}
		})
	}
}

func TestRootFsConfinement(t *testing.T) {
	rfs, dir := newTestRootFs(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+filepath.Base(outside)+"/secret", filepath.Join(dir, "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("in"), 0o644); err != nil {
		t.Fatal(err)
	}

	// ".." cannot climb out of the root: these resolve inside it.
	for _, name := range []string{"../in.txt", "/../../in.txt", "a/../../in.txt"} {
		if _, err := rfs.Stat(name); err != nil {
			t.Errorf("Stat(%q): %v (expected it to map to /in.txt)", name, err)
		}
	}
	// Symlinks leaving the root are refused by os.Root.
	for _, name := range []string{"out/secret", "rel", "out"} {
		if _, err := rfs.Open(name); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	if _, err := rfs.OpenFile("out/new", os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		t.Errorf("created a file through an escaping symlink")
	}
	if err := rfs.Mkdir("out/newdir", 0o755); err == nil {
		t.Errorf("created a directory through an escaping symlink")
	}
	if err := rfs.Rename("in.txt", "out/moved"); err == nil {
		t.Errorf("renamed a file out of the root")
	}
	if err := rfs.Remove("out/secret"); err == nil {
		t.Errorf("removed a file outside the root")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("outside file gone: %v", err)
	}
	// The root itself cannot be removed, renamed or chmod'ed.
	for name, err := range map[string]error{
		"Remove":    rfs.Remove("/"),
		"RemoveAll": rfs.RemoveAll("."),
		"Rename":    rfs.Rename("/", "x"),
		"Chmod":     rfs.Chmod("/", 0),
	} {
		if !errors.Is(err, os.ErrPermission) {
			t.Errorf("%s of the root: %v, want permission error", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "in.txt")); err != nil {
		t.Errorf("root content gone: %v", err)
	}
}

func TestSessionFsPolicy(t *testing.T) {
	rfs, dir := newTestRootFs(t)
	if err := os.MkdirAll(filepath.Join(dir, "in", "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &sessionFs{fs: rfs, pol: policy{kind: policyScoped, scope: Scope{Path: "a/b/c.bin", Access: AccessWrite}}}
	if err := w.MkdirAll("/a/b", 0o755); err != nil {
		t.Fatalf("MkdirAll of the parent chain: %v", err)
	}
	if err := w.Mkdir("/a/x", 0o755); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Mkdir outside: %v", err)
	}
	if _, err := w.Stat("/a"); err != nil {
		t.Fatalf("Stat of ancestor: %v", err)
	}
	if _, err := w.Open("/a"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Open (list) of ancestor: %v", err)
	}
	if err := w.Chtimes("/a/b", zeroTime, zeroTime); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Chtimes of ancestor: %v", err)
	}
	if _, _, err := w.LstatIfPossible("/in"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Lstat outside: %v", err)
	}
	if err := w.RemoveAll("/in"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("RemoveAll outside: %v", err)
	}
	if err := w.Chown("/in", 0, 0); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Chown outside: %v", err)
	}
	f, err := w.Create("/a/b/.c.bin.0123abcd.ferry-part")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := w.RemoveDir("/a/b/.c.bin.0123abcd.ferry-part"); err == nil {
		t.Fatal("RemoveDir removed a file")
	}
	if err := w.Rename("/a/b/.c.bin.0123abcd.ferry-part", "/a/b/c.bin"); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove("/a/b/c.bin"); err != nil {
		t.Fatal(err)
	}
	ro := &sessionFs{fs: rfs, pol: policy{kind: policyReadOnly}}
	if _, err := ro.Create("/x"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("anonymous Create: %v", err)
	}
	if _, err := ro.OpenFile("/in/y", os.O_RDWR, 0); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("anonymous O_RDWR: %v", err)
	}
	if err := ro.RemoveDir("/in/tree"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("anonymous RemoveDir: %v", err)
	}
}
