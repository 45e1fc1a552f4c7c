package ftpclient

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNotFTPGreeting: a remote whose greeting is no FTP reply (a 10 KB binary banner without a
// line end, or an HTTP reply) fails Dial with ErrNotFTP, quoting at most a 120-character
// printable excerpt.
func TestNotFTPGreeting(t *testing.T) {
	bin := make([]byte, 10<<10)
	for i := range bin {
		bin[i] = byte(i*13 + 1)
		if bin[i] == '\n' {
			bin[i] = 0xff
		}
	}
	for name, banner := range map[string]string{
		"binary": string(bin),
		"http":   "HTTP/1.1 400 Bad Request\r\nServer: " + strings.Repeat("x", 5000) + "\r\n\r\n",
		"ssh":    "SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.Write([]byte(banner))
				time.Sleep(time.Second)
			}()
			_, err = Dial(context.Background(), Config{Addr: ln.Addr().String(), DialTimeout: 5 * time.Second})
			if !errors.Is(err, ErrNotFTP) {
				t.Fatalf("Dial: %v, want ErrNotFTP", err)
			}
			msg := err.Error()
			q := strings.Index(msg, `"`)
			quoted, uerr := strconv.Unquote(msg[max(q, 0):])
			if q < 0 || uerr != nil || len(quoted) > excerptLen+len("...") {
				t.Errorf("excerpt too long (%d bytes) or not quoted (%v): %q", len(quoted), uerr, msg)
			}
			for _, r := range msg {
				if r < 0x20 || r > 0x7e {
					t.Fatalf("error holds %q: %q", r, msg)
				}
			}
		})
	}
}
