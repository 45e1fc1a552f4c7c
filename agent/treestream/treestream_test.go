package treestream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/agent/storage"
)

func root(t *testing.T) *storage.Root {
	t.Helper()
	r, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func opts() Options {
	return Options{PartName: func(final string) string { return storage.PartName(final, "test") }}
}

// TestRoundTrip: a tree with odd names, empty files and directories, and more files than a
// batch, arrives intact with its modes; a listing lists it.
func TestRoundTrip(t *testing.T) {
	defer func(n int) { batchFiles = n }(batchFiles)
	batchFiles = 8
	src, dst := root(t), root(t)
	files := map[string]string{"empty": "", "a/b/c.txt": "c", "line\nbreak": "x", "sp ace/ü.bin": "ü", "exec": "#!"}
	for i := range batchFiles + 3 {
		files[fmt.Sprintf("many/%04d", i)] = fmt.Sprint(i)
	}
	for rel, body := range files {
		p := filepath.Join(src.Dir(), "t", rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(src.Dir(), "t/exec"), 0o755)
	os.MkdirAll(filepath.Join(src.Dir(), "t/emptydir"), 0o755)
	entries, err := Walk(src, "t")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Send(&buf, src, "t", entries, nil); err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.Sync = SyncDir(dst.Dir())
	res, err := Receive(&buf, dst, "in", o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != int64(len(files)) {
		t.Errorf("published %d files, want %d", res.Files, len(files))
	}
	for rel, body := range files {
		got, err := os.ReadFile(filepath.Join(dst.Dir(), "in", rel))
		if err != nil || string(got) != body {
			t.Errorf("%q: %q, %v; want %q", rel, got, err, body)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst.Dir(), "in/exec")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("exec lost its mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dst.Dir(), "in/emptydir")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory: %v", err)
	}
	var list bytes.Buffer
	if err := SendList(&list, entries); err != nil {
		t.Fatal(err)
	}
	got, err := ReadList(&list)
	if err != nil || len(got) != len(entries) {
		t.Fatalf("listing: %d entries, %v; want %d", len(got), err, len(entries))
	}
}

// TestRefused: hostile or broken streams fail, and leave no file, published or part.
func TestRefused(t *testing.T) {
	digest := "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" // sha256("foo")
	rec := func(path, sum string) string {
		return fmt.Sprintf("F 3 644 0 %q\nfoo%s\n", path, sum)
	}
	for _, tc := range []struct{ name, stream, want string }{
		{"dotdot", magic + " 1 3\n" + rec("../x", digest) + "E 1 3\n", "escapes"},
		{"absolute", magic + " 1 3\n" + rec("/x", digest) + "E 1 3\n", "refused"},
		{"inner dotdot", magic + " 1 3\n" + rec("a/../../x", digest) + "E 1 3\n", "escapes"},
		{"part name", magic + " 1 3\n" + rec(".x.ferry-part", digest) + "E 1 3\n", "refused"},
		{"bad digest", magic + " 1 3\n" + rec("x", strings.Repeat("0", 64)) + "E 1 3\n", "mismatch"},
		{"truncated", magic + " 1 3\n" + rec("x", digest), "ends early"},
		{"short body", magic + " 1 3\nF 3 644 0 \"x\"\nfo", "ends"},
		{"end mismatch", magic + " 1 3\n" + rec("x", digest) + "E 2 3\n", "does not match"},
		{"too big", magic + " 1 3\nF 99999999999999 644 0 \"x\"\n", "at most"},
		{"long header", magic + " 1 3\nF 3 644 0 \"" + strings.Repeat("a", MaxHeader) + "\"\n", "longer than"},
		{"not a stream", "hello\n", "not a tree stream"},
		{"dir escape", magic + " 0 0\nD 755 \"../d\"\nE 0 0\n", "escapes"},
		// A receiver that never listed the tree trusts the header: it must be the stream's.
		{"fewer than announced", magic + " 2 6\n" + rec("x", digest) + "E 1 3\n", "announced"},
		{"more than announced", magic + " 1 3\n" + rec("x", digest) + rec("y", digest) + "E 2 6\n", "announced"},
		{"trailing data", magic + " 1 3\n" + rec("x", digest) + "E 1 3\nmore", "after the end record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := root(t)
			o := opts()
			o.MaxFileSize = 1 << 30
			o.Allow = func(final string) bool { return final == "in" || strings.HasPrefix(final, "in/") }
			_, err := Receive(strings.NewReader(tc.stream), dst, "in", o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error saying %q", err, tc.want)
			}
			filepath.WalkDir(dst.Dir(), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					t.Errorf("left behind: %s", p)
				}
				return nil
			})
		})
	}
	if _, err := Receive(strings.NewReader(magic+" 1 3\n"+rec("x", digest)), root(t), "in", opts()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated stream: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestEveryCutRefused: a stream cut anywhere before its end record is refused, and no file
// takes its final name, however many were complete when the stream stopped.
func TestEveryCutRefused(t *testing.T) {
	src := root(t)
	for i := range 4 {
		p := filepath.Join(src.Dir(), "t", fmt.Sprintf("d%d/f%d", i%2, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 100*i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := Walk(src, "t")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Send(&buf, src, "t", entries, nil); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	dst := root(t)
	for cut := 0; cut < len(full); cut += 7 {
		in := fmt.Sprintf("in%d", cut)
		if _, err := Receive(bytes.NewReader(full[:cut]), dst, in, opts()); err == nil {
			t.Fatalf("stream cut at byte %d of %d: accepted", cut, len(full))
		}
		filepath.WalkDir(filepath.Join(dst.Dir(), in), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("cut at %d: left %s", cut, p)
			}
			return nil
		})
	}
	if res, err := Receive(bytes.NewReader(full), dst, "whole", opts()); err != nil || res.Files != 4 {
		t.Fatalf("whole stream: %d files, %v", res.Files, err)
	}
}

// TestSelection: a selection round-trips names of any bytes; Select keeps every directory and
// the selected files; a cut or overlong line is refused.
func TestSelection(t *testing.T) {
	rels := []string{"a", "sub/b c", "line\nbreak", "ü/名"}
	var buf bytes.Buffer
	if err := SendSelection(&buf, rels); err != nil {
		t.Fatal(err)
	}
	sel, err := ReadSelection(&buf)
	if err != nil || len(sel) != len(rels) {
		t.Fatalf("%v, %v", sel, err)
	}
	for _, r := range rels {
		if !sel[r] {
			t.Errorf("%q lost", r)
		}
	}
	entries := []Entry{{Rel: "sub", Dir: true}, {Rel: "a"}, {Rel: "sub/b c"}, {Rel: "sub/other"}, {Rel: "empty", Dir: true}}
	got := Select(entries, sel)
	if len(got) != 4 || got[0].Rel != "sub" || got[1].Rel != "a" || got[2].Rel != "sub/b c" || got[3].Rel != "empty" {
		t.Errorf("Select: %+v", got)
	}
	if sel, err := ReadSelection(strings.NewReader("")); err != nil || len(sel) != 0 {
		t.Errorf("empty selection: %v, %v", sel, err)
	}
	for _, bad := range []string{"\"a\"\n\"b", "a\n", "\"" + strings.Repeat("x", MaxHeader) + "\"\n"} {
		if _, err := ReadSelection(strings.NewReader(bad)); err == nil {
			t.Errorf("selection %.20q: accepted", bad)
		}
	}
}
