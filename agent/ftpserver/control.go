package ftpserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// controlConn is the control connection as ftpserverlib sees it: a filter
// that answers the few commands whose replies the library hard-codes against
// RFC 959/2389/3659 (see "Conformance" in the package documentation), and
// rewrites two of the library's reply lines. Everything else passes through
// untouched, one command line per Read. Data connections never go through
// it.
//
// The filter owns explicit FTPS on the control connection (AUTH TLS): it
// answers 234 and runs the TLS handshake itself, so that it keeps reading
// commands in clear text afterwards. ftpserverlib therefore sees a plain
// connection (its HasTLSForControl stays false); PBSZ/PROT and the TLS of
// data connections stay the library's business.
type controlConn struct {
	raw net.Conn // the accepted TCP connection
	s   *Server

	// Reader side: used only by the library's reading goroutine.
	r       *bufio.Reader // over raw, or over the TLS connection after AUTH TLS
	pending []byte        // bytes of the current line not yet handed to the library
	long    bool          // passing through the rest of an over-long line
	readErr error         // returned once pending is drained

	// more: the client's next command is already buffered (it pipelined), so the library's
	// reply to this one may wait for the next reply, and both go out in one write; Read sends
	// whatever is held before it would block (see Write).
	more atomic.Bool

	mu       sync.Mutex // guards the fields below and serializes writes to w
	w        net.Conn   // raw, or the TLS connection after AUTH TLS
	wbuf     []byte     // library output not yet ended by "\n"
	held     []byte     // filtered reply lines not sent yet (see Write)
	tls      bool
	user     string  // argument of the last USER
	loggedIn bool    // a PASS was accepted and handed to the library
	login    *policy // accepted login waiting for the library's AuthUser
	fails    int     // failed PASS commands on this connection
	expect   string  // verb of the last command handed to the library
	rnfrOK   bool    // the library accepted an RNFR not yet followed by RNTO
	dataOK   bool    // PASV/EPSV/PORT/EPRT accepted and not yet used by a transfer
	epsvAll  bool    // EPSV ALL was accepted (RFC 2428 section 4)
	abor     bool    // ABOR handed to the library, its reply not yet written
	protP    bool    // the last PROT asked for private (TLS) data connections
	dataTLS  bool    // protP held when the pending data connection was set up
	abor426  bool    // the library aborted a running transfer (426) for that ABOR
	homeDir  string  // host directory of the logged-in account's home, hidden in replies

	tree treeState // a pending XTREE transfer (tree.go)

	digests bool // the client asked for OPTS XDIGEST ON (digest.go)
	// xferSum is the digest of the file the running transfer moved whole, for its 226; any
	// final reply clears it.
	xferSum string

	quit     chan struct{} // closed by Close/CloseRead: ends a login delay early
	quitOnce sync.Once

	sess *session // set by ClientConnected: events and the session's log line (session.go)
}

// maxLoginFails is the number of refused PASS commands after which the
// control connection is closed (vsftpd's max_login_fails default).
const maxLoginFails = 3

// Reply texts (the codes are RFC 959's; texts follow vsftpd where it has one).
const (
	replyNoData      = "425 Use PORT or PASV first."
	replyLoginFailed = "530 Login incorrect."
	replyRNFRFirst   = "503 RNFR required first."
	replyNoABOR      = "No transfer to ABOR."
	// With Config.TLSRequired (vsftpd answers these cases with 530 and 522 too; RFC 4217
	// suggests 530 and 521).
	replyTLSLogin = "530 This server requires TLS: send AUTH TLS before USER and PASS."
	replyTLSData  = "521 This server requires TLS on data connections: send PBSZ 0 and PROT P, then PASV or PORT."
)

func newControlConn(s *Server, raw net.Conn) *controlConn {
	setOOBInline(raw)
	return &controlConn{raw: raw, s: s, r: bufio.NewReaderSize(raw, 4096), w: raw, quit: make(chan struct{})}
}

// transferVerbs open a data connection.
var transferVerbs = map[string]bool{
	"RETR": true, "STOR": true, "APPE": true, "STOU": true,
	"LIST": true, "NLST": true, "MLSD": true,
}

