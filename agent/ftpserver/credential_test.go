package ftpserver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestInScope(t *testing.T) {
	file := func(a Access) Scope { return Scope{Path: "in/big.bin", Access: a} }
	dir := func(a Access) Scope { return Scope{Path: "in/tree", Access: a} }
	tests := []struct {
		name  string
		sc    Scope
		path  string
		write bool
		want  bool
	}{
		{"read file itself", file(AccessRead), "in/big.bin", false, true},
		{"read file, ftp absolute", file(AccessRead), "/in/big.bin", false, true},
		{"read file, uncleaned", file(AccessRead), "/in/./x/../big.bin", false, true},
		{"read file cannot write it", file(AccessRead), "in/big.bin", true, false},
		{"read scope, temp sibling not readable", file(AccessRead), "in/.big.bin.0123abcd.ferry-part", false, false},
		{"read scope, temp sibling not writable", file(AccessRead), "in/.big.bin.0123abcd.ferry-part", true, false},
		{"read file, sibling", file(AccessRead), "in/other.bin", false, false},
		{"read file, prefix sibling", file(AccessRead), "in/big.bin2", false, false},
		{"read file, parent", file(AccessRead), "in", false, false},
		{"read file, root", file(AccessRead), "/", false, false},
		{"read file, dotdot can't climb", file(AccessRead), "../in/big.bin", false, true},
		{"read file, dotdot elsewhere", file(AccessRead), "in/big.bin/../other.bin", false, false},
		{"write file itself", file(AccessWrite), "in/big.bin", true, true},
		{"write file, read it", file(AccessWrite), "in/big.bin", false, true},
		{"write temp sibling", file(AccessWrite), "in/.big.bin.0123abcd.ferry-part", true, true},
		{"read temp sibling with write scope", file(AccessWrite), "/in/.big.bin.0123abcd.ferry-part", false, true},
		{"write other temp", file(AccessWrite), "in/.other.bin.0123abcd.ferry-part", true, false},
		{"write sibling", file(AccessWrite), "in/other.bin", true, false},
		{"write parent", file(AccessWrite), "in", true, false},
		{"write temp in wrong dir", file(AccessWrite), ".big.bin.0123abcd.ferry-part", true, false},
		{"read dir, child", dir(AccessRead), "in/tree/a/b.bin", false, true},
		{"read dir, itself", dir(AccessRead), "/in/tree", false, true},
		{"read dir, prefix sibling", dir(AccessRead), "in/treehouse", false, false},
		{"read dir, cannot write child", dir(AccessRead), "in/tree/a", true, false},
		{"write dir, child", dir(AccessWrite), "in/tree/a/b.bin", true, true},
		{"write dir, child temp", dir(AccessWrite), "in/tree/a/.b.bin.0123abcd.ferry-part", true, true},
		{"write dir, dir temp sibling", dir(AccessWrite), "in/.tree.0123abcd.ferry-part", true, true},
		{"whole root read", Scope{Path: ".", Access: AccessRead}, "/any/thing", false, true},
		{"whole root read, no write", Scope{Path: ".", Access: AccessRead}, "/any/thing", true, false},
		{"whole root write", Scope{Path: ".", Access: AccessWrite}, "/any/thing", true, true},
		{"scope path uncleaned", Scope{Path: "in//x/../big.bin", Access: AccessRead}, "in/big.bin", false, true},
		{"invalid: escaping scope", Scope{Path: "../etc", Access: AccessRead}, "etc/passwd", false, false},
		{"invalid: absolute scope", Scope{Path: "/etc", Access: AccessRead}, "etc/passwd", false, false},
		{"invalid: empty scope", Scope{Path: "", Access: AccessRead}, "x", false, false},
		{"invalid: zero access", Scope{Path: "in"}, "in/x", false, false},
		{"invalid: unknown access", Scope{Path: "in", Access: 7}, "in/x", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := InScope(tc.sc, tc.path, tc.write); got != tc.want {
				t.Errorf("InScope(%+v, %q, write=%v) = %v, want %v", tc.sc, tc.path, tc.write, got, tc.want)
			}
		})
	}
}

