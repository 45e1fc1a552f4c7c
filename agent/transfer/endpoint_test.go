package transfer

import (
	"errors"
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		in   string
		want Endpoint
		err  string // substring of the error; "" means success
	}{
		{in: "incoming/a.bin", want: Endpoint{Kind: KindLocal, Path: "incoming/a.bin"}},
		{in: "/incoming/a.bin", want: Endpoint{Kind: KindLocal, Path: "incoming/a.bin"}},
		{in: "in/", want: Endpoint{Kind: KindLocal, Path: "in", Dir: true}},
		{in: "a/../b", want: Endpoint{Kind: KindLocal, Path: "b"}},
		{in: "../etc/passwd", err: "escapes the agent root"},
		{in: "a/../../b", err: "escapes the agent root"},
		{in: "", err: "is empty"},
		{in: "ftp://u:p%40ss@h.example:2121/dir/f.bin", want: Endpoint{Kind: KindFTP, Host: "h.example:2121", User: "u", Password: "p@ss", Path: "dir/f.bin"}},
		{in: "ftp://h.example/f.bin", want: Endpoint{Kind: KindFTP, Host: "h.example:21", User: "anonymous", Password: "ferry@", Path: "f.bin"}},
		{in: "ftp://h.example//abs/f.bin", want: Endpoint{Kind: KindFTP, Host: "h.example:21", User: "anonymous", Password: "ferry@", Path: "/abs/f.bin"}},
		{in: "ftp://[::1]:2121/x/", want: Endpoint{Kind: KindFTP, Host: "[::1]:2121", User: "anonymous", Password: "ferry@", Path: "x", Dir: true}},
		{in: "agent://10.0.0.1:7071/big.bin", want: Endpoint{Kind: KindAgent, Host: "10.0.0.1:7071", Path: "big.bin"}},
		{in: "agent://10.0.0.1/big.bin", want: Endpoint{Kind: KindAgent, Host: "10.0.0.1:7070", Path: "big.bin"}},
		{in: "agent://10.0.0.1:7071/../x", err: "escapes"},
		{in: "agent://u:p@10.0.0.1:7071/x", err: "carry no credentials"},
		{in: "sftp://h/x", err: "not supported"},
		{in: "ftp:///x", err: "has no host"},
		{in: "ftp://u:secret@h:bad/x", err: "not a valid URL"},
	}
	for _, c := range cases {
		got, err := ParseEndpoint("source", c.in)
		if c.err != "" {
			var inv *InvalidError
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &inv) || inv.Field != "source" {
				t.Errorf("ParseEndpoint(%q) error = %v, want InvalidError naming source containing %q", c.in, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error echoes the password: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", c.in, err)
			continue
		}
		got.raw = ""
		if got != c.want {
			t.Errorf("ParseEndpoint(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestRedact(t *testing.T) {
	e, err := ParseEndpoint("source", "ftp://bob:hunter2@h:21/x")
	if err != nil {
		t.Fatal(err)
	}
	if s := e.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "bob:xxxxx@") {
		t.Errorf("String() = %q", s)
	}
}

// TestParseErrorsHideSecrets: a URL that does not parse is refused without quoting any of it,
// so no part of a password shows, whatever characters it holds.
func TestParseErrorsHideSecrets(t *testing.T) {
	for _, s := range []string{
		"ftp://u:pa#ss@host/x", "ftp://u:secret%zz@h/x", "ftp://u:sec ret@h/x",
		"ftp://u:se/cret@h/x", "ftp://u:s?cret@h:21/x", "ftp://u:\x00secret@h/x",
	} {
		_, err := ParseEndpoint("source", s)
		if err == nil {
			continue // parsed: String() redacts the password (TestRedact)
		}
		const plain = "source: is not a valid URL"
		if msg := err.Error(); msg != plain && !strings.HasPrefix(msg, plain+" (a user name or password holding") {
			t.Errorf("%q: error %q quotes the input", s, msg)
		}
	}
}
