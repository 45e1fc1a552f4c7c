package main

import (
	"bytes"
	"net"
	"strings"
	"time"
)

const defaultPort = "7070"

// agentTarget completes an --agent address: a host without a port gets the agent's default
// gRPC port (7070), not gRPC's 443. unix:// and other schemes pass through.
func agentTarget(s string) string {
	if strings.Contains(s, "://") || strings.HasPrefix(s, "unix:") {
		return s
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	return net.JoinHostPort(host, defaultPort)
}

// speaksOther names the protocol of a TCP address that is no gRPC server, by its first bytes:
// "FTP" for a "220 " greeting, "SSH" or "HTTP/1"; "" when it cannot tell (or nothing listens).
// Bounded to about a second; it sends nothing.
func speaksOther(addr string) string {
	if strings.Contains(addr, "://") {
		return ""
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	b := buf[:n]
	switch {
	case bytes.HasPrefix(b, []byte("220 ")) || bytes.HasPrefix(b, []byte("220-")):
		return "FTP"
	case bytes.HasPrefix(b, []byte("SSH-")):
		return "SSH"
	case bytes.HasPrefix(b, []byte("HTTP/1")):
		return "HTTP/1"
	}
	return ""
}
