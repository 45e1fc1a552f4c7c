package ftpserver

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTraversal checks that nothing outside Root can be reached: ".."
// paths, absolute paths and symlinks pointing out of the root.
func TestTraversal(t *testing.T) {
	ts := startServer(t, nil)
	wantSum := writeRandom(t, ts.root, "data.bin", 4096)
	outside := t.TempDir() // a sibling directory the server must not reach
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("top secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"etclink":    "/etc",                                              // absolute, to a directory
		"passwdlink": "/etc/passwd",                                       // absolute, to a file
		"uplink":     "..",                                                // relative, escapes
		"sneaky":     filepath.Join("..", filepath.Base(outside)),         // relative, to a sibling dir
		"secretlink": filepath.Join(outside, "secret"),                    // absolute, to a file elsewhere
		"inside":     "data.bin",                                          // relative, stays inside: allowed
		"insidedir":  ".",                                                 // relative, the root itself: allowed
		"loop":       "loop",                                              // ELOOP
		"etcviadir":  filepath.Join("insidedir", "..", "..", "..", "etc"), // escapes through a link
	} {
		if err := os.Symlink(target, filepath.Join(ts.root, name)); err != nil {
			t.Fatal(err)
		}
	}

	f := dialRaw(t, ts)
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatalf("login: %d", code)
	}

	refused := []string{
		"../../etc/passwd",
		"/../etc/passwd",
		"/../../../../../etc/passwd",
		"..%2f..%2fetc%2fpasswd",
		"etclink/passwd",
		"/etclink/passwd",
		"passwdlink",
		"uplink/etc/passwd",
		"sneaky/secret",
		"secretlink",
		"loop",
		"etcviadir/passwd",
		"/insidedir/../../etc/passwd",
	}
	for _, p := range refused {
		data, code := f.retr(p)
		if code != 550 || len(data) != 0 {
			t.Errorf("RETR %s: code %d, %d bytes; want 550 and nothing", p, code, len(data))
		}
		if code, msg := f.cmd("SIZE %s", p); code != 550 {
			t.Errorf("SIZE %s: %d %s", p, code, msg)
		}
		if code, msg := f.cmd("HASH %s", p); code != 550 {
			t.Errorf("HASH %s: %d %s", p, code, msg)
		}
		if bytes.Contains(data, []byte("root:")) || bytes.Contains(data, []byte("top secret")) {
			t.Errorf("RETR %s leaked outside data", p)
		}
	}
	// Uploads through an escaping link are refused too.
	for _, p := range []string{"etclink/ferry-test", "sneaky/new", "uplink/new"} {
		if code := f.stor(p, []byte("x")); code != 550 {
			t.Errorf("STOR %s: %d, want 550", p, code)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Errorf("file created outside the root")
	}
	for _, p := range []string{"/etclink", "etclink", "uplink", "sneaky"} {
		// refused by os.Root itself, not merely "not found"
		if code, msg := f.cmd("CWD %s", p); code != 550 || !strings.Contains(msg, "path escapes from parent") {
			t.Errorf("CWD %s: %d %s", p, code, msg)
		}
		if out, code := f.list("LIST", p); code == 226 {
			t.Errorf("LIST %s succeeded: %q", p, out)
		}
	}

	// CWD .. from the root stays at the root, and the root is still served.
	f.expect(250, "CWD ..")
	f.expect(250, "CWD ../../..")
	f.expect(250, "CDUP")
	if msg := f.expect(257, "PWD"); !strings.Contains(msg, `"/"`) {
		t.Errorf("PWD after CWD .. = %q", msg)
	}
	if data, code := f.retr("data.bin"); code != 226 || sha256Hex(data) != wantSum {
		t.Errorf("RETR data.bin after CWD ..: code %d", code)
	}
	// Symlinks that stay inside the root keep working.
	if data, code := f.retr("inside"); code != 226 || sha256Hex(data) != wantSum {
		t.Errorf("RETR inside (in-root link): code %d", code)
	}
	if data, code := f.retr("/insidedir/data.bin"); code != 226 || sha256Hex(data) != wantSum {
		t.Errorf("RETR insidedir/data.bin: code %d", code)
	}
}

