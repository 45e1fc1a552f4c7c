package transfer

import (
	"errors"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
)

// checkRootRel fails unless p is a cleaned root-relative path: "." or elements that are
// neither empty, ".", ".." nor hold a NUL, with no leading "/".
func checkRootRel(t *testing.T, what, p string) {
	t.Helper()
	if p == "." {
		return
	}
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) || path.Clean(p) != p {
		t.Fatalf("%s = %q: not a cleaned root-relative path", what, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			t.Fatalf("%s = %q: element %q", what, p, el)
		}
	}
}

// FuzzCleanLocal: a path accepted by cleanLocal never leaves the root, whatever its "..", "."
// and slashes; the result is clean, stable, and names what path.Join would below the root.
func FuzzCleanLocal(f *testing.F) {
	for _, s := range []string{"", ".", "/", "a/b", "/a/../b", "a/../../b", "..", "../x", "a//b/./c/",
		"a/b/../..", "a/b/../../..", "....", ".../x", "a/\x00b", "//..//x", "x/..", "é/ü/../ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := cleanLocal(p)
		const root = "/srv/root"
		joined := path.Join(root, p)
		escapes := joined != root && !strings.HasPrefix(joined, root+"/")
		if err != nil {
			if c != "" {
				t.Fatalf("cleanLocal(%q) = %q with error %v", p, c, err)
			}
			return
		}
		if strings.ContainsRune(p, 0) {
			t.Fatalf("cleanLocal(%q) accepted a NUL byte", p)
		}
		if escapes {
			t.Fatalf("cleanLocal(%q) = %q, but the path climbs above the root (%s)", p, c, joined)
		}
		checkRootRel(t, "cleanLocal("+strconv.Quote(p)+")", c)
		if want := path.Join(root, c); want != path.Join(root, strings.TrimPrefix(p, "/")) {
			t.Fatalf("cleanLocal(%q) = %q names %s, want %s", p, c, want, path.Join(root, p))
		}
		if again, err := cleanLocal(c); err != nil || again != c {
			t.Fatalf("cleanLocal not stable: %q -> %q -> %q, %v", p, c, again, err)
		}
	})
}

// FuzzParseEndpoint: any text gives either an InvalidError naming the field, or an endpoint whose
// parts are usable: a local or agent path that stays under the root, a host:port with a host
// and a port in 1-65535, and a String that parses again to the same endpoint.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{
		"incoming/a.bin", "/incoming/a.bin", "in/", "a/../b", "../etc/passwd", "", "  ",
		"ftp://u:p%40ss@h.example:2121/dir/f.bin", "ftp://h.example/f.bin", "ftp://h.example//abs/f.bin",
		"ftp://[::1]:2121/x/", "agent://10.0.0.1:7071/big.bin", "agent://10.0.0.1/big.bin",
		"agent://10.0.0.1:7071/../x", "agent://u:p@10.0.0.1:7071/x", "sftp://h/x", "ftp:///x",
		"ftp://u:secret@h:bad/x", "ftp://u:se#cret@h/x", "FTP://H/x",
		"ftp://[fe80::1%25eth0]:21/x", "agent://h:7070", "ftp://u@h/", "ftp://h/a/../../b", "x://",
		"://x", "ftp://h/%zz", "ftp://h/x?y#z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint("source", s)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field != "source" || !strings.HasPrefix(err.Error(), "source: ") {
				t.Fatalf("ParseEndpoint(%q) error %q (%T) is not an InvalidError naming source", s, err, err)
			}
			return
		}
		switch e.Kind {
		case KindLocal:
			checkRootRel(t, "local path", e.Path)
			if e.Host != "" || e.User != "" || e.Password != "" {
				t.Fatalf("local endpoint %q has host/user/password: %+v", s, e)
			}
			again, err := ParseEndpoint("source", "/"+e.Path) // "/": a name of spaces is not empty
			if err != nil || again.Path != e.Path || again.Kind != KindLocal {
				t.Fatalf("local path %q -> %q does not parse to itself: %+v, %v", s, e.Path, again, err)
			}
		case KindAgent:
			checkRootRel(t, "agent path", e.Path)
			if e.User != "" || e.Password != "" {
				t.Fatalf("agent endpoint %q carries credentials: %+v", s, e)
			}
		case KindFTP:
			if e.Path == "" || strings.ContainsAny(e.Path, "\r\n") {
				t.Fatalf("ftp endpoint %q has path %q", s, e.Path)
			}
		default:
			t.Fatalf("ParseEndpoint(%q): kind %d", s, e.Kind)
		}
		if e.Kind != KindLocal {
			h, p, err := net.SplitHostPort(e.Host)
			if err != nil || h == "" {
				t.Fatalf("ParseEndpoint(%q): host %q is not host:port: %v", s, e.Host, err)
			}
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("ParseEndpoint(%q): port %q is not in 1-65535", s, p)
			}
		}
		// The redacted form is what logs, errors and snapshots show: it hides the password and,
		// apart from that, still names the same endpoint.
		shown := e.String()
		if e.Kind == KindFTP && e.Password != "" && strings.Contains(s, "@") {
			if u, err := url.Parse(shown); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && pw != "xxxxx" {
					t.Fatalf("String() of %q = %q keeps password %q", s, shown, pw)
				}
			}
		}
		if e.Kind == KindLocal && shown != s {
			// Only a local path that reads as a URL with a password ("//u:pw@h/x", a URL
			// missing its scheme) is shown otherwise: redacted.
			if !strings.Contains(shown, ":xxxxx@") {
				t.Fatalf("String() of local path %q = %q", s, shown)
			}
			return
		}
		again, err := ParseEndpoint("source", shown)
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse again: %v", s, shown, err)
		}
		if again.Kind != e.Kind || again.Host != e.Host || again.Path != e.Path || again.Dir != e.Dir || again.User != e.User {
			t.Fatalf("String() of %q = %q parses to %+v, want %+v", s, shown, again, e)
		}
	})
}

