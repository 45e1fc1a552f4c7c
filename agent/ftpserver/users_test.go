package ftpserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func bcryptHash(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// htpasswdLine runs the real `htpasswd -nbB` (Debian apache2-utils; CI installs it).
func htpasswdLine(t *testing.T, user, pass string) string {
	t.Helper()
	if !hasTool("htpasswd") {
		if os.Getenv("CI") != "" {
			t.Fatal("htpasswd not installed (apt-get install apache2-utils)")
		}
		t.Skip("htpasswd not installed (apt-get install apache2-utils)")
	}
	out, err := exec.Command("htpasswd", "-nbB", user, pass).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, user+":$2y$") {
		t.Fatalf("htpasswd wrote %q, want %s:$2y$...", line, user)
	}
	return line
}

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUsersFile logs in with accounts from a users file: a $2y$ hash written by the real
// htpasswd, $2a$ hashes made by Go's bcrypt, read-only and read-write rights, homes that confine
// the user (seen as "/", no way above it, no host path in replies), comments and blank lines.
func TestUsersFile(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"home/carol", "pub"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pubSum := writeRandom(t, root, "pub/data.bin", 5000)
	carolSum := writeRandom(t, root, "home/carol/mine.bin", 3000)
	writeRandom(t, root, "secret.bin", 100)
	// A symlink inside carol's home that leads elsewhere in the served root.
	if err := os.Symlink("../../secret.bin", filepath.Join(root, "home/carol/up")); err != nil {
		t.Fatal(err)
	}

	file := writeFile(t, filepath.Join(t.TempDir(), "ftp-users"), strings.Join([]string{
		"# Ferry FTP accounts",
		"",
		htpasswdLine(t, "bob", "bob-pass:with#odd chars"),
		"   # indented comment",
		"carol:" + bcryptHash(t, "carol-pass") + ":/home/carol",
		"dave:" + bcryptHash(t, "dave-pass") + ":pub:ro",
		"erin:" + bcryptHash(t, "erin-pass") + "::rw",
	}, "\n")+"\n")
	accounts, err := ReadUsersFile(file)
	if err != nil {
		t.Fatalf("ReadUsersFile: %v", err)
	}
	if len(accounts) != 4 || accounts[1].Home != "/home/carol" || !accounts[2].ReadOnly || accounts[3].ReadOnly {
		t.Fatalf("accounts = %+v", accounts)
	}
	ts := startServer(t, func(c *Config) { c.Root = root; c.Accounts = accounts })

	t.Run("htpasswd $2y$ hash, whole root, rw", func(t *testing.T) {
		f := dialRaw(t, ts)
		if code := f.login("bob", "bob-pass:with#odd chars"); code != 230 {
			t.Fatalf("login: %d", code)
		}
		if data, code := f.retr("/pub/data.bin"); code != 226 || sha256Hex(data) != pubSum {
			t.Fatalf("RETR: %d", code)
		}
		if code := f.stor("/bob.txt", []byte("hi")); code != 226 {
			t.Fatalf("STOR: %d", code)
		}
		if code := dialRaw(t, ts).login("bob", "bob-pass"); code != 530 {
			t.Errorf("wrong password: %d, want 530", code)
		}
	})

	t.Run("home confines", func(t *testing.T) {
		f := dialRaw(t, ts)
		if code := f.login("carol", "carol-pass"); code != 230 {
			t.Fatalf("login: %d", code)
		}
		if msg := f.expect(257, "PWD"); !strings.HasPrefix(msg, `"/"`) {
			t.Errorf("PWD = %q, want \"/\"", msg)
		}
		if data, code := f.retr("/mine.bin"); code != 226 || sha256Hex(data) != carolSum {
			t.Fatalf("RETR /mine.bin: %d", code)
		}
		for _, p := range []string{"/pub/data.bin", "../../pub/data.bin", "/../secret.bin", "up"} {
			if _, code := f.retr(p); code == 226 {
				t.Errorf("RETR %s outside the home: %d", p, code)
			}
		}
		f.expect(250, "CWD ..")
		if out, code := f.list("NLST", "/"); code != 226 || !strings.Contains(out, "mine.bin") || strings.Contains(out, "pub") {
			t.Errorf("NLST / = %d %q, want the home's content", code, out)
		}
		if code := f.stor("/new.bin", []byte("carol")); code != 226 {
			t.Fatalf("STOR: %d", code)
		}
		if b, err := os.ReadFile(filepath.Join(root, "home/carol/new.bin")); err != nil || string(b) != "carol" {
			t.Errorf("upload not in the home: %v", err)
		}
		code, msg := f.cmd("SIZE /nothing-here")
		if code != 550 || strings.Contains(msg, root) || strings.Contains(msg, "home/carol") {
			t.Errorf("SIZE of a missing file: %d %q: names the host path", code, msg)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		f := dialRaw(t, ts)
		if code := f.login("dave", "dave-pass"); code != 230 {
			t.Fatalf("login: %d", code)
		}
		if data, code := f.retr("/data.bin"); code != 226 || sha256Hex(data) != pubSum {
			t.Fatalf("RETR (home pub): %d", code)
		}
		if code := f.stor("/x.bin", []byte("x")); code != 550 {
			t.Errorf("STOR: %d, want 550", code)
		}
		if code, _ := f.cmd("DELE /data.bin"); code != 550 {
			t.Errorf("DELE: %d, want 550", code)
		}
	})

	t.Run("default home and explicit rw", func(t *testing.T) {
		f := dialRaw(t, ts)
		if code := f.login("erin", "erin-pass"); code != 230 {
			t.Fatalf("login: %d", code)
		}
		if data, code := f.retr("/home/carol/mine.bin"); code != 226 || sha256Hex(data) != carolSum {
			t.Fatalf("RETR: %d", code)
		}
	})
}

// TestUsersFileErrors checks that every bad line is refused with the file and line named, and
// that no error quotes a hash.
func TestUsersFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := bcryptHash(t, "pw")
	for _, c := range []struct{ content, want string }{
		{"# c\nalice\n", ":2: want name:bcrypt-hash"},
		{"alice:" + good + ":/:rw:extra\n", ":1: want name:bcrypt-hash"},
		{"\n\nalice:{SHA}abcdef\n", ":3: hash: not a bcrypt hash"},
		{"alice:plain-password\n", ":1: hash: not a bcrypt hash"},
		{"alice:" + good + ":/x:admin\n", `:1: right "admin"`},
		{"alice:" + good + ":../etc\n", ":1: home:"},
		{"alice:" + good + "\nalice:" + good + "\n", `:2: user "alice" already defined at`},
		{"anonymous:" + good + "\n", ":1: name:"},
		{":" + good + "\n", ":1: name: empty"},
	} {
		p := writeFile(t, filepath.Join(dir, "users"), c.content)
		_, err := ReadUsersFile(p)
		if err == nil || !strings.Contains(err.Error(), p+c.want) {
			t.Errorf("%q: error %v, want %q", c.content, err, p+c.want)
			continue
		}
		if strings.Contains(err.Error(), "$2") || strings.Contains(err.Error(), "plain-password") {
			t.Errorf("error quotes the hash: %v", err)
		}
	}
	if _, err := ReadUsersFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}

	// A home that does not exist (or is a file) is refused by New, naming the line.
	root := t.TempDir()
	writeRandom(t, root, "afile", 10)
	for _, home := range []string{"nope", "afile"} {
		p := writeFile(t, filepath.Join(dir, "users"), "# x\nalice:"+good+":"+home+":ro\n")
		accounts, err := ReadUsersFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Listen: "127.0.0.1:0", Root: root, Accounts: accounts})
		if err == nil {
			s.Close()
			t.Fatalf("home %q: New succeeded", home)
		}
		if !strings.Contains(err.Error(), p+":2: home \"/"+home+"\"") {
			t.Errorf("home %q: %v, want file:line and the home named", home, err)
		}
	}
	// Programmatic accounts are named by field; a clash with a static user is refused.
	_, err := New(Config{Listen: "127.0.0.1:0", Root: root, Users: []User{{"alice", "x"}},
		Accounts: []Account{{Name: "alice", Hash: good}}})
	if err == nil || !strings.Contains(err.Error(), "Config.Accounts[0]") {
		t.Errorf("static/account clash: %v", err)
	}
}

