package ftpserver

import (
	"bytes"
	"strconv"
	"strings"
)

// Digests in transfer replies (a Ferry extension, offered in FEAT as XDIGEST). A client that
// sends "OPTS XDIGEST ON" gets, in the 226 reply to a RETR sent to the end of the file or to a
// STOR that wrote a whole file, the file's SHA-256:
//
//	226 Closing transfer connection; SHA-256 0-<size> <64 hex digits>
//
// (the range and digest as HASH words them): the digest HASH would answer right after (the one the server computed while it sent or
// received the file), so the client's check of what it moved needs no HASH round trip. Other
// clients, and transfers of part of a file, get the library's reply unchanged. Ferry's client
// sends the option in its pipelined login (ftpclient), where it costs no round trip.

const (
	digestFeat   = "XDIGEST"
	digestPrefix = "; SHA-256 "
)

// optsDigest answers "OPTS XDIGEST ON|OFF"; ok is false for other OPTS.
func (c *controlConn) optsDigest(param string) (reply string, ok bool) {
	name, arg, _ := strings.Cut(strings.TrimSpace(param), " ")
	if !strings.EqualFold(name, digestFeat) {
		return "", false
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "ON":
		c.digests = true
		return "200 XDIGEST on: 226 replies carry the file's SHA-256.", true
	case "OFF":
		c.digests = false
		return "200 XDIGEST off.", true
	}
	return "501 OPTS XDIGEST takes ON or OFF.", true
}

// wantsDigest reports whether the client asked for digests in transfer replies (c may be nil).
func (c *controlConn) wantsDigest() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.digests
}

// transferDigest keeps the digest of a file of size bytes for the running transfer's 226, if
// the client asked for it.
func (c *controlConn) transferDigest(size int64, sum string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.digests {
		c.xferSum = "0-" + strconv.FormatInt(size, 10) + " " + sum
	}
}

// digestReply appends the digest to a 226 reply line.
func digestReply(line []byte, sum string) []byte {
	text := bytes.TrimRight(line, "\r\n")
	out := make([]byte, 0, len(text)+len(digestPrefix)+len(sum)+2)
	out = append(append(append(out, text...), digestPrefix...), sum...)
	return append(out, "\r\n"...)
}
