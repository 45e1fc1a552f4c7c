package pluginhost_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/pluginhost"
	"github.com/ferry-dev/ferry/internal/testagent"
)

// TestAuthPlugins: curl logs in to an agent through the htpasswd plugin and the LDAP plugin
// (a real slapd; the LDAP plugin speaks LDAPS to it), a wrong password is refused, and an LDAP
// read-only user cannot STOR.
func TestAuthPlugins(t *testing.T) {
	t0 := time.Now()
	bin(t, "noop")
	since(t, "build plugins", t0)
	t0 = time.Now()
	ldap := startSlapd(t)
	since(t, "slapd", t0)
	hp := htpasswd(t, map[string]string{"hanna": "hanna-secret"})
	specs := []pluginhost.Spec{
		{Path: bin(t, "auth-htpasswd"), Args: []string{"-file", hp, "-home", "/users/{user}"}},
		{Path: bin(t, "auth-ldap"), Args: []string{"-url", ldap.LDAPSURL, "-ca", ldap.CA,
			"-user-dn", "uid={user},ou=people," + ldapBase,
			"-rw-group", "cn=ftp-rw,ou=groups," + ldapBase, "-ro-group", "cn=ftp-ro,ou=groups," + ldapBase,
			"-home", "/users/{user}"}},
	}
	t0 = time.Now()
	a := startAgent(t, specs)
	since(t, "agent", t0)
	defer since(t, "logins", time.Now())
	for _, u := range []string{"hanna", "alice", "bob", "carol"} {
		if err := os.MkdirAll(filepath.Join(a.Root, "users", u), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(a.Root, "users", "bob", "report.txt"), 1000)
	local := filepath.Join(t.TempDir(), "up.bin")
	writeFile(t, local, 100_000)
	url := "ftp://" + a.FTP + "/"

	// htpasswd user: lists and uploads into their home.
	if code, out := curl(t, a.FTP, "hanna", "hanna-secret", "-T", local, url+"up.bin"); code != 0 {
		t.Errorf("htpasswd user upload: curl exit %d: %s", code, out)
	} else if fi, err := os.Stat(filepath.Join(a.Root, "users", "hanna", "up.bin")); err != nil || fi.Size() != 100_000 {
		t.Errorf("htpasswd user's upload not in their home: %v", err)
	}
	// LDAP user in the read-write group.
	if code, out := curl(t, a.FTP, "alice", "alice-secret", "-T", local, url+"a.bin"); code != 0 {
		t.Errorf("LDAP rw user upload: curl exit %d: %s", code, out)
	} else if _, err := os.Stat(filepath.Join(a.Root, "users", "alice", "a.bin")); err != nil {
		t.Errorf("LDAP rw user's upload not in their home: %v", err)
	}
	// Wrong passwords: curl's 67 is "login denied".
	for _, u := range []string{"hanna", "alice"} {
		if code, out := curl(t, a.FTP, u, "wrong", "-l", url); code != 67 {
			t.Errorf("%s with a wrong password: curl exit %d (want 67, login denied): %s", u, code, out)
		}
	}
	// LDAP read-only user: lists and downloads, cannot STOR (curl 25: upload failed).
	if code, out := curl(t, a.FTP, "bob", "bob-secret", "-l", url); code != 0 || !strings.Contains(out, "report.txt") {
		t.Errorf("LDAP ro user list: curl exit %d: %q", code, out)
	}
	if code, out := curl(t, a.FTP, "bob", "bob-secret", "-T", local, url+"b.bin"); code != 25 {
		t.Errorf("LDAP ro user STOR: curl exit %d (want 25, upload refused): %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(a.Root, "users", "bob", "b.bin")); err == nil {
		t.Error("the read-only user's upload exists")
	}
	// In no group: refused.
	if code, _ := curl(t, a.FTP, "carol", "carol-secret", "-l", url); code != 67 {
		t.Errorf("LDAP user in no group: curl exit %d, want 67", code)
	}
	// The agent's own user still logs in (grants, users, then plugins).
	if code, out := curl(t, a.FTP, testagent.User, testagent.Password, "-l", url); code != 0 {
		t.Errorf("agent's own user: curl exit %d: %s", code, out)
	}
	// htpasswd file reloaded when it changes.
	hp2 := htpasswd(t, map[string]string{"hanna": "new-secret"})
	data, _ := os.ReadFile(hp2)
	if err := os.WriteFile(hp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := curl(t, a.FTP, "hanna", "new-secret", "-l", url); code != 0 {
		t.Errorf("after the htpasswd file changed, the new password: curl exit %d", code)
	}
	if code, _ := curl(t, a.FTP, "hanna", "hanna-secret", "-l", url); code != 67 {
		t.Errorf("after the htpasswd file changed, the old password: curl exit %d, want 67", code)
	}
	info := pluginInfo(t, a)
	if len(info) != 2 || info[0].GetName() != "auth-htpasswd" || info[1].GetName() != "auth-ldap" ||
		info[0].GetState() != "running" || strings.Join(info[1].GetKinds(), ",") != "auth" {
		t.Errorf("agent info plugins: %v", info)
	}
}