// Read hands the library one command line at a time, after answering the
// ones the filter handles itself.
func (c *controlConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		if c.r.Buffered() == 0 {
			// About to wait for the client: every reply held so far goes out first.
			c.more.Store(false)
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
		line, err := c.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			// Longer than any command the library accepts: pass it on
			// untouched (the library refuses it).
			c.long = true
			c.pending = append(c.pending[:0], line...)
			continue
		case err != nil:
			c.readErr = err
			c.pending = append(c.pending[:0], line...)
			continue
		}
		if c.long {
			c.long = false
			c.pending = append(c.pending[:0], line...)
			continue
		}
		forward, err := c.command(line)
		if err != nil {
			c.readErr = err
			continue
		}
		if forward != nil {
			c.pending = append(c.pending[:0], forward...)
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	c.more.Store(c.r.Buffered() > 0)
	return n, nil
}

// command looks at one command line and returns what to hand to the
// library: the line itself, or nil when the filter answered it.
func (c *controlConn) command(line []byte) ([]byte, error) {
	text := strings.TrimRight(string(line), "\r\n")
	verb, param, _ := strings.Cut(text, " ")
	verb = strings.ToUpper(verb)
	if strings.HasSuffix(verb, "ABOR") { // may follow Telnet IP/Synch bytes
		verb = "ABOR"
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.logCommand(verb, param)
	if out, done, err := c.treeCommand(verb, param); done {
		return out, err
	}
	reply, forward, err := c.decide(verb, param)
	if forward {
		c.expect = verb
		return line, nil
	}
	if reply != "" {
		c.logReply([]byte(reply))
		if werr := c.writeLocked([]byte(reply + "\r\n")); werr != nil && err == nil {
			err = werr
		}
	}
	return nil, err
}

// decide returns the filter's own reply to a command, or forward=true to
// hand it to the library. Called with c.mu held.
func (c *controlConn) decide(verb, param string) (reply string, forward bool, err error) {
	switch verb {
	case "AUTH":
		return c.auth(param)
	case "PROT":
		// The library answers (200) and protects the data connections set up from now on.
		c.protP = strings.TrimSpace(param) == "P"
		return "", true, nil
	case "USER", "PASS":
		if c.s.cfg.TLSRequired && !c.tls {
			// Enforced here: the library cannot see the filter's TLS (see doc.go).
			return replyTLSLogin, false, nil
		}
	}
	switch verb {
	case "USER":
		if c.loggedIn {
			return "530 Can't change to another user.", false, nil
		}
		c.user = param
		return "", true, nil
	case "PASS":
		return c.pass(param)
	}
	if !c.loggedIn {
		return "", true, nil // the library answers 530 or serves the command
	}
	switch verb {
	case "STRU":
		if strings.EqualFold(param, "F") {
			return "200 Structure set to F.", false, nil
		}
		return "504 Bad STRU command.", false, nil
	case "ALLO":
		// RFC 959: a server that needs no allocation accepts ALLO as a
		// no-op (202), whatever the size argument.
		return "202 ALLO command ignored.", false, nil
	case "RNTO":
		// As vsftpd: an accepted RNFR waits, over other commands, for
		// one RNTO, which ends it whatever its outcome.
		ok := c.rnfrOK
		c.rnfrOK = false
		if !ok {
			return replyRNFRFirst, false, nil
		}
		return "", true, nil
	case "RNFR":
		c.rnfrOK = false // set when the library answers 350
		return "", true, nil
	case "EPSV":
		return c.epsv(param)
	case "PASV", "PORT", "EPRT":
		if c.epsvAll {
			return "500 " + verb + " not allowed after EPSV ALL.", false, nil
		}
		c.dataOK = false // replaced, or lost if the new one fails
		c.dataTLS = c.protP
		if reply := refuseDataPort(verb, param); reply != "" {
			return reply, false, nil // a privileged port (the library refuses foreign hosts)
		}
		return "", true, nil
	case "ABOR":
		c.abor, c.abor426 = true, false
		c.dataOK = false
		return "", true, nil
	case "OPTS":
		if reply, ok := c.optsDigest(param); ok {
			return reply, false, nil
		}
		return "", true, nil
	}
	if !transferVerbs[verb] {
		return "", true, nil
	}
	required := c.s.cfg.TLSRequired
	switch {
	case required && !c.protP && !c.dataTLS:
		return replyTLSData, false, nil
	case !c.dataOK:
		return replyNoData, false, nil
	case required && !c.dataTLS:
		// PROT P came after PASV/PORT: that data connection would be plain.
		return replyTLSData, false, nil
	}
	return "", true, nil
}

// epsv refuses network protocols other than the control connection's
// (RFC 2428: 522) and accepts EPSV ALL.
func (c *controlConn) epsv(param string) (string, bool, error) {
	proto := "1"
	if ip, ok := addrIP(c.raw.LocalAddr()); ok && !ip.Is4() {
		proto = "2"
	}
	switch p := strings.TrimSpace(param); {
	case p == "":
	case strings.EqualFold(p, "ALL"):
		c.epsvAll = true
		return "200 EPSV ALL ok.", false, nil
	case p != proto:
		return "522 Network protocol not supported, use (" + proto + ")", false, nil
	}
	c.dataOK = false
	c.dataTLS = c.protP
	return "", true, nil
}

// pass authenticates itself, so that a refused login gets 530 and the
// client may try again (the library closes the connection after any
// refused PASS). An accepted login is handed to the library, whose AuthUser
// call picks up the policy through takeLogin.
func (c *controlConn) pass(pw string) (string, bool, error) {
	switch {
	case c.loggedIn:
		return "230 Already logged in.", false, nil
	case c.user == "":
		return "503 Login with USER first.", false, nil
	}
	user, tls := c.user, c.tls
	// A login delay (limits.go) and a bcrypt check take time: c.mu is released meanwhile. Only
	// this goroutine reads commands, and the library writes nothing before a login.
	c.mu.Unlock()
	pol, err := c.s.checkLogin(c.quit, user, pw, c.raw.RemoteAddr(), tls)
	c.mu.Lock()
	if !errors.Is(err, net.ErrClosed) {
		c.sess.login(user, c.tls, err)
	}
	switch {
	case errors.Is(err, errLoginFlood):
		_ = c.writeLocked([]byte(replyLoginFlood + "\r\n"))
		return "", false, io.EOF
	case errors.Is(err, net.ErrClosed):
		return "", false, io.EOF
	case err != nil:
		c.user = ""
		c.fails++
		if c.fails >= maxLoginFails {
			_ = c.writeLocked([]byte(replyLoginFailed + "\r\n"))
			c.s.log.Warn("ftp client closed after failed logins", "remote", c.raw.RemoteAddr().String(), "fails", c.fails)
			return "", false, io.EOF
		}
		return replyLoginFailed, false, nil
	}
	if h := c.s.homeFs(pol.home); h != nil {
		c.homeDir = h.root.Dir()
	}
	c.login = &pol
	c.loggedIn = true
	return "", true, nil
}

// takeLogin returns the policy accepted by pass for user, once.
func (c *controlConn) takeLogin(user string) (policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.login == nil || user != c.user {
		return policy{}, false
	}
	pol := *c.login
	c.login = nil
	return pol, true
}

// auth runs explicit FTPS (RFC 4217) on the control connection.
func (c *controlConn) auth(param string) (string, bool, error) {
	cfg := c.s.cfg.TLS
	if cfg == nil {
		return "", true, nil // the library refuses it
	}
	switch strings.ToUpper(strings.TrimSpace(param)) {
	case "TLS", "TLS-C", "SSL":
	default:
		return "504 AUTH " + param + " not supported, use AUTH TLS.", false, nil
	}
	if c.tls {
		return "503 Already using TLS.", false, nil
	}
	if err := c.writeLocked([]byte("234 AUTH TLS OK, expecting TLS negotiation.\r\n")); err != nil {
		return "", false, err
	}
	// The client sends nothing before the handshake, but read through the
	// buffer anyway. The handshake runs on the next Read, under the
	// deadline the library set on the connection.
	tc := tls.Server(&bufferedConn{Conn: c.raw, r: c.r}, cfg)
	c.r = bufio.NewReaderSize(tc, 4096)
	c.w = tc
	c.tls = true
	return "", false, nil
}

// Write filters the library's replies line by line.
//
// The library writes (and flushes) each reply line on its own: unsent, a FEAT reply and the
// replies to a pipelined login were some 30 TCP segments (30 TLS records), three times the
// initial congestion window, which cost the client a round trip. So lines are held and
// coalesced: the lines of a multi-line reply until its last line, and whole replies while the
// client's next command is already buffered (it pipelined), up to maxHeld bytes. Read sends
// what is held before it waits for the client, and a reply the client may need before the
// server's next step goes at once: 1xx (a transfer starting), 227 and 229 (the address to
// connect to while the server waits for that connection).
func (c *controlConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wbuf = append(c.wbuf, p...)
	end := bytes.LastIndexByte(c.wbuf, '\n')
	if end < 0 {
		return len(p), nil
	}
	final := false
	for _, line := range bytes.SplitAfter(c.wbuf[:end+1], []byte("\n")) {
		if len(line) > 0 {
			r := c.reply(line)
			c.logReply(r)
			c.held = append(c.held, r...)
			final = isFinalLine(r)
			if final && (r[0] == '1' || bytes.HasPrefix(r, []byte("227 ")) || bytes.HasPrefix(r, []byte("229 "))) {
				if err := c.flushLocked(); err != nil {
					return 0, err
				}
			}
		}
	}
	c.wbuf = append(c.wbuf[:0], c.wbuf[end+1:]...)
	if (final && !c.more.Load()) || len(c.held) >= maxHeld {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// maxHeld bounds the reply bytes Write holds back.
const maxHeld = 16 << 10

// isFinalLine reports whether a reply line is the last of its reply ("213 ...", not "213-..."
// or a continuation line).
func isFinalLine(line []byte) bool {
	if len(line) < 4 || line[3] != ' ' {
		return false
	}
	for _, b := range line[:3] {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

// flush sends the replies Write held back.
func (c *controlConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *controlConn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.w.Write(c.held)
	c.held = c.held[:0]
	return err
}

// reply tracks the library's state from one reply line and returns the line
// to send. Called with c.mu held.
func (c *controlConn) reply(line []byte) []byte {
	// The library quotes file errors whole; their paths name the served directory on this
	// host, which is no client's business: it is shown as the FTP root.
	// An account confined to a home sees that as the root.
	line = hideDir(line, c.homeDir)
	line = hideDir(line, c.s.fs.root.Dir())
	if len(line) < 4 || line[3] != ' ' { // continuation lines pass as they are
		return line
	}
	code, err := strconv.Atoi(string(line[:3]))
	if err != nil {
		return line
	}
	text := strings.TrimRight(string(line[4:]), "\r\n")
	if (code == 550 || code == 451 || code == 426) && strings.Contains(strings.ToLower(text), "no space left on device") {
		// A full disk is 452 (RFC 959: insufficient storage space), which clients know not to
		// retry blindly; the library answers a generic code.
		return []byte("452 Insufficient storage space: " + text + "\r\n")
	}
	if code == 211 && c.expect == "FEAT" {
		return append([]byte(treeFeat), line...) // the tree stream (tree.go)
	}
	if code == 226 && c.xferSum != "" && !c.abor {
		line = digestReply(line, c.xferSum)
	}
	c.xferSum = ""
	switch {
	case code == 125 || code == 150:
		c.dataOK = false // the data connection is in use, then closed
	case code == 227 || code == 229:
		c.dataOK = true
	case code == 200 && (c.expect == "PORT" || c.expect == "EPRT"):
		c.dataOK = true
		c.expect = ""
	case code == 350 && c.expect == "RNFR":
		c.rnfrOK = true
		c.expect = ""
	case code == 426 && c.abor:
		c.abor426 = true
	case code == 226 && c.abor && strings.HasPrefix(text, "ABOR"):
		// The library answers 226 to every ABOR; with no transfer running
		// (none at all, or a passive listener still waiting) the reply is
		// 225 (RFC 959 section 4.2).
		c.abor = false
		if !c.abor426 {
			return []byte("225 " + replyNoABOR + "\r\n")
		}
	case code == 257 && (c.expect == "MKD" || c.expect == "XMKD"):
		// RFC 959 appendix II: the reply starts with the quoted pathname
		// ("257 "/x" created"); the library puts it last.
		c.expect = ""
		i, j := strings.IndexByte(text, '"'), strings.LastIndexByte(text, '"')
		if i > 0 && j > i {
			return []byte("257 " + text[i:j+1] + " directory created.\r\n")
		}
	}
	return line
}

// hideDir shows the host directory dir as "/" in a reply line.
func hideDir(line []byte, dir string) []byte {
	if dir != "" && bytes.Contains(line, []byte(dir)) {
		line = bytes.ReplaceAll(line, []byte(strings.TrimSuffix(dir, "/")+"/"), []byte("/"))
		line = bytes.ReplaceAll(line, []byte(dir), []byte("/"))
	}
	return line
}

// writeLocked sends the filter's own reply b, after any held by Write.
func (c *controlConn) writeLocked(b []byte) error {
	c.held = append(c.held, b...)
	return c.flushLocked()
}

// Close closes the TCP connection (no TLS close_notify: a client that
// stopped reading must not block it).
func (c *controlConn) Close() error {
	c.stop()
	return c.raw.Close()
}

func (c *controlConn) stop() { c.quitOnce.Do(func() { close(c.quit) }) }

// CloseRead half-closes the TCP connection (see Server.Close).
func (c *controlConn) CloseRead() error {
	c.stop()
	if cr, ok := c.raw.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return c.raw.Close()
}

func (c *controlConn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *controlConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }
func (c *controlConn) SetDeadline(t time.Time) error {
	return c.raw.SetDeadline(t)
}
func (c *controlConn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *controlConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// bufferedConn reads through r (which reads from Conn) so that nothing
// buffered before a TLS handshake is lost.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// acceptedLogin returns the login the control connection of cc accepted
// for user (see controlConn.pass).
func (s *Server) acceptedLogin(cc interface {
	RemoteAddr() net.Addr
	LocalAddr() net.Addr
}, user string) (policy, bool) {
	s.mu.Lock()
	c, _ := s.conns[connKey(cc.RemoteAddr(), cc.LocalAddr())].(*controlConn)
	s.mu.Unlock()
	if c == nil {
		return policy{}, false
	}
	return c.takeLogin(user)
}
