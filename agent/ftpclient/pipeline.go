package ftpclient

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// PipelineMarker in a server's 220 greeting announces login pipelining: the server reads the
// commands of a login sent in one write in order, drops no input after PASS, and reads a TLS
// ClientHello sent right behind AUTH TLS (Ferry agents greet "220 Ferry FTP server ready
// (login pipelining)"). Dial then sends PBSZ 0 and PROT P (FTPS), USER, PASS, TYPE I, FEAT and
// OPTS UTF8 ON at once after the TLS handshake and reads the replies in order: one round trip
// instead of seven. Other servers get one command at a time.
const PipelineMarker = "(login pipelining)"

// pipelines reports whether a greeting announces login pipelining.
func pipelines(greeting *reply) bool {
	return strings.Contains(greeting.msg(), PipelineMarker)
}

// pipeliners are the server addresses whose last greeting announced PipelineMarker: an explicit
// FTPS session to one of them sends AUTH TLS and the ClientHello without waiting for the
// greeting (earlyTLS: two round trips less). A server at such an address that turns out not to
// announce the marker is forgotten. Bounded: the set starts over when full.
var pipeliners struct {
	sync.Mutex
	m map[string]struct{}
}

const maxPipeliners = 1024

func knownPipeliner(addr string) bool {
	pipeliners.Lock()
	defer pipeliners.Unlock()
	_, ok := pipeliners.m[addr]
	return ok
}

func rememberPipeliner(addr string, yes bool) {
	pipeliners.Lock()
	defer pipeliners.Unlock()
	switch {
	case !yes:
		delete(pipeliners.m, addr)
	case pipeliners.m == nil || len(pipeliners.m) >= maxPipeliners:
		pipeliners.m = map[string]struct{}{addr: {}}
	default:
		pipeliners.m[addr] = struct{}{}
	}
}

// Pipelined reports whether Dial sent the login in one write (the server announced
// PipelineMarker in its greeting).
func (c *Client) Pipelined() bool { return c.pipelined }

// loginPipelined is the rest of login on a server that announced PipelineMarker: the commands go
// in one write, then each reply is read and checked in order, as login checks them one by one
// (same errors). The first failure ends it: the replies still due are not awaited (Dial fails
// the session), so a server that hangs up after refusing PASS costs no wait; every read is
// bounded by ReplyTimeout. PASS is sent even if USER turns out to need none (230), to the same
// server over the same connection; its reply is then read and ignored.
func (c *Client) loginPipelined(user string) error {
	explicit := c.cfg.TLS != nil && !c.cfg.Implicit
	var b strings.Builder
	if explicit {
		b.WriteString("PBSZ 0\r\nPROT P\r\n")
	}
	// The password is never part of an error: only the replies are.
	b.WriteString("USER " + user + "\r\nPASS " + c.cfg.Password + "\r\n")
	if c.cfg.Implicit {
		b.WriteString("PBSZ 0\r\nPROT P\r\n")
	}
	b.WriteString("TYPE I\r\nFEAT\r\nOPTS UTF8 ON\r\nOPTS " + digestOpt + "\r\n")
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.cfg.ReplyTimeout))
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		err = fmt.Errorf("sending the login: %w", err)
		c.fail(err)
		return fmt.Errorf("login as %q: %w", user, err)
	}
	c.pipelined = true

	if explicit {
		if err := c.replyData(); err != nil {
			return err
		}
	}
	r, err := c.readFinal(c.cfg.ReplyTimeout) // USER
	if err == nil {
		switch r.Code {
		case 331:
			r, err = c.readFinal(c.cfg.ReplyTimeout) // PASS
		case 230, 202:
			_, err = c.readFinal(c.cfg.ReplyTimeout) // PASS, not needed
		}
	}
	if err != nil {
		return fmt.Errorf("login as %q: %w", user, err)
	}
	if r.Code != 230 && r.Code != 202 {
		return fmt.Errorf("login as %q failed: %w", user, r.err())
	}
	if c.cfg.Implicit {
		if err := c.replyData(); err != nil {
			return err
		}
	}
	if _, err := c.expectReply(200); err != nil { // TYPE I
		return err
	}
	if r, err = c.readFinal(c.cfg.ReplyTimeout); err != nil { // FEAT
		return err
	}
	c.setFeatures(r)
	if _, err = c.readFinal(c.cfg.ReplyTimeout); err != nil { // OPTS UTF8 ON: the reply is irrelevant
		return err
	}
	if r, err = c.readFinal(c.cfg.ReplyTimeout); err != nil { // OPTS XDIGEST ON
		return err
	}
	c.xdigest = r.Code == 200 // an older agent refuses it: then HASH as before
	return nil
}

// replyData reads and checks the replies to a pipelined PBSZ 0 and PROT P (see protectData).
func (c *Client) replyData() error {
	if _, err := c.expectReply(200); err != nil {
		return fmt.Errorf("PBSZ: %w", err)
	}
	if _, err := c.expectReply(200); err != nil {
		return fmt.Errorf("PROT P (TLS on data connections): %w", err)
	}
	return nil
}
