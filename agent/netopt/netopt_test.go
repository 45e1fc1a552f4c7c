package netopt

import (
	"net"
	"runtime"
	"strings"
	"testing"
)

// TestSetCongestion: the name set on a real TCP connection is what getsockopt reads back; reno
// is built into every Linux kernel and allowed to unprivileged sockets by default.
func TestSetCongestion(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-socket congestion control is Linux-only here")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	defer s.Close()
	if err := SetCongestion(s, "reno"); err != nil {
		t.Fatal(err)
	}
	if got, err := Congestion(s); err != nil || got != "reno" {
		t.Fatalf("Congestion = %q, %v; want reno", got, err)
	}
	if err := SetCongestion(s, ""); err != nil {
		t.Errorf("empty name: %v", err)
	}
	if err := SetCongestion(s, "nosuchcc"); err == nil {
		t.Error("an unknown algorithm was accepted")
	}
}

func TestResolve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux-only")
	}
	if name, note, err := Resolve("system"); name != "" || note != "" || err != nil {
		t.Errorf("Resolve(system) = %q, %q, %v", name, note, err)
	}
	if name, _, err := Resolve("reno"); name != "reno" || err != nil {
		t.Errorf("Resolve(reno) = %q, %v", name, err)
	}
	name, note, err := Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	if name != DefaultCongestion && (name != "" || note == "") {
		t.Errorf("Resolve(\"\") = %q, %q: want bbr, or the system default with a note", name, note)
	}
	for _, bad := range []string{"nosuchcc", "BBR!", strings.Repeat("a", 16)} {
		if _, _, err := Resolve(bad); err == nil || !strings.HasPrefix(err.Error(), "tcp-congestion:") {
			t.Errorf("Resolve(%q): %v, want an error naming tcp-congestion", bad, err)
		}
	}
}
