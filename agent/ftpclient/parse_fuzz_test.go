package ftpclient

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memConn is a net.Conn that reads a fixed byte stream and discards writes: the reply reader
// driven without sockets or goroutines.
type memConn struct {
	r      *bytes.Reader
	closed bool
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { c.closed = true; return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// checkErrText fails unless an error message is bounded printable ASCII: remote text reaches
// errors only as a short excerpt.
func checkErrText(t *testing.T, err error, limit int) {
	t.Helper()
	msg := err.Error()
	if len(msg) > limit {
		t.Fatalf("error is %d bytes (limit %d): %.200q", len(msg), limit, msg)
	}
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; (c < 0x20 && c != '\n') || c > 0x7e {
			t.Fatalf("error holds byte %#x: %q", c, msg)
		}
	}
}

// modelReplies is the reply grammar the reader implements, written plainly over the whole
// stream: lines end at LF (CR and LF trimmed from the end), a reply is "ddd text" or
// "ddd-text" ... "ddd text" with the same code; it stops at the first line that breaks a cap,
// at a malformed first line, at a 421 or at the end of the stream.
func modelReplies(stream []byte) (replies []*reply, tooLong bool) {
	lines := bytes.SplitAfter(stream, []byte("\n"))
	i := 0
	next := func(n *int) (string, bool, bool) { // line, complete, too long
		if i >= len(lines) || len(lines[i]) == 0 {
			return "", false, false
		}
		l := lines[i]
		i++
		*n += len(l)
		if len(l) > maxLine+2 || *n > maxReplyBytes {
			return "", false, true
		}
		if l[len(l)-1] != '\n' {
			return "", false, false
		}
		return strings.TrimRight(string(l), "\r\n"), true, false
	}
	for {
		n := 0
		line, ok, long := next(&n)
		if !ok {
			return replies, long
		}
		code, sep, ok := parseCodeLine(line)
		if !ok {
			return replies, false
		}
		r := &reply{Code: code, Lines: []string{textOf(line)}}
		for sep == '-' {
			line, ok, long := next(&n)
			if !ok {
				return replies, long
			}
			if c2, s2, ok := parseCodeLine(line); ok && c2 == code {
				line = textOf(line)
				sep = s2
			}
			r.Lines = append(r.Lines, line)
		}
		if code == 421 {
			return replies, false
		}
		replies = append(replies, r)
	}
}

// FuzzReadReply drives the control-connection reply reader with a byte stream (head, then mid
// repeated, then tail: big replies from small inputs) and checks it against modelReplies: the
// same replies, codes in 100-999, every line within maxLine and every reply within
// maxReplyBytes, ErrReplyTooLong exactly when a cap is broken, a broken client after any error,
// and errors that quote the server only as a short printable excerpt.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("220 Welcome\r\n"), []byte{}, uint16(0), []byte("230 ok\r\n"))
	f.Add([]byte("220-Welcome\r\n"), []byte(" line\r\n"), uint16(3), []byte("220 done\r\n"))
	f.Add([]byte("211-Features:\r\n"), []byte(" MLST type*;size*;\r\n"), uint16(2), []byte("211 End\r\n213 1\n"))
	f.Add([]byte("150 opening\r\n"), []byte{}, uint16(0), []byte("226 done\r\n"))
	f.Add([]byte("421 bye\r\n"), []byte{}, uint16(0), []byte("200 x\r\n"))
	f.Add([]byte("220-a\r\n"), []byte("220-b\r\n"), uint16(9), []byte("220-c\r\n220 d"))
	f.Add([]byte("220 "), []byte("x"), uint16(9000), []byte("\r\n"))
	f.Add([]byte("220-"), []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), uint16(17000), []byte("220 end\r\n"))
	f.Add([]byte("2x0 hi\r\n"), []byte{}, uint16(0), []byte{})
	f.Add([]byte("099 hi\r\n"), []byte{}, uint16(0), []byte{})
	f.Add([]byte("\xff\x00\x1b[31m\r\n"), []byte{}, uint16(0), []byte{})
	f.Add([]byte("200"), []byte{}, uint16(0), []byte("\n200-\n200\n"))
	f.Fuzz(func(t *testing.T, head, mid []byte, repeat uint16, tail []byte) {
		const maxStream = 3 << 20
		n := int(repeat)
		if len(mid) > 0 && len(head)+len(mid)*n+len(tail) > maxStream {
			n = (maxStream - len(head) - len(tail)) / len(mid)
		}
		if n < 0 {
			n = 0
		}
		stream := make([]byte, 0, len(head)+len(mid)*n+len(tail))
		stream = append(stream, head...)
		for range n {
			stream = append(stream, mid...)
		}
		stream = append(stream, tail...)

		conn := &memConn{r: bytes.NewReader(stream)}
		c := &Client{cfg: Config{Addr: "fuzz:21"}, conn: conn, r: bufio.NewReader(conn)}
		want, wantLong := modelReplies(stream)
		var got []*reply
		var err error
		for len(got) <= len(want) {
			var r *reply
			if r, err = c.readReply(time.Second); err != nil {
				break
			}
			if r.Code < 100 || r.Code > 999 || len(r.Lines) == 0 {
				t.Fatalf("reply %d: code %d, %d lines", len(got), r.Code, len(r.Lines))
			}
			total := 0
			for _, l := range r.Lines {
				if len(l) > maxLine {
					t.Fatalf("reply %d: a line of %d bytes (maxLine %d)", len(got), len(l), maxLine)
				}
				total += len(l)
			}
			if total > maxReplyBytes {
				t.Fatalf("reply %d: %d bytes (maxReplyBytes %d)", len(got), total, maxReplyBytes)
			}
			got = append(got, r)
		}
		if err == nil {
			t.Fatalf("read %d replies, the model %d", len(got), len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("read %d replies, the model %d (stopped with %v)", len(got), len(want), err)
		}
		for i := range got {
			if got[i].Code != want[i].Code || strings.Join(got[i].Lines, "\n") != strings.Join(want[i].Lines, "\n") || len(got[i].Lines) != len(want[i].Lines) {
				t.Fatalf("reply %d = %d %.200q, model %d %.200q", i, got[i].Code, got[i].Lines, want[i].Code, want[i].Lines)
			}
		}
		if errors.Is(err, ErrReplyTooLong) != wantLong {
			t.Fatalf("after %d replies: error %v, model says too long: %v", len(got), err, wantLong)
		}
		if c.alive() == nil || !conn.closed {
			t.Fatalf("reader failed with %v but the client is not broken", err)
		}
		checkErrText(t, err, 400)
	})
}

