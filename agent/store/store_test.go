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

// TestBucketApart: a bucket's records are not the transfer engine's (List of the store never
// sees them, and the other way round), and they survive a reopen.
func TestBucketApart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bucket("jobs"); err == nil {
		t.Error(`Bucket("jobs") should be refused: it is the engine's`)
	}
	b, err := s.Bucket("fleet")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("t1", []byte("transfer")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put("j/1", []byte("fleet job")); err != nil {
		t.Fatal(err)
	}
	count := func(list func(func(string, []byte) error) error) (ids []string) {
		if err := list(func(id string, _ []byte) error { ids = append(ids, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := count(s.List); len(got) != 1 || got[0] != "t1" {
		t.Errorf("store lists %v, want [t1]", got)
	}
	if got := count(b.List); len(got) != 1 || got[0] != "j/1" {
		t.Errorf("bucket lists %v, want [j/1]", got)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err = s.Bucket("fleet"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get("j/1"); err != nil || string(v) != "fleet job" {
		t.Errorf("after reopen: %q %v", v, err)
	}
	if err := b.Delete("j/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("j/1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted record: %v", err)
	}
}
