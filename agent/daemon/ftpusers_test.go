package daemon

import (
	"context"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestFTPUsersFile starts an agent whose FTP accounts come from a users file and logs in; a bad
// line stops New with the flag, the file and the line named.
func TestFTPUsersFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ftp-users")
	cfg := Config{Root: root, GRPCListen: "127.0.0.1:0", FTPListen: "127.0.0.1:0", FTPUsersFile: file, StateDir: t.TempDir()}

	if err := os.WriteFile(file, []byte("# accounts\nalice:"+string(hash)+":/in:rx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := New(cfg); err == nil {
		d.Close()
		t.Fatal("New accepted a bad right")
	} else if !strings.Contains(err.Error(), "ftp-users-file: "+file+":2: right") {
		t.Fatalf("New: %v, want the flag, file and line named", err)
	}

	if err := os.WriteFile(file, []byte("alice:"+string(hash)+":/in:ro\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close()
	})
	c, err := net.DialTimeout("tcp", d.Addr().FTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	if _, _, err := tp.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Cmd("USER alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tp.ReadResponse(331); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Cmd("PASS pw-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tp.ReadResponse(230); err != nil {
		t.Fatalf("login with the users file's account: %v", err)
	}
}