// FuzzParseCodeLine: a line is a reply line only when it starts with a code of three digits in
// 100-999 followed by nothing, a space or a dash; the code is those digits.
func FuzzParseCodeLine(f *testing.F) {
	for _, s := range []string{"220 ok", "220-more", "220", "22", "099 x", "999-", "2200", "+20 x", "２２０ x", "220\tx", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		code, sep, ok := parseCodeLine(line)
		if !ok {
			if code != 0 || sep != 0 {
				t.Fatalf("parseCodeLine(%q) = %d %q, false", line, code, sep)
			}
			return
		}
		if code < 100 || code > 999 || len(line) < 3 || strconv.Itoa(code) != line[:3] {
			t.Fatalf("parseCodeLine(%q) = code %d", line, code)
		}
		if len(line) == 3 && sep != ' ' || len(line) > 3 && sep != line[3] || sep != ' ' && sep != '-' {
			t.Fatalf("parseCodeLine(%q) = sep %q", line, sep)
		}
		if textOf(line) != strings.TrimPrefix(line[3:], string(sep)) && len(line) > 3 {
			t.Fatalf("textOf(%q) = %q", line, textOf(line))
		}
	})
}

// FuzzParsePASV: a PASV reply gives an IPv4 address and a port in 1-65535, or an error quoting
// the reply only as a short excerpt.
func FuzzParsePASV(f *testing.F) {
	for _, s := range []string{"Entering Passive Mode (127,0,0,1,4,1)", "=127,0,0,1,4,1", "(10,0,0,1,255,255)",
		"(1,2,3,4,0,21)", "(256,0,0,1,1,1)", "(1,2,3,4,5)", "(1,2,3,4,5,6,7)", "(-1,2,3,4,5,6)",
		"Entering Passive Mode", "(01,002,0003,4,5,6)", "(1,2,3,4,99999999999999999999,1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		ip, port, err := parsePASV(msg)
		if err != nil {
			checkErrText(t, err, 400)
			return
		}
		if !ip.Is4() || port < 1 || port > 65535 {
			t.Fatalf("parsePASV(%q) = %v, %d", msg, ip, port)
		}
	})
}

// FuzzParseEPSV: an EPSV reply gives a port in 1-65535 written in the reply, or an error quoting
// the reply only as a short excerpt.
func FuzzParseEPSV(f *testing.F) {
	for _, s := range []string{"Entering Extended Passive Mode (|||6446|)", "(|||0|)", "(|||65536|)", "(!!!21!)",
		"(|||21)", "(||||)", "(|1|2|3|)", "((|||1|)", "(|||1|))", ")(", "(1112341)", "(|||+80|)", "(|||0080|)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		port, err := parseEPSV(msg)
		if err != nil {
			checkErrText(t, err, 400)
			return
		}
		if port < 1 || port > 65535 || !strings.Contains(msg, strconv.Itoa(port)) {
			t.Fatalf("parseEPSV(%q) = %d", msg, port)
		}
	})
}