func TestAuth(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		ts := startServer(t, nil)
		if code := dialRaw(t, ts).login(testUser, "wrong"); code != 530 {
			t.Fatalf("PASS: %d, want 530", code)
		}
		if code := dialRaw(t, ts).login("mallory", testPass); code != 530 {
			t.Fatalf("unknown user: %d, want 530", code)
		}
		f := dialRaw(t, ts)
		if code, _ := f.cmd("RETR data.bin"); code != 530 {
			t.Fatalf("RETR before login: %d, want 530", code)
		}
	})

	t.Run("anonymous disabled", func(t *testing.T) {
		ts := startServer(t, nil)
		for _, u := range []string{"anonymous", "ftp", "Anonymous"} {
			if code := dialRaw(t, ts).login(u, "guest@example.com"); code != 530 {
				t.Errorf("%s login: %d, want 530", u, code)
			}
		}
	})

	t.Run("anonymous read-only", func(t *testing.T) {
		ts := startServer(t, func(c *Config) { c.AnonymousRead = true })
		wantSum := writeRandom(t, ts.root, "pub/data.bin", 10000)
		if err := os.Mkdir(filepath.Join(ts.root, "pub", "emptydir"), 0o755); err != nil {
			t.Fatal(err)
		}
		f := dialRaw(t, ts)
		if code := f.login("anonymous", "guest@example.com"); code != 230 {
			t.Fatalf("anonymous login: %d", code)
		}
		if data, code := f.retr("/pub/data.bin"); code != 226 || sha256Hex(data) != wantSum {
			t.Fatalf("anonymous RETR: %d", code)
		}
		if out, code := f.list("MLSD", "/pub"); code != 226 || !strings.Contains(out, "data.bin") {
			t.Fatalf("anonymous MLSD: %d %q", code, out)
		}
		f.expect(213, "SIZE /pub/data.bin")
		if code := f.stor("/pub/new.bin", []byte("x")); code != 550 {
			t.Errorf("anonymous STOR: %d, want 550", code)
		}
		if code := f.stor("/pub/data.bin", []byte("x")); code != 550 {
			t.Errorf("anonymous STOR over existing: %d, want 550", code)
		}
		for _, c := range []string{
			"APPE /pub/data.bin", "DELE /pub/data.bin", "MKD /pub/x", "RMD /pub/emptydir",
			"MFMT 20200101000000 /pub/data.bin",
		} {
			code, msg := f.cmd("%s", c)
			if code != 550 || !strings.Contains(msg, "permission denied") {
				t.Errorf("anonymous %s: %d %q, want 550 permission denied", c, code, msg)
			}
		}
		if code := f.rename("/pub/data.bin", "/pub/moved.bin"); code != 550 {
			t.Errorf("anonymous rename: %d, want 550", code)
		}
		if got := fileSHA256(t, filepath.Join(ts.root, "pub", "data.bin")); got != wantSum {
			t.Errorf("file changed by anonymous session")
		}
		for _, p := range []string{"pub/new.bin", "pub/x", "pub/moved.bin"} {
			if _, err := os.Lstat(filepath.Join(ts.root, p)); err == nil {
				t.Errorf("%s created by anonymous session", p)
			}
		}
		if _, err := os.Stat(filepath.Join(ts.root, "pub", "emptydir")); err != nil {
			t.Errorf("emptydir removed by anonymous session")
		}
	})
}