func TestIssueCredentialValidation(t *testing.T) {
	ts := startServer(t, nil)
	for _, sc := range []Scope{
		{Path: "../x", Access: AccessRead},
		{Path: "in/../../x", Access: AccessRead},
		{Path: "..", Access: AccessRead},
		{Path: "/in/big.bin", Access: AccessRead},
		{Path: "", Access: AccessRead},
		{Path: "in\x00x", Access: AccessRead},
		{Path: "in/big.bin"},
		{Path: "in/big.bin", Access: 3},
		{Path: "in/big.bin", Access: AccessRead, TTL: -time.Second},
	} {
		if u, p, err := ts.IssueCredential(sc); err == nil {
			t.Errorf("IssueCredential(%+v) = %q, %q, nil; want error", sc, u, p)
		}
	}
	userRe := regexp.MustCompile(`^ferry-[0-9a-f]{16}$`)
	passRe := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 20 {
		u, p, err := ts.IssueCredential(Scope{Path: "in/./big.bin", Access: AccessRead})
		if err != nil {
			t.Fatal(err)
		}
		if !userRe.MatchString(u) || !passRe.MatchString(p) {
			t.Fatalf("credential %q/%q has the wrong shape", u, p)
		}
		if seen[u] || seen[p] {
			t.Fatalf("credential repeated")
		}
		seen[u], seen[p] = true, true
	}
}

func credLogin(t *testing.T, ts *testServer, sc Scope) *rawFTP {
	t.Helper()
	u, p, err := ts.IssueCredential(sc)
	if err != nil {
		t.Fatal(err)
	}
	f := dialRaw(t, ts)
	if code := f.login(u, p); code != 230 {
		t.Fatalf("credential login: %d", code)
	}
	return f
}

func TestCredentialOneLogin(t *testing.T) {
	ts := startServer(t, nil)
	u, p, err := ts.IssueCredential(Scope{Path: "in/big.bin", Access: AccessRead})
	if err != nil {
		t.Fatal(err)
	}
	// A wrong password does not burn it...
	if code := dialRaw(t, ts).login(u, p[:63]+"x"); code != 530 {
		t.Fatalf("wrong password: %d", code)
	}
	if code := dialRaw(t, ts).login(u, p); code != 230 {
		t.Fatalf("first login: %d", code)
	}
	// ...but the first successful login does.
	if code := dialRaw(t, ts).login(u, p); code != 530 {
		t.Fatalf("second login: %d, want 530", code)
	}
}