// secretMark starts every password the secret fuzzers build: text the rest of the input and
// Ferry's messages never hold, so finding it in an error or a String is a leak.
const secretMark = "Qz7pWsecret"

// FuzzEndpointSecret builds a URL whose password starts with secretMark and holds any bytes
// after it (#, /, @, %, ...): neither an error nor the shown form may quote any part of it.
func FuzzEndpointSecret(f *testing.F) {
	f.Add(uint8(0), "u", "hunter2", "h.example:21/x")
	f.Add(uint8(0), "u", "%zz", "h/x")
	f.Add(uint8(0), "u", "a@b", "h:2121/x")
	f.Add(uint8(1), "u", "pw", "10.0.0.1:7071/x")
	f.Add(uint8(2), "u", "pw", "h/x")
	f.Add(uint8(0), "", "x y", "[::1]:21/")
	f.Add(uint8(0), "u", "p", "h:bad/x")
	f.Add(uint8(0), "u", "p\x7f", "h/x")
	f.Fuzz(func(t *testing.T, scheme uint8, user, pass, rest string) {
		// The user part holds no character that ends the authority, so the mark is where a
		// password goes whatever follows.
		user = strings.Map(func(r rune) rune {
			if strings.ContainsRune("/?#@:", r) {
				return -1
			}
			return r
		}, user)
		s := []string{"ftp", "agent", "sftp", "FTP"}[scheme%4] + "://" + user + ":" + secretMark + pass + "@" + rest
		if strings.Count(s, secretMark[:6]) != 1 {
			return // the mark appears elsewhere too: a finding would not be a leak
		}
		e, err := ParseEndpoint("source", s)
		if err != nil {
			if strings.Contains(err.Error(), secretMark[:6]) {
				t.Fatalf("ParseEndpoint(%q) error echoes the password: %v", s, err)
			}
			return
		}
		if e.Kind != KindFTP || !strings.HasPrefix(e.Password, secretMark) {
			t.Fatalf("ParseEndpoint(%q) = %+v: the password is not the one given", s, e)
		}
		for what, v := range map[string]string{"String()": e.String(), "Host": e.Host, "Path": e.Path, "User": e.User, "redact": redact(s)} {
			if strings.Contains(v, secretMark[:6]) {
				t.Fatalf("ParseEndpoint(%q): %s = %q shows the password", s, what, v)
			}
		}
	})
}

// FuzzRedact: redact never panics, is stable, and leaves no password in what it returns: any
// password in its output is the placeholder, and a password of 8 bytes or more that the rest of
// the URL does not hold anyway is not in the output.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"ftp://bob:hunter2@h:21/x", "ftp://bob@h/x", "in/a.bin", "ftp://b:p%2Fw@h/",
		"ftp://:only-a-password@h/", "http://u:pw@[::1]:80/a?b=c#d", "ftp://u:p@h/a@b", "ftp:opaque@x",
		"//u:longpassword@h/x", "ftp://u:p%40ss:more@h/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := redact(s)
		if r2 := redact(r); r2 != r {
			t.Fatalf("redact not stable: %q -> %q -> %q", s, r, r2)
		}
		u, err := url.Parse(s)
		if err != nil {
			if r != s {
				t.Fatalf("redact changed an unparsable string: %q -> %q", s, r)
			}
			return
		}
		if ru, err := url.Parse(r); err == nil && ru.User != nil {
			if pw, ok := ru.User.Password(); ok && pw != "xxxxx" {
				t.Fatalf("redact(%q) = %q still has password %q", s, r, pw)
			}
		}
		if u.User == nil {
			return
		}
		pw, ok := u.User.Password()
		if !ok || len(pw) < 8 || strings.Contains(pw, "xxxxx") || strings.Contains(u.User.Username(), pw) {
			return
		}
		rest := *u
		rest.User = nil
		if strings.Contains(rest.String(), pw) || strings.Contains(u.User.Username(), pw) {
			return
		}
		if strings.Contains(r, pw) {
			t.Fatalf("redact(%q) = %q shows password %q", s, r, pw)
		}
	})
}
