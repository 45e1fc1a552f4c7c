package transfer

import (
	"strings"
	"testing"
)

// TestParseFTPSEndpoints: ftpes:// is explicit FTPS on port 21 by default, ftps:// implicit on
// 990, ftp:// stays plain.
func TestParseFTPSEndpoints(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		tls  TLSMode
	}{
		{"ftp://h.example/f", "h.example:21", TLSNone},
		{"ftpes://u:p@h.example/f", "h.example:21", TLSExplicit},
		{"ftpes://h.example:2121/f", "h.example:2121", TLSExplicit},
		{"ftps://h.example/f", "h.example:990", TLSImplicit},
		{"ftps://[::1]:9990/f", "[::1]:9990", TLSImplicit},
	} {
		e, err := ParseEndpoint("source", tc.in)
		if err != nil || e.Kind != KindFTP || e.Host != tc.host || e.TLS != tc.tls {
			t.Errorf("%s: %+v, %v; want host %s, TLS %v", tc.in, e, err, tc.host, tc.tls)
		}
	}
}

// TestTLSPin: a pin applies only to an FTPS remote and must be a SHA-256; tlsFor pins, or
// verifies against the base configuration's roots, and tells implicit from explicit.
func TestTLSPin(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		src, dst, pin, err string
	}{
		{"ftpes://h/x", "x", good, ""},
		{"x", "ftps://h/x", good, ""},
		{"ftp://h/x", "x", good, "ftpes:// or ftps://"},
		{"ftpes://h/x", "x", "abc", "tls_pin"},
	} {
		src, _ := ParseEndpoint("source", tc.src)
		dst, _ := ParseEndpoint("destination", tc.dst)
		p := plan{src: src, dst: dst, dir: Download}
		if src.Kind == KindLocal {
			p.dir = Upload
		}
		err := p.pin(tc.pin)
		switch {
		case tc.err == "" && (err != nil || p.remote().Pin != tc.pin):
			t.Errorf("%s -> %s: %v, pin %q", tc.src, tc.dst, err, p.remote().Pin)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s -> %s with pin %q: %v, want %q", tc.src, tc.dst, tc.pin, err, tc.err)
		}
	}
	if c, _, _ := tlsFor(nil, TLSNone, ""); c != nil {
		t.Error("plain FTP got a TLS configuration")
	}
	c, implicit, err := tlsFor(nil, TLSImplicit, good)
	if err != nil || !implicit || c.VerifyConnection == nil || !c.InsecureSkipVerify {
		t.Errorf("pinned implicit: %v, implicit %v", err, implicit)
	}
	c, implicit, err = tlsFor(nil, TLSExplicit, "")
	if err != nil || implicit || c.InsecureSkipVerify {
		t.Errorf("CA-verified explicit: %v, implicit %v, insecure %v", err, implicit, c.InsecureSkipVerify)
	}
}
