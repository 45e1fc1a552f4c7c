package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode %v, want 0600", fi.Mode().Perm())
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[string]string{}
	if err := s.List(func(id string, rec []byte) error { got[id] = string(rec); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["a"] != "one" {
		t.Fatalf("after reopen: %v, want only a=one", got)
	}
	if _, err := s.Get("b"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Get(deleted) = %v, want ErrNotExist", err)
	}
}

func TestStoreLockedBySecondOpener(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(dir); err == nil {
		s2.Close()
		t.Fatal("a second Open of the same state directory succeeded")
	}
}
