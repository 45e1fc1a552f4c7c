package transfer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	good := map[string]allowRule{
		"10.0.0.0/8":            {prefix: netip.MustParsePrefix("10.0.0.0/8")},
		"10.1.2.3/8:21":         {prefix: netip.MustParsePrefix("10.0.0.0/8"), lo: 21, hi: 21},
		"192.0.2.7:2121-2130":   {prefix: netip.MustParsePrefix("192.0.2.7/32"), lo: 2121, hi: 2130},
		"192.0.2.7:*":           {prefix: netip.MustParsePrefix("192.0.2.7/32")},
		"2001:db8::/32":         {prefix: netip.MustParsePrefix("2001:db8::/32")},
		"[2001:db8::/32]:21":    {prefix: netip.MustParsePrefix("2001:db8::/32"), lo: 21, hi: 21},
		"[::1]:7070":            {prefix: netip.MustParsePrefix("::1/128"), lo: 7070, hi: 7070},
		"FTP.Example.com:21":    {host: "ftp.example.com", lo: 21, hi: 21},
		"*.example.com":         {host: "*.example.com"},
		"169.254.169.254/32:80": {prefix: netip.MustParsePrefix("169.254.169.254/32"), lo: 80, hi: 80},
	}
	for s, want := range good {
		p, err := ParsePolicy([]string{s})
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		got := p.rules[0]
		got.text = ""
		if got != want {
			t.Errorf("%q = %+v, want %+v", s, got, want)
		}
	}
	for _, s := range []string{"", ":21", "10.0.0.0/8:0", "10.0.0.0/8:22-21", "10.0.0.0/8:70000", "host:x",
		"[::1", "[::1]21", "10.0.0.0/33", "a b", "*"} {
		if _, err := ParsePolicy([]string{s}); err == nil || !strings.HasPrefix(err.Error(), "allow-remote ") {
			t.Errorf("%q: %v, want an error naming allow-remote", s, err)
		}
	}
}

func TestPolicyDecisions(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "metadata.test":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		case "mixed.test":
			return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fe80::1")}, nil
		case "ftp.example.com", "a.example.com", "example.com":
			return []netip.Addr{netip.MustParseAddr("198.51.100.7")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	cases := []struct {
		rules []string
		addr  string
		ok    bool
	}{
		// No rules: everything but link-local.
		{nil, "127.0.0.5:2222", true},
		{nil, "192.0.2.1:21", true},
		{nil, "[2001:db8::1]:21", true},
		{nil, "169.254.169.254:80", false},
		{nil, "[::ffff:169.254.169.254]:80", false},
		{nil, "[fe80::1%eth0]:21", false},
		{nil, "metadata.test:80", false}, // a name is resolved, its addresses checked
		{nil, "mixed.test:21", false},    // every address
		{nil, "ftp.example.com:21", true},
		// Rules: only what they allow.
		{[]string{"10.0.0.0/8"}, "10.2.3.4:21", true},
		{[]string{"10.0.0.0/8"}, "127.0.0.1:21", false},
		{[]string{"10.0.0.0/8:21"}, "10.2.3.4:2121", false},
		{[]string{"10.0.0.0/8:2121-2130"}, "10.2.3.4:2125", true},
		{[]string{"ftp.example.com:21"}, "ftp.example.com:21", true},
		{[]string{"ftp.example.com:21"}, "FTP.example.com.:21", true},
		{[]string{"ftp.example.com:21"}, "198.51.100.7:21", false}, // the name, not its address
		{[]string{"*.example.com"}, "a.example.com:990", true},
		{[]string{"*.example.com"}, "example.com:21", false},
		// Link-local only when a rule names it, not with a catch-all.
		{[]string{"0.0.0.0/0"}, "169.254.169.254:80", false},
		{[]string{"0.0.0.0/0"}, "192.0.2.1:80", true},
		{[]string{"metadata.test"}, "metadata.test:80", false},
		{[]string{"169.254.169.254:80"}, "169.254.169.254:80", true},
		{[]string{"169.254.169.254:80"}, "169.254.169.254:81", false},
		{[]string{"169.254.0.0/16"}, "metadata.test:80", true},
	}
	for _, tc := range cases {
		p, err := ParsePolicy(tc.rules)
		if err != nil {
			t.Fatal(err)
		}
		p.Lookup = lookup
		err = p.Check(context.Background(), tc.addr)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrPolicy) {
			t.Errorf("rules %q, %s: %v, want allowed=%v", tc.rules, tc.addr, err, tc.ok)
		}
		if !tc.ok && err != nil && !strings.Contains(err.Error(), "refused by policy (--allow-remote)") {
			t.Errorf("message: %v", err)
		}
	}
	// The message names the address, and the resolved address of a name.
	p := &Policy{Lookup: lookup}
	if err := p.Check(context.Background(), "169.254.169.254:80"); err == nil ||
		!strings.HasPrefix(err.Error(), "outbound connection to 169.254.169.254:80 refused by policy (--allow-remote)") {
		t.Errorf("message: %v", err)
	}
	if err := p.Check(context.Background(), "metadata.test:80"); err == nil ||
		!strings.HasPrefix(err.Error(), "outbound connection to metadata.test:80 (169.254.169.254) refused by policy") {
		t.Errorf("message: %v", err)
	}
	// A refused connection is permanent, of its own kind, and reads permission_denied.
	err := classify(&controlError{addr: "169.254.169.254:80", err: p.Check(context.Background(), "169.254.169.254:80")})
	if transient(err) || ErrorCode(err) != "permission_denied" || errors.Is(err, ErrUnreachable) {
		t.Errorf("refused connection: transient=%v code=%q unreachable=%v", transient(err), ErrorCode(err), errors.Is(err, ErrUnreachable))
	}
}

// TestSessionDialer: the control connection is checked; a data connection to the host it
// reached is allowed on any port; another host is checked.
func TestSessionDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	data, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	p, err := ParsePolicy([]string{ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sd := p.sessionDialer()
	if _, err := sd.DialContext(ctx, "tcp", data.Addr().String()); !errors.Is(err, ErrPolicy) {
		t.Errorf("data port before the control connection: %v, want refused", err)
	}
	c, err := sd.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	c.Close()
	c, err = sd.DialContext(ctx, "tcp", data.Addr().String())
	if err != nil {
		t.Fatalf("data connection to the control host: %v", err)
	}
	c.Close()
	if _, err := sd.DialContext(ctx, "tcp", "169.254.169.254:80"); !errors.Is(err, ErrPolicy) {
		t.Errorf("data connection elsewhere: %v, want refused", err)
	}
}
