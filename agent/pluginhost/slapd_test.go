package pluginhost_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testcerts"
)

// slapd is a real OpenLDAP server (Debian's slapd) on loopback, with a temporary cn=config and
// directory: people alice (in ftp-rw), bob (in ftp-ro) and carol (in neither).
type slapd struct {
	URL, LDAPSURL string
	CA            string // PEM of the CA that signed its certificate
}

const ldapBase = "dc=example,dc=org"

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startSlapd(t testing.TB) *slapd {
	t.Helper()
	if _, err := exec.LookPath("slapd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("slapd not installed (apt-get install slapd ldap-utils; .ci/run does)")
		}
		t.Skip("slapd not installed (apt-get install slapd ldap-utils)")
	}
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ldap-test-ca")
	cert, key := ca.Issue(t, "ldap-server")
	for _, d := range []string{"db", "slapd.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile %[2]s
TLSCertificateFile %[3]s
TLSCertificateKeyFile %[4]s
database mdb
maxsize 16777216
suffix "%[5]s"
rootdn "cn=admin,%[5]s"
directory %[1]s/db
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
`, dir, ca.CertPEM, cert, key, ldapBase)
	if err := os.WriteFile(filepath.Join(dir, "slapd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ldif := `dn: ` + ldapBase + `
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,` + ldapBase + `
objectClass: organizationalUnit
ou: people

dn: ou=groups,` + ldapBase + `
objectClass: organizationalUnit
ou: groups
`
	for _, u := range []string{"alice", "bob", "carol"} {
		ldif += fmt.Sprintf("\ndn: uid=%[1]s,ou=people,%[2]s\nobjectClass: inetOrgPerson\nuid: %[1]s\ncn: %[1]s\nsn: %[1]s\nuserPassword: %[1]s-secret\n", u, ldapBase)
	}
	ldif += fmt.Sprintf("\ndn: cn=ftp-rw,ou=groups,%[1]s\nobjectClass: groupOfNames\ncn: ftp-rw\nmember: uid=alice,ou=people,%[1]s\n", ldapBase)
	ldif += fmt.Sprintf("\ndn: cn=ftp-ro,ou=groups,%[1]s\nobjectClass: groupOfNames\ncn: ftp-ro\nmember: uid=bob,ou=people,%[1]s\n", ldapBase)
	if err := os.WriteFile(filepath.Join(dir, "data.ldif"), []byte(ldif), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	cfgDir := filepath.Join(dir, "slapd.d")
	// The directory first (slaptest opens the database), then slapd.conf -> cn=config.
	run("slapadd", "-f", filepath.Join(dir, "slapd.conf"), "-b", ldapBase, "-l", filepath.Join(dir, "data.ldif"))
	run("slaptest", "-f", filepath.Join(dir, "slapd.conf"), "-F", cfgDir)
	port, tlsPort := freePort(t), freePort(t)
	s := &slapd{URL: fmt.Sprintf("ldap://127.0.0.1:%d", port), LDAPSURL: fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort), CA: ca.CertPEM}
	// -d 0: stay in the foreground (so the pid is ours to stop) and log nothing.
	cmd := exec.Command("slapd", "-F", cfgDir, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for _, p := range []int{port, tlsPort} {
		if !eventually(10*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		}) {
			t.Fatalf("slapd does not listen on %d", p)
		}
	}
	return s
}