// FuzzParseMLSx: an MLSD/MLST fact line gives an entry with a name and a size that is not
// negative, or an error quoting the line only as a short excerpt.
func FuzzParseMLSx(f *testing.F) {
	for _, s := range []string{"type=file;size=12;modify=20240101120000; name", "type=dir;modify=20240101120000.123; d",
		"type=cdir; /x", "type=pdir; ..", "size=99999999999999999999; big", "modify=2024; m",
		"type=OS.unix=slink:/x; l", "noname", "type=file; name with  spaces", " ", "", "a=b;c; x", "modify=20240101120000.; m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, ok, err := parseMLSx(line)
		if err != nil {
			checkErrText(t, err, 400)
			return
		}
		if !ok {
			if strings.TrimSpace(line) != "" {
				t.Fatalf("parseMLSx(%q) skipped a line that is not blank", line)
			}
			return
		}
		if e.Name == "" || e.Size < 0 {
			t.Fatalf("parseMLSx(%q) = %+v", line, e)
		}
	})
}

// FuzzParseLIST: an "ls -l" line gives an entry with a name and a size that is not negative,
// is skipped (blank, "total"), or is an error quoting the line only as a short excerpt.
func FuzzParseLIST(f *testing.F) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"-rw-r--r--    1 0        0         5242880 Mar 02 12:34 name with  spaces",
		"drwxr-xr-x    2 0        0            4096 Mar 02  2023 dir",
		"-rw-r--r--    1 ftp            5 Dec 31 23:59 nogroup",
		"lrwxrwxrwx    1 0        0               7 Jan 01 00:00 link -> target",
		"-rw-r--r--    1 0        0               5 Mar 02 12:34 ",
		"-rw-r--r--    1 0        0               5 Mar 32 12:34 x",
		"-rw-r--r--    1 0        0               5 Mar 02 1x:34 x",
		"total 12", "", "   ", "drwx 1 2 3 4 Jan 1 2020",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, ok, err := parseLIST(line, now)
		if err != nil {
			checkErrText(t, err, 400)
			return
		}
		if !ok {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "total ") {
				t.Fatalf("parseLIST(%q) skipped a line that is not blank or total", line)
			}
			return
		}
		if e.Name == "" || e.Size < 0 || e.IsDir != (line[0] == 'd') {
			t.Fatalf("parseLIST(%q) = %+v", line, e)
		}
		if line[0] == 'l' && strings.Contains(e.Name, " -> ") {
			t.Fatalf("parseLIST(%q): link name %q keeps its target", line, e.Name)
		}
	})
}

// FuzzParseHash: a HASH reply gives an upper-case algorithm and a non-empty lower-case hex sum
// (64 digits for SHA-256), or an error quoting the reply only as a short excerpt.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{"SHA-256 0-49 169cd22282da7f147cb491e559e9dd7f8e4e3c2b6a1d0e9f8a7b6c5d4e3f2a1b filename",
		"sha-256 0-1 AB f", "MD5 0-1 d41d8cd98f00b204e9800998ecf8427e f", "SHA-256 0-1 abc f", "SHA-256 0-1",
		"a\nSHA-1 0-1 00 f", "", "X 0-1 zz f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		r := &reply{Code: 213, Lines: strings.Split(msg, "\n")}
		algo, sum, err := parseHash(r)
		if err != nil {
			checkErrText(t, err, 400)
			return
		}
		if algo == "" || algo != strings.ToUpper(algo) || sum == "" || sum != strings.ToLower(sum) || len(sum)%2 != 0 ||
			strings.Trim(sum, "0123456789abcdef") != "" || (algo == "SHA-256" && len(sum) != 64) {
			t.Fatalf("parseHash(%q) = %q, %q", msg, algo, sum)
		}
	})
}

// FuzzParsePWD: the directory of a 257 reply is the text between the first quote and the next
// single quote, with doubled quotes undone; any directory survives quoting and parsing.
func FuzzParsePWD(f *testing.F) {
	for _, s := range []string{`"/" is current`, `"/a ""quoted"" dir" is current`, `no quotes`, `"unterminated`,
		`""`, `"""`, `x "/y" "z"`, `"a""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		dir, err := parsePWD(msg)
		if err != nil {
			checkErrText(t, err, 400)
		} else {
			quoted := `"` + strings.ReplaceAll(dir, `"`, `""`) + `"`
			if i := strings.IndexByte(msg, '"'); !strings.HasPrefix(msg[i:], quoted) {
				t.Fatalf("parsePWD(%q) = %q, not what the reply quotes", msg, dir)
			}
		}
		// Round trip: msg taken as a directory name, quoted as a server quotes it.
		got, err := parsePWD(`"` + strings.ReplaceAll(msg, `"`, `""`) + `" is the current directory`)
		if err != nil || got != msg {
			t.Fatalf("parsePWD of quoted %q = %q, %v", msg, got, err)
		}
	})
}