func TestCredentialExpiry(t *testing.T) {
	ts := startServer(t, nil)
	u, p, err := ts.IssueCredential(Scope{Path: "in/big.bin", Access: AccessRead, TTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if code := dialRaw(t, ts).login(u, p); code != 530 {
		t.Fatalf("expired login: %d, want 530", code)
	}
}

func TestCredentialNotSharedBetweenServers(t *testing.T) {
	a, b := startServer(t, nil), startServer(t, nil)
	u, p, err := a.IssueCredential(Scope{Path: "x", Access: AccessRead})
	if err != nil {
		t.Fatal(err)
	}
	if code := dialRaw(t, b).login(u, p); code != 530 {
		t.Fatalf("credential of server A accepted by server B: %d", code)
	}
	if code := dialRaw(t, a).login(u, p); code != 230 {
		t.Fatalf("credential refused by its own server: %d", code)
	}
}

func TestCredentialReadScope(t *testing.T) {
	ts := startServer(t, nil)
	wantSum := writeRandom(t, ts.root, "in/big.bin", 100000)
	writeRandom(t, ts.root, "in/other.bin", 10)
	writeRandom(t, ts.root, "top.bin", 10)
	f := credLogin(t, ts, Scope{Path: "in/big.bin", Access: AccessRead})

	if data, code := f.retr("/in/big.bin"); code != 226 || sha256Hex(data) != wantSum {
		t.Fatalf("RETR in scope: %d", code)
	}
	f.expect(213, "SIZE /in/big.bin")
	f.expect(213, "MDTM /in/big.bin")
	f.expect(213, "HASH /in/big.bin")
	f.expect(250, "MLST /in/big.bin")
	if out, code := f.list("MLSD", "/in/big.bin"); code == 226 {
		t.Logf("MLSD of a file: %q", out) // ftpserverlib refuses MLSD of a file; either is fine
	}
	if out, code := f.list("LIST", "/in/big.bin"); code != 226 || !strings.Contains(out, "big.bin") {
		t.Fatalf("LIST of the scoped file: %d %q", code, out)
	}
	// CWD into the parent chain works (curl does CWD in; RETR big.bin) ...
	f.expect(250, "CWD /in")
	if data, code := f.retr("big.bin"); code != 226 || sha256Hex(data) != wantSum {
		t.Fatalf("relative RETR after CWD: %d", code)
	}
	f.expect(213, "HASH big.bin")
	f.expect(257, "PWD")
	// ... but listing it does not.
	if out, code := f.list("LIST", "/in"); code == 226 {
		t.Fatalf("LIST of parent allowed: %q", out)
	}
	if out, code := f.list("MLSD", "/"); code == 226 {
		t.Fatalf("MLSD of root allowed: %q", out)
	}
	for _, p := range []string{"/in/other.bin", "/top.bin", "/in/.big.bin.0123abcd.ferry-part"} {
		if _, code := f.retr(p); code != 550 {
			t.Errorf("RETR %s: %d, want 550", p, code)
		}
		if code, _ := f.cmd("SIZE %s", p); code != 550 {
			t.Errorf("SIZE %s: %d, want 550", p, code)
		}
	}
	// No writes at all.
	for _, p := range []string{"/in/big.bin", "/in/.big.bin.0123abcd.ferry-part", "/in/new.bin"} {
		if code := f.stor(p, []byte("x")); code != 550 {
			t.Errorf("STOR %s: %d, want 550", p, code)
		}
	}
	for _, c := range []string{"DELE /in/big.bin", "MKD /in/big.bin.d", "MKD /in/x", "MFMT 20200101000000 /in/big.bin"} {
		if code, msg := f.cmd("%s", c); code != 550 {
			t.Errorf("%s: %d %q, want 550", c, code, msg)
		}
	}
	if code := f.rename("/in/big.bin", "/in/big2.bin"); code != 550 {
		t.Errorf("rename: %d, want 550", code)
	}
	if got := fileSHA256(t, filepath.Join(ts.root, "in", "big.bin")); got != wantSum {
		t.Errorf("scoped file modified")
	}
}

func TestCredentialWriteScope(t *testing.T) {
	ts := startServer(t, nil)
	if err := os.Mkdir(filepath.Join(ts.root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	otherSum := writeRandom(t, ts.root, "in/other.bin", 1000)
	f := credLogin(t, ts, Scope{Path: "in/sub/big.bin", Access: AccessWrite})

	data := make([]byte, 300000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	// Create the missing parent chain, upload to the temp name, rename.
	if code, _ := f.cmd("MKD /in"); code != 550 { // exists already
		t.Errorf("MKD /in (exists): %d", code)
	}
	f.expect(257, "MKD /in/sub")
	f.expect(250, "CWD /in/sub")
	if code := f.stor(".big.bin.0123abcd.ferry-part", data[:100000]); code != 226 {
		t.Fatalf("STOR temp: %d", code)
	}
	// resume: SIZE of the temp file, REST + STOR the remainder
	if msg := f.expect(213, "SIZE /in/sub/.big.bin.0123abcd.ferry-part"); msg != "100000" {
		t.Fatalf("SIZE temp = %q", msg)
	}
	f.expect(350, "REST 100000")
	if code := f.stor("/in/sub/.big.bin.0123abcd.ferry-part", data[100000:]); code != 226 {
		t.Fatalf("resumed STOR temp: %d", code)
	}
	if code := f.rename("/in/sub/.big.bin.0123abcd.ferry-part", "/in/sub/big.bin"); code != 250 {
		t.Fatalf("RNFR/RNTO temp -> final: %d", code)
	}
	if got := fileSHA256(t, filepath.Join(ts.root, "in", "sub", "big.bin")); got != sha256Hex(data) {
		t.Fatalf("final file sha256 mismatch")
	}
	if msg := f.expect(213, "HASH /in/sub/big.bin"); !strings.Contains(msg, sha256Hex(data)) {
		t.Fatalf("HASH = %q", msg)
	}
	// Overwrite of the path itself is allowed.
	if code := f.stor("/in/sub/big.bin", data); code != 226 {
		t.Fatalf("STOR final: %d", code)
	}

	// Siblings, parents and anything else are off limits.
	for _, p := range []string{"/in/sub/other.bin", "/in/other.bin", "/in/.other.bin.0123abcd.ferry-part", "/big.bin", "/in/sub/.big.bin.0123abcd.ferry-part2"} {
		if code := f.stor(p, []byte("x")); code != 550 {
			t.Errorf("STOR %s: %d, want 550", p, code)
		}
	}
	for _, c := range []string{
		"DELE /in/other.bin", "MKD /in/sub2", "MKD /other", "RMD /in/sub", "RMD /in",
		"MFMT 20200101000000 /in/other.bin", "SIZE /in/other.bin",
	} {
		if code, msg := f.cmd("%s", c); code != 550 {
			t.Errorf("%s: %d %q, want 550", c, code, msg)
		}
	}
	if _, code := f.retr("/in/other.bin"); code != 550 {
		t.Errorf("RETR sibling: %d", code)
	}
	if code := f.rename("/in/sub/big.bin", "/in/stolen.bin"); code != 550 { // RNTO outside
		t.Errorf("rename to outside: %d, want 550", code)
	}
	if code := f.rename("/in/other.bin", "/in/sub/big.bin"); code != 550 { // RNFR outside
		t.Errorf("rename from outside: %d, want 550", code)
	}
	if code := f.rename("/in/sub", "/in/sub-moved"); code != 550 {
		t.Errorf("rename of parent: %d, want 550", code)
	}
	if got := fileSHA256(t, filepath.Join(ts.root, "in", "other.bin")); got != otherSum {
		t.Errorf("sibling modified")
	}
	for _, p := range []string{"in/stolen.bin", "in/sub2", "other", "in/sub/other.bin", "big.bin"} {
		if _, err := os.Lstat(filepath.Join(ts.root, p)); err == nil {
			t.Errorf("%s was created", p)
		}
	}
	// And finally DELE of the path itself is allowed.
	f.expect(250, "DELE /in/sub/big.bin")
}

func TestCredentialDirectoryScope(t *testing.T) {
	ts := startServer(t, nil)
	sumB := writeRandom(t, ts.root, "in/tree/a/b.bin", 5000)
	writeRandom(t, ts.root, "in/treehouse/x.bin", 10)
	f := credLogin(t, ts, Scope{Path: "in/tree", Access: AccessRead})
	if out, code := f.list("MLSD", "/in/tree/a"); code != 226 || !strings.Contains(out, "b.bin") {
		t.Fatalf("MLSD in scope: %d %q", code, out)
	}
	if data, code := f.retr("/in/tree/a/b.bin"); code != 226 || sha256Hex(data) != sumB {
		t.Fatalf("RETR in scope: %d", code)
	}
	if _, code := f.retr("/in/treehouse/x.bin"); code != 550 {
		t.Fatalf("RETR in prefix sibling: %d", code)
	}
	if code := f.stor("/in/tree/a/new.bin", []byte("x")); code != 550 {
		t.Fatalf("STOR with read scope: %d", code)
	}
}