// TestPortBounce checks that PORT/EPRT naming another host than the client (library: 501) or a
// privileged port on the client's own host (filter: 501, port named) is refused (FTP bounce
// attack), while the client's own address and an unprivileged port work.
func TestPortBounce(t *testing.T) {
	ts := startServer(t, nil)
	f := dialRaw(t, ts)
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatalf("login: %d", code)
	}
	for _, c := range []struct{ cmd, text string }{
		// Foreign address, unprivileged port.
		{"PORT 10,1,2,3,7,208", "security requirements"},
		{"PORT 127,0,0,2,7,208", "security requirements"}, // loopback, but not the client's 127.0.0.1
		{"EPRT |1|10.1.2.3|2000|", "security requirements"},
		{"EPRT |1|127.0.0.2|2000|", "security requirements"},
		{"EPRT |2|::1|2000|", "security requirements"},
		// The client's own address, privileged port.
		{"PORT 127,0,0,1,0,25", "port 25 refused"},
		{"PORT 127,0,0,1,3,255", "port 1023 refused"},
		{"PORT 127,0,0,1,0,0", "port 0 refused"},
		{"EPRT |1|127.0.0.1|22|", "port 22 refused"},
		{"EPRT !1!127.0.0.1!80!", "port 80 refused"}, // any delimiter (RFC 2428)
		// Both.
		{"PORT 10,1,2,3,0,80", "port 80 refused"},
		{"EPRT |1|10.1.2.3|80|", "port 80 refused"},
	} {
		if code, msg := f.cmd("%s", c.cmd); code != 501 || !strings.Contains(msg, c.text) {
			t.Errorf("%s: %d %q, want 501 %q", c.cmd, code, msg, c.text)
		}
	}
	// A refused PORT leaves no data connection to use.
	if code, msg := f.cmd("LIST"); code != 425 {
		t.Errorf("LIST after refused PORT: %d %q, want 425", code, msg)
	}
	f.expect(200, "PORT 127,0,0,1,4,0") // 1024
	f.expect(200, "EPRT |1|127.0.0.1|2000|")
}

func TestHASH(t *testing.T) {
	ts := startServer(t, nil)
	wantSum := writeRandom(t, ts.root, "dir/file.bin", 1<<20+7)
	f := dialRaw(t, ts)
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatalf("login: %d", code)
	}
	feat := f.expect(211, "FEAT")
	if !strings.Contains(feat, "SHA-256*") {
		t.Errorf("FEAT does not advertise SHA-256 as HASH default: %q", feat)
	}
	msg := f.expect(213, "HASH /dir/file.bin")
	if !strings.Contains(msg, "SHA-256 0-1048583 "+wantSum+" /dir/file.bin") {
		t.Errorf("HASH reply %q does not carry sha256 %s", msg, wantSum)
	}
	// relative to the working directory (ftpserverlib passes HASH's argument
	// unresolved to the driver's Stat; sessionFs resolves it)
	f.expect(250, "CWD /dir")
	if msg := f.expect(213, "HASH file.bin"); !strings.Contains(msg, wantSum) {
		t.Errorf("relative HASH reply %q", msg)
	}
	if code, _ := f.cmd("HASH /dir/missing.bin"); code != 550 {
		t.Errorf("HASH of missing file: %d", code)
	}
	if code, _ := f.cmd("HASH /dir"); code != 553 {
		t.Errorf("HASH of a directory: %d", code)
	}
}

// TestHASHPython drives HASH through Python's ftplib.sendcmd.
func TestHASHPython(t *testing.T) {
	requireTool(t, "/usr/bin/python3")
	ts := startServer(t, nil)
	wantSum := writeRandom(t, ts.root, "h.bin", 200000)
	script := `import ftplib, sys
f = ftplib.FTP()
f.connect(sys.argv[1], int(sys.argv[2]), timeout=30)
f.login(sys.argv[3], sys.argv[4])
print(f.sendcmd("HASH /h.bin"))
f.quit()`
	out := runTool(t, "/usr/bin/python3", []string{"-c", script, ts.host, itoa(ts.port), testUser, testPass})
	if !strings.Contains(out, wantSum) {
		t.Fatalf("ftplib HASH output %q lacks %s", out, wantSum)
	}
}
