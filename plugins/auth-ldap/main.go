// Command auth-ldap is a Ferry auth plugin: FTP logins checked by binding to an LDAP directory
// (OpenLDAP, Active Directory) as the user, rights from group membership.
//
// The user's DN comes from a template (-user-dn 'uid={user},ou=people,dc=example,dc=org') or
// from a search (-base and -filter '(uid={user})', bound as -bind-dn with the password in
// -bind-password-file, or anonymously). Then the plugin binds as that DN with the login's
// password. Rights: a member of -rw-group is read-write, of -ro-group read-only; with groups
// given, anyone else is refused. Groups are groupOfNames (-group-attr member holds user DNs).
// ldaps:// URLs use TLS; -starttls upgrades ldap:// ones; -ca verifies the server.
//
//	ferry-agent --root /srv/ferry --plugin '/usr/lib/ferry/auth-ldap -url ldaps://ldap.example.org
//	    -user-dn uid={user},ou=people,dc=example,dc=org -rw-group cn=ftp-rw,ou=groups,dc=example,dc=org
//	    -ro-group cn=ftp-ro,ou=groups,dc=example,dc=org -home /users/{user} -ca /etc/ferry/ldap-ca.pem'
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ferry-dev/ferry/plugins"
)

type config struct {
	url, userDN, base, filter, bindDN, bindPassword string
	rwGroup, roGroup, groupAttr, home               string
	startTLS                                        bool
	tls                                             *tls.Config
}

func main() {
	var c config
	var ca, pwFile string
	fs := flag.NewFlagSet("auth-ldap", flag.ExitOnError)
	fs.StringVar(&c.url, "url", "", "directory URL: ldap://host:389 or ldaps://host:636 (required)")
	fs.BoolVar(&c.startTLS, "starttls", false, "upgrade an ldap:// connection with StartTLS")
	fs.StringVar(&ca, "ca", "", "PEM file of the CA that verifies the directory's certificate (default: the system roots)")
	fs.StringVar(&c.userDN, "user-dn", "", "DN template of a user: uid={user},ou=people,dc=example,dc=org")
	fs.StringVar(&c.base, "base", "", "search base for users (instead of -user-dn)")
	fs.StringVar(&c.filter, "filter", "(uid={user})", "search filter for a user, with -base")
	fs.StringVar(&c.bindDN, "bind-dn", "", "DN to search as (with -base; default: anonymous)")
	fs.StringVar(&pwFile, "bind-password-file", "", "file holding -bind-dn's password (never on the command line)")
	fs.StringVar(&c.rwGroup, "rw-group", "", "DN of the group whose members are read-write")
	fs.StringVar(&c.roGroup, "ro-group", "", "DN of the group whose members are read-only")
	fs.StringVar(&c.groupAttr, "group-attr", "member", "attribute of a group that lists its members' DNs")
	fs.StringVar(&c.home, "home", "/", "home under the served root; {user} is replaced by the login name")
	_ = fs.Parse(os.Args[1:])
	if err := c.finish(ca, pwFile); err != nil {
		fmt.Fprintln(os.Stderr, "auth-ldap:", err)
		os.Exit(2)
	}
	plugins.Serve(plugins.Impl{Name: "auth-ldap", Version: "1", Auth: &c})
}

func (c *config) finish(ca, pwFile string) error {
	switch {
	case c.url == "":
		return errors.New("-url: required")
	case (c.userDN == "") == (c.base == ""):
		return errors.New("give -user-dn (a DN template) or -base (search then bind), one of them")
	case c.userDN != "" && !strings.Contains(c.userDN, "{user}"):
		return errors.New("-user-dn: must contain {user}")
	}
	c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca: no certificate in %s", ca)
		}
		c.tls.RootCAs = pool
	}
	if pwFile != "" {
		b, err := os.ReadFile(pwFile)
		if err != nil {
			return fmt.Errorf("-bind-password-file: %w", err)
		}
		c.bindPassword = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

func (c *config) dial(ctx context.Context) (*ldap.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	conn, err := ldap.DialURL(c.url, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(c.tls))
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetTimeout(time.Until(dl))
	}
	if c.startTLS {
		if err := conn.StartTLS(c.tls); err != nil {
			conn.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return conn, nil
}

func (c *config) Authenticate(ctx context.Context, r plugins.AuthRequest) (plugins.AuthResponse, error) {
	if r.Password == "" {
		// An empty password would be an unauthenticated bind, which LDAP servers accept.
		return plugins.Deny("empty password"), nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return plugins.AuthResponse{}, fmt.Errorf("directory: %w", err) // the agent fails closed
	}
	defer conn.Close()
	var dn string
	if c.userDN != "" {
		dn = strings.ReplaceAll(c.userDN, "{user}", ldap.EscapeDN(r.User))
	} else {
		if c.bindDN != "" {
			if err := conn.Bind(c.bindDN, c.bindPassword); err != nil {
				return plugins.AuthResponse{}, fmt.Errorf("search bind as %s: %w", c.bindDN, err)
			}
		}
		res, err := conn.Search(ldap.NewSearchRequest(c.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			2, 5, false, strings.ReplaceAll(c.filter, "{user}", ldap.EscapeFilter(r.User)), []string{"dn"}, nil))
		switch {
		case err != nil:
			return plugins.AuthResponse{}, fmt.Errorf("search: %w", err)
		case len(res.Entries) == 0:
			return plugins.Unknown("not in the directory"), nil
		case len(res.Entries) > 1:
			return plugins.Deny("the filter matches several entries"), nil
		}
		dn = res.Entries[0].DN
	}
	if err := conn.Bind(dn, r.Password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return plugins.Deny("invalid credentials"), nil
		}
		return plugins.AuthResponse{}, fmt.Errorf("bind: %w", err)
	}
	readOnly := false
	if c.rwGroup != "" || c.roGroup != "" {
		switch {
		case c.rwGroup != "" && c.member(conn, c.rwGroup, dn):
		case c.roGroup != "" && c.member(conn, c.roGroup, dn):
			readOnly = true
		default:
			return plugins.Deny("in none of the groups -rw-group, -ro-group"), nil
		}
	}
	home, err := plugins.HomeFor(c.home, r.User)
	if err != nil {
		return plugins.Deny(err.Error()), nil
	}
	return plugins.Allow(home, readOnly), nil
}

// member reports whether group lists dn in its group attribute (read bound as the user).
func (c *config) member(conn *ldap.Conn, group, dn string) bool {
	res, err := conn.Search(ldap.NewSearchRequest(group, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 5, false,
		fmt.Sprintf("(%s=%s)", ldap.EscapeFilter(c.groupAttr), ldap.EscapeFilter(dn)), []string{"dn"}, nil))
	return err == nil && len(res.Entries) == 1
}