// TestBcryptDoesNotBlockOtherSessions runs a slow (cost 13, most of a second) bcrypt check and,
// meanwhile, a whole login and transfer on another session.
func TestBcryptDoesNotBlockOtherSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("slow hash")
	}
	slow, err := bcrypt.GenerateFromPassword([]byte("slow-pass"), 13)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *Config) {
		c.Accounts = []Account{{Name: "slow", Hash: string(slow)}}
	})
	sum := writeRandom(t, ts.root, "f.bin", 1000)
	slowDone := make(chan time.Duration, 1)
	f1 := dialRaw(t, ts)
	f1.expect(331, "USER slow")
	start := time.Now()
	if err := f1.tp.PrintfLine("PASS slow-pass"); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _, _ = f1.tp.ReadResponse(230)
		slowDone <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond)
	f2 := dialRaw(t, ts)
	if code := f2.login(testUser, testPass); code != 230 {
		t.Fatalf("login: %d", code)
	}
	if data, code := f2.retr("f.bin"); code != 226 || sha256Hex(data) != sum {
		t.Fatalf("RETR: %d", code)
	}
	other := time.Since(start)
	slowTook := <-slowDone
	t.Logf("bcrypt cost 13 login: %v; other session's login+RETR done after %v", slowTook, other)
	if other >= slowTook {
		t.Errorf("the other session finished after the slow login (%v >= %v): blocked", other, slowTook)
	}
}
