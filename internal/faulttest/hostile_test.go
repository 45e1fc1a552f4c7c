package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
)

// hostileKind says how a hostileServer misbehaves.
type hostileKind int

const (
	// endlessListing logs in, says every path is a directory and answers LIST with a listing
	// that never ends.
	endlessListing hostileKind = iota
	// endlessLine greets with a reply line that never ends ("220 aaaa…", no CR LF ever).
	endlessLine
	// endlessMultiline greets with a multi-line reply that never ends ("220-…" lines forever).
	endlessMultiline
)

// hostileServer is a deliberately hostile FTP server written for these tests: it speaks just
// enough FTP to lead a client into the trap of its kind, then floods it as fast as the client
// reads. It serves inside a bed host; the test's cleanup closes everything.
type hostileServer struct {
	kind hostileKind
	host *testbed.Host
	ln   net.Listener

	mu    sync.Mutex
	conns []io.Closer
	sent  int64 // bytes of flood written
}

func startHostile(t *testing.T, h *testbed.Host, addr string, kind hostileKind) *hostileServer {
	t.Helper()
	ln, err := h.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &hostileServer{kind: kind, host: h, ln: ln}
	s.track(ln)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.track(c)
			go s.serve(c)
		}
	}()
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *hostileServer) track(c io.Closer) {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
}

func (s *hostileServer) flooded() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// flood writes chunk to w until a write fails (the client hung up) or 4 GiB have gone.
func (s *hostileServer) flood(w io.Writer, chunk []byte) {
	for i := 0; i < (4<<30)/len(chunk); i++ {
		n, err := w.Write(chunk)
		s.mu.Lock()
		s.sent += int64(n)
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *hostileServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	switch s.kind {
	case endlessLine:
		_, _ = io.WriteString(c, "220 ")
		s.flood(c, []byte(strings.Repeat("a", 64<<10)))
		return
	case endlessMultiline:
		_, _ = io.WriteString(c, "220-Welcome\r\n")
		var b strings.Builder
		for b.Len() < 64<<10 {
			b.WriteString(" and welcome again, this greeting never ends\r\n")
		}
		s.flood(c, []byte(b.String()))
		return
	}
	reply := func(line string) bool {
		_, err := io.WriteString(c, line+"\r\n")
		return err == nil
	}
	reply("220 hostile test server")
	var pasv net.Listener
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		ok := true
		switch strings.ToUpper(verb) {
		case "USER":
			ok = reply("331 password please")
		case "PASS":
			ok = reply("230 logged in")
		case "TYPE", "OPTS", "MODE", "STRU":
			ok = reply("200 ok")
		case "FEAT":
			ok = reply("211-Features:\r\n EPSV\r\n PASV\r\n REST STREAM\r\n SIZE\r\n211 End")
		case "SIZE", "MDTM", "HASH", "MLST":
			ok = reply("550 not a plain file")
		case "PWD":
			ok = reply(`257 "/" is the current directory`)
		case "CWD":
			ok = reply("250 ok")
		case "EPSV", "PASV":
			if pasv != nil {
				pasv.Close()
			}
			pasv, err = s.host.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				ok = reply("425 cannot listen")
				break
			}
			s.track(pasv)
			port := pasv.Addr().(*net.TCPAddr).Port
			if strings.EqualFold(verb, "EPSV") {
				ok = reply(fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", port))
			} else {
				ok = reply(fmt.Sprintf("227 Entering Passive Mode (127,0,0,1,%d,%d)", port/256, port%256))
			}
		case "LIST", "NLST", "MLSD":
			if pasv == nil {
				ok = reply("425 use PASV first")
				break
			}
			if ok = reply("150 here comes a very long listing"); !ok {
				return
			}
			_ = pasv.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
			d, err := pasv.Accept()
			if err != nil {
				continue
			}
			s.track(d)
			var b strings.Builder
			for i := 0; b.Len() < 64<<10; i++ {
				fmt.Fprintf(&b, "-rw-r--r--   1 ftp      ftp          1024 Jan 01 00:00 file-%08d-with-a-long-name.bin\r\n", i)
			}
			go func() {
				defer d.Close()
				s.flood(d, []byte(b.String()))
			}()
		case "ABOR":
			ok = reply("226 aborted")
		case "QUIT":
			reply("221 bye")
			return
		default:
			ok = reply("502 not implemented")
		}
		if !ok {
			return
		}
	}
}
