package storage

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPartName: a part name is a hidden sibling of the final file whose name fits in 255 bytes,
// keeps as much of the final name as fits (cut only inside a trailing partial UTF-8 sequence),
// is recognised by IsPartOf and IsPart, and is never the final file itself. IsPartOf is only
// true for names in the final file's directory that carry its (clipped) name.
func FuzzPartName(f *testing.F) {
	long := strings.Repeat("x", 300)
	for _, s := range [][3]string{
		{"in/big.bin", "k", "in/.big.bin.0123abcd.ferry-part"},
		{"big.bin", "", "other"},
		{".", "k", "..abcdef01.ferry-part"},
		{"/", "k", "x"},
		{"", "k", ""},
		{"a/b/../c", "k", "a/.c.ffffffff.ferry-part"},
		{"in/" + long, "k", "in/." + long[:200] + ".00000000.ferry-part"},
		{"in/" + strings.Repeat("é", 150), "key", "in/x"},
		{"d/.x.ferry-part", "k", "d/..x.ferry-part.00000000.ferry-part"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, final, key, other string) {
		n := PartName(final, key)
		cf := path.Clean(final)
		dir, base := path.Split(cf)
		ndir, nbase := path.Split(n)
		if ndir != dir {
			t.Fatalf("PartName(%q) = %q is not in the final file's directory %q", final, n, dir)
		}
		if len(nbase) > 255 {
			t.Fatalf("PartName(%q) = %q: name is %d bytes", final, n, len(nbase))
		}
		if want := "." + partTag(key) + PartSuffix; !strings.HasSuffix(n, want) || len(partTag(key)) != keyLen {
			t.Fatalf("PartName(%q, %q) = %q does not end in %q", final, key, n, want)
		}
		kept := strings.TrimSuffix(strings.TrimPrefix(nbase, "."), "."+partTag(key)+PartSuffix)
		if !strings.HasPrefix(base, kept) || len(kept) < min(len(base), maxPartBase)-(utf8.UTFMax-1) {
			t.Fatalf("PartName(%q) = %q keeps %d bytes of the %d-byte name", final, n, len(kept), len(base))
		}
		if utf8.ValidString(base) && !utf8.ValidString(nbase) {
			t.Fatalf("PartName(%q) = %q cut a UTF-8 sequence", final, n)
		}
		if !IsPartOf(final, n) || !IsPart(n) {
			t.Fatalf("PartName(%q) = %q: IsPartOf %v, IsPart %v", final, n, IsPartOf(final, n), IsPart(n))
		}
		if n == cf || path.Clean(n) == cf {
			t.Fatalf("PartName(%q) = %q is the final file", final, n)
		}
		if IsPartOf(final, other) {
			odir, obase := path.Split(path.Clean(other))
			if odir != dir || !IsPart(other) || !strings.HasPrefix(obase, "."+clip(base, maxPartBase)+".") {
				t.Fatalf("IsPartOf(%q, %q) is true for a name that is not its part file", final, other)
			}
		}
	})
}
