package ftpserver

import (
	"path"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/agent/storage"
)

// elems splits a cleaned root-relative path ("." is the root) into its elements.
func elems(rel string) []string {
	if rel == "." {
		return nil
	}
	return strings.Split(rel, "/")
}

// under reports whether rel is s or below it, element by element (an oracle independent of
// the string-prefix checks in scope.go).
func under(rel, s string) bool {
	r, e := elems(rel), elems(s)
	if len(r) < len(e) {
		return false
	}
	for i := range e {
		if r[i] != e[i] {
			return false
		}
	}
	return true
}

// checkRel fails unless rel is "." or a clean relative path with no "..", "." or empty element.
func checkRel(t *testing.T, what, rel string) {
	t.Helper()
	if rel == "." {
		return
	}
	if rel == "" || strings.HasPrefix(rel, "/") || path.Clean(rel) != rel {
		t.Fatalf("%s = %q: not a clean root-relative path", what, rel)
	}
	for _, el := range strings.Split(rel, "/") {
		if el == "" || el == "." || el == ".." {
			t.Fatalf("%s = %q: element %q", what, rel, el)
		}
	}
}

// FuzzRelPath: whatever an FTP client sends as a name (absolute, relative, "..", "//"), relPath
// gives a root-relative path that cannot climb above the root, and ftpPath inverts it.
func FuzzRelPath(f *testing.F) {
	for _, s := range []string{"", "/", ".", "..", "/..", "../../etc/passwd", "/in/../../x", "a//b/./c/",
		"in/big.bin", "\x00", "/a/b/..", "...", "./.../..", `\..\x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel := relPath(name)
		checkRel(t, "relPath("+name+")", rel)
		if again := relPath(rel); again != rel {
			t.Fatalf("relPath not stable: %q -> %q -> %q", name, rel, again)
		}
		if back := relPath(ftpPath(rel)); back != rel {
			t.Fatalf("relPath(ftpPath(%q)) = %q", rel, back)
		}
	})
}

// FuzzInScope: a one-time credential never reaches outside its scope. A scope path that
// cleanScopePath accepts is clean and below the root; InScope allows a path only when the access
// allows the operation and the path is the scope, below it or (write scopes) one of its part
// files; the session policy adds only stat of the scope's ancestors and, for write scopes,
// mkdir of them. A read scope never writes.
func FuzzInScope(f *testing.F) {
	for _, c := range []struct {
		scope  string
		access uint8
		p      string
		write  bool
	}{
		{"in/big.bin", 1, "/in/big.bin", false},
		{"in/big.bin", 2, "/in/.big.bin.0123abcd.ferry-part", true},
		{"in/big.bin", 2, "/in/big.bin.evil", true},
		{"in/tree", 1, "in/tree/sub/f", false},
		{"in/tree", 1, "in/treeX", false},
		{"in/tree", 2, "in/tree/../../etc", true},
		{".", 1, "/../..", false},
		{".", 2, "anything", true},
		{"..", 2, "x", true},
		{"/abs", 1, "/abs", false},
		{"a/./b/", 1, "a/b/c", false},
		{"in", 3, "in", false},
		{"in/x", 1, "in", false},
	} {
		f.Add(c.scope, c.access, c.p, c.write)
	}
	f.Fuzz(func(t *testing.T, scope string, access uint8, p string, write bool) {
		sc := Scope{Path: scope, Access: Access(access % 4)}
		s, err := cleanScopePath(scope)
		if err == nil {
			checkRel(t, "cleanScopePath("+scope+")", s)
			if strings.ContainsRune(scope, 0) || path.IsAbs(scope) {
				t.Fatalf("cleanScopePath(%q) = %q: accepted", scope, s)
			}
			if again, err := cleanScopePath(s); err != nil || again != s {
				t.Fatalf("cleanScopePath not stable: %q -> %q -> %q, %v", scope, s, again, err)
			}
		}
		rel := relPath(p)
		ok := InScope(sc, p, write)
		if ok {
			switch {
			case err != nil:
				t.Fatalf("InScope(%+v, %q) allowed with an invalid scope: %v", sc, p, err)
			case sc.Access != AccessRead && sc.Access != AccessWrite:
				t.Fatalf("InScope(%+v, %q) allowed with access %v", sc, p, sc.Access)
			case write && sc.Access != AccessWrite:
				t.Fatalf("InScope(%+v, %q, write) allowed with read access", sc, p)
			case !under(rel, s) && !(sc.Access == AccessWrite && s != "." && storage.IsPartOf(s, rel)):
				t.Fatalf("InScope(%+v, %q -> %q, write=%v) allowed outside the scope %q", sc, p, rel, write, s)
			}
		} else if err == nil && under(rel, s) && (sc.Access == AccessWrite || (sc.Access == AccessRead && !write)) {
			t.Fatalf("InScope(%+v, %q -> %q, write=%v) refused inside the scope", sc, p, rel, write)
		}
		if err != nil || (sc.Access != AccessRead && sc.Access != AccessWrite) {
			return
		}
		// The session policy, as a logged-in one-time credential has it (Path already cleaned).
		pol := policy{kind: policyScoped, scope: Scope{Path: s, Access: sc.Access}}
		ancestor := under(s, rel) && rel != s
		for _, op := range []fsOp{opStat, opRead, opWrite, opMkdir} {
			if !pol.allows(op, rel) {
				continue
			}
			part := sc.Access == AccessWrite && s != "." && storage.IsPartOf(s, rel)
			inside := under(rel, s) || part
			switch {
			case sc.Access == AccessRead && (op == opWrite || op == opMkdir):
				t.Fatalf("read scope %q allows op %d on %q", s, op, rel)
			case op == opStat && !inside && !ancestor:
				t.Fatalf("scope %q allows stat of %q", s, rel)
			case op == opMkdir && !inside && !ancestor:
				t.Fatalf("scope %q allows mkdir of %q", s, rel)
			case (op == opRead || op == opWrite) && !inside:
				t.Fatalf("scope %q allows op %d on %q", s, op, rel)
			}
		}
	})
}
