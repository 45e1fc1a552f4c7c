package ftpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode selects how data connections are established.
type Mode int

const (
	// ModePassive: the client connects to the server (EPSV/PASV).
	ModePassive Mode = iota
	// ModeActive: the server connects back to the client (EPRT/PORT).
	ModeActive
)

func (m Mode) String() string {
	switch m {
	case ModePassive:
		return "passive"
	case ModeActive:
		return "active"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// PortRange is an inclusive range of local ports. The zero value means any
// ephemeral port.
type PortRange struct{ Lo, Hi int }

// ContextDialer dials the control connection and passive data connections.
// *net.Dialer implements it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config configures a Client. Only Addr is required.
type Config struct {
	Addr           string // host:port of the server (IPv4 or [IPv6])
	User, Password string
	Mode           Mode

	// ActiveAddr is the IP announced in PORT/EPRT, for a client behind a
	// port-forwarding NAT. Default: ActiveBind if it is a specific IP, else
	// the local IP of the control connection.
	ActiveAddr string
	// ActiveBind is the local IP to listen on for active data connections.
	// Default: the local IP of the control connection.
	ActiveBind string
	// ActivePorts is the local port range for active listeners; zero means
	// an ephemeral port.
	ActivePorts PortRange

	DialTimeout time.Duration // control connect + greeting + login; default 10s
	// DataTimeout bounds establishing a data connection (the TCP connect or accept); default
	// 10s. Its TLS handshake, which the server may start only after the command's work (a
	// directory read), waits up to ReplyTimeout.
	DataTimeout time.Duration
	// FirstDataTimeout, when > 0, bounds the session's data connections
	// instead of DataTimeout until one has been established: a quick probe
	// (auto mode gives up on a blocked mode after it, not after DataTimeout).
	FirstDataTimeout time.Duration
	// ReplyTimeout bounds waiting for a control reply, the whole reply (all
	// lines of a multi-line reply, and preliminary 1xx replies before the
	// final one); default 30s.
	ReplyTimeout time.Duration
	// StallTimeout fails a data connection (Retr's reader, Stor's writer,
	// listings) on which no byte moved for this long, with an error
	// wrapping ErrStalled. Default 60s; negative disables it.
	StallTimeout time.Duration
	// MaxListEntries and MaxListBytes bound a listing (List, ListFunc,
	// NameList): beyond them it is aborted with ErrListTooLarge. Defaults
	// 1,000,000 entries and 256 MiB.
	MaxListEntries int
	MaxListBytes   int64
	// HashRate is the rate, in bytes per second, at which the server is
	// assumed to hash at least: HashSize and HashRange wait ReplyTimeout +
	// size/HashRate for the reply. Default 50 MB/s.
	HashRate int64

	// UsePASVHost makes the client connect to the IP the server announces in
	// a PASV reply. By default that IP is ignored and the control
	// connection's host is used (like curl --ftp-skip-pasv-ip or lftp's
	// fix-pasv-address); a mismatch is recorded in DataInfo.
	UsePASVHost bool

	// TCPCongestion, when set, is the TCP congestion control of the data connections
	// (netopt.SetCongestion; it matters on the sending side: uploads). Best effort: a socket that
	// refuses it keeps the system default.
	TCPCongestion string

	// TLS enables FTPS when non-nil: explicit (AUTH TLS, then PBSZ 0,
	// PROT P) unless Implicit is set. Data connections are TLS too and
	// resume the control connection's session (servers such as vsftpd
	// with require_ssl_reuse=YES insist on it). If ServerName is empty the
	// host of Addr is used; if ClientSessionCache is nil one is created and
	// shared by the control and data connections. See PinSHA256 for a
	// configuration that trusts one certificate by its fingerprint.
	TLS *tls.Config
	// Implicit makes the control connection TLS from its first byte
	// (implicit FTPS, ftps:// URLs, usually port 990); it requires TLS.
	// PBSZ 0 and PROT P follow the login as with explicit FTPS.
	Implicit bool

	// Dialer is used for the control connection and passive data
	// connections. Default: a net.Dialer.
	Dialer ContextDialer
}

const (
	defaultDialTimeout  = 10 * time.Second
	defaultDataTimeout  = 10 * time.Second
	defaultReplyTimeout = 30 * time.Second
	defaultStallTimeout = 60 * time.Second
	// defaultMaxListEntries and defaultMaxListBytes bound a listing.
	defaultMaxListEntries = 1_000_000
	defaultMaxListBytes   = 256 << 20
	defaultHashRate       = 50_000_000 // bytes/s
	// quitTimeout bounds the wait for QUIT's reply in Close.
	quitTimeout = time.Second
	// abortTimeout bounds the wait for the replies after an ABOR.
	abortTimeout = 5 * time.Second
	// maxLine bounds a control reply line, maxReplyBytes a whole
	// (multi-line) reply.
	maxLine       = 8 << 10
	maxReplyBytes = 1 << 20
	// excerptLen bounds the remote text quoted in an error.
	excerptLen = 120
	// controlKeepAlive is the TCP keepalive idle time and interval on the
	// control connection, which sits idle during long transfers.
	controlKeepAlive = 30 * time.Second
)

// Client is a connection to an FTP server. See the package doc for the
// concurrency rules.
type Client struct {
	cfg      Config
	tlsConf  *tls.Config
	remoteIP netip.Addr // peer of the control connection
	localIP  netip.Addr // our side of the control connection

	conn net.Conn // control connection, *tls.Conn after AUTH TLS
	// connectRTT is how long the control connection's TCP connect took (about one round trip).
	connectRTT time.Duration
	r          *bufio.Reader

	features   map[string]string
	noEPSV     bool // server refused EPSV: use PASV
	noEPRT     bool // server refused EPRT: use PORT
	noHash     bool // server refused HASH
	noXSHA256  bool // server refused XSHA256
	info       DataInfo
	inTransfer bool
	dataOK     bool // a data connection has been established on this session
	noResume   bool // a TLS data connection did not resume the control session
	pipelined  bool // the login was sent in one write (PipelineMarker)
	xdigest    bool // the server took OPTS XDIGEST ON (digest.go)
	// xferSum is the SHA-256 the last transfer's 226 carried, for a HashSize of the same file.
	xferSum   transferSum
	earlyAuth bool // AUTH TLS and the ClientHello were sent before the greeting (earlyTLS)

	mu     sync.Mutex
	broken error     // non-nil once the control connection is unusable
	closed bool      // Close was called
	data   io.Closer // data connection or listener being established/used
}

// Dial connects to cfg.Addr, reads the greeting, negotiates TLS when
// cfg.TLS is set, logs in, selects binary mode and reads the features.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = defaultDataTimeout
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = defaultReplyTimeout
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = defaultStallTimeout
	}
	if cfg.MaxListEntries <= 0 {
		cfg.MaxListEntries = defaultMaxListEntries
	}
	if cfg.MaxListBytes <= 0 {
		cfg.MaxListBytes = defaultMaxListBytes
	}
	if cfg.HashRate <= 0 {
		cfg.HashRate = defaultHashRate
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{}
	}
	if cfg.Mode != ModePassive && cfg.Mode != ModeActive {
		return nil, fmt.Errorf("ftp dial %s: invalid mode %v", cfg.Addr, cfg.Mode)
	}
	if err := checkArg(cfg.User); err != nil {
		return nil, fmt.Errorf("ftp dial %s: user: %w", cfg.Addr, err)
	}
	if err := checkArg(cfg.Password); err != nil {
		return nil, fmt.Errorf("ftp dial %s: password: %w", cfg.Addr, err)
	}
	if cfg.Implicit && cfg.TLS == nil {
		return nil, fmt.Errorf("ftp dial %s: Implicit needs a TLS configuration", cfg.Addr)
	}

	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	dialStart := time.Now()
	conn, err := cfg.Dialer.DialContext(dctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ftp dial %s: %w", cfg.Addr, err)
	}
	connectRTT := time.Since(dialStart)
	if ka, ok := conn.(interface {
		SetKeepAliveConfig(net.KeepAliveConfig) error
	}); ok {
		// The control connection idles during long transfers: keepalives
		// keep NAT and firewall state alive and detect a dead peer.
		_ = ka.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true,
			Idle: controlKeepAlive, Interval: controlKeepAlive, Count: 4})
	}
	c := &Client{cfg: cfg, conn: conn, r: bufio.NewReader(conn), connectRTT: connectRTT}
	c.remoteIP = addrIP(conn.RemoteAddr())
	c.localIP = addrIP(conn.LocalAddr())

	stop := context.AfterFunc(dctx, func() { c.fail(context.Cause(dctx)) })
	err = c.login(dctx)
	if !stop() {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case err == nil || !errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("timed out after %s: %w", cfg.DialTimeout, context.DeadlineExceeded)
		}
	}
	if err != nil {
		c.fail(err)
		return nil, fmt.Errorf("ftp dial %s: %w", cfg.Addr, err)
	}
	return c, nil
}

func (c *Client) login(ctx context.Context) error {
	if c.cfg.Implicit {
		if err := c.implicitTLS(ctx); err != nil {
			return err
		}
	}
	explicit := c.cfg.TLS != nil && !c.cfg.Implicit
	var pipeline bool
	if explicit && knownPipeliner(c.cfg.Addr) {
		// This server announced PipelineMarker before: AUTH TLS and the ClientHello go out at
		// once (see earlyTLS).
		p, err := c.earlyTLS(ctx)
		if err != nil {
			return err
		}
		pipeline = p
	} else {
		p, err := c.greeting()
		if err != nil {
			return err
		}
		pipeline = p
		if explicit {
			if err := c.startTLS(ctx); err != nil {
				return err
			}
		}
	}
	if explicit && !pipeline {
		if err := c.protectData(); err != nil {
			return err
		}
	}

	user := c.cfg.User
	if user == "" {
		user = "anonymous"
	}
	if pipeline {
		return c.loginPipelined(user)
	}
	r, err := c.cmd("USER " + user)
	if err == nil && r.Code == 331 {
		// The password is never part of an error: only the reply is.
		r, err = c.cmd("PASS " + c.cfg.Password)
	}
	if err != nil {
		return fmt.Errorf("login as %q: %w", user, err)
	}
	if r.Code != 230 && r.Code != 202 {
		return fmt.Errorf("login as %q failed: %w", user, r.err())
	}

	if c.cfg.Implicit {
		if err := c.protectData(); err != nil {
			return err
		}
	}
	if _, err := c.expect("TYPE I", 200); err != nil {
		return err
	}

	r, err = c.cmd("FEAT")
	if err != nil {
		return err
	}
	c.setFeatures(r)
	if _, ok := c.features["UTF8"]; ok {
		if _, err := c.cmd("OPTS UTF8 ON"); err != nil { // reply is irrelevant
			return err
		}
	}
	return nil
}

// setFeatures records the features listed in a FEAT reply.
func (c *Client) setFeatures(r *reply) {
	c.features = map[string]string{}
	if r.Code != 211 {
		return
	}
	for _, l := range r.Lines[1:max(1, len(r.Lines)-1)] {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		name, val, _ := strings.Cut(l, " ")
		c.features[strings.ToUpper(name)] = val
	}
}

// greeting reads the server's greeting and reports whether it announces login pipelining (and
// remembers that for the server's address).
func (c *Client) greeting() (pipeline bool, err error) {
	r, err := c.readFinal(c.cfg.ReplyTimeout)
	if err != nil {
		return false, fmt.Errorf("greeting: %w", greetingError(err))
	}
	if r.Code != 220 {
		return false, fmt.Errorf("greeting: %w", r.err())
	}
	pipeline = pipelines(r)
	rememberPipeliner(c.cfg.Addr, pipeline)
	return pipeline, nil
}

// startTLS upgrades the control connection with AUTH TLS (explicit FTPS). AUTH TLS goes alone:
// a server may read the ClientHello from the raw connection after its 234, so nothing may
// follow the command before that reply (earlyTLS does otherwise, for Ferry agents only).
func (c *Client) startTLS(ctx context.Context) error {
	conf, err := c.tlsConfig()
	if err != nil {
		return err
	}
	r, err := c.cmd("AUTH TLS")
	if err != nil {
		return fmt.Errorf("AUTH TLS: %w", err)
	}
	if err := authOK(r); err != nil {
		return err
	}
	return c.handshake(ctx, conf)
}

// authOK checks the reply to AUTH TLS.
func authOK(r *reply) error {
	if r.Code != 234 && r.Code != 334 {
		return fmt.Errorf("AUTH TLS (the server offers no explicit FTPS): %w", r.err())
	}
	return nil
}

// dataTimeout is the bound for establishing the next data connection.
func (c *Client) dataTimeout() time.Duration {
	if c.cfg.FirstDataTimeout > 0 && !c.dataOK {
		return c.cfg.FirstDataTimeout
	}
	return c.cfg.DataTimeout
}

// SetMode changes the data-connection mode for the following commands.
func (c *Client) SetMode(m Mode) error {
	if m != ModePassive && m != ModeActive {
		return fmt.Errorf("ftp: invalid mode %v", m)
	}
	c.cfg.Mode = m
	return nil
}

// RemoteAddr is the server's address on the control connection.
func (c *Client) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// RTT is the control connection's round-trip time, costing no round trip of its own: the
// lower of the TCP connect's duration and the kernel's smoothed RTT (TCP_INFO; its samples
// also hold the server's time to answer the login), or 0 when neither is known.
func (c *Client) RTT() time.Duration {
	k := kernelRTT(c.conn)
	if k <= 0 || (c.connectRTT > 0 && c.connectRTT < k) {
		return c.connectRTT
	}
	return k
}

// Features returns the features the server listed in its FEAT reply, keyed
// by upper-case name (e.g. "MLST", "EPSV", "REST"), with the rest of the
// line as value.
func (c *Client) Features() map[string]string {
	m := make(map[string]string, len(c.features))
	for k, v := range c.features {
		m[k] = v
	}
	return m
}

// Close sends QUIT and closes the connection. It is safe to call twice.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	broken, data := c.broken, c.data
	c.mu.Unlock()
	if data != nil {
		data.Close()
	}
	if broken == nil {
		// A polite QUIT, but a server still busy with an aborted transfer may answer late:
		// closing must not wait long for it. Closed during a transfer (no ABOR: closing the
		// data connection above ends it), the transfer's replies come before QUIT's: they are
		// read too, up to QUIT's 221, all within quitTimeout. (A reply left unread would turn
		// the close into a reset, which may cost the server the QUIT.)
		_ = c.conn.SetWriteDeadline(time.Now().Add(quitTimeout))
		if _, err := io.WriteString(c.conn, "QUIT\r\n"); err == nil {
			deadline := time.Now().Add(quitTimeout)
			for range 4 {
				r, err := c.readReplyBy(deadline, quitTimeout, false)
				if err != nil || r.Code == 221 || !c.inTransfer {
					break
				}
			}
		}
	}
	c.fail(errors.New("ftp: client closed"))
	return nil
}

// ---- control connection plumbing ----

// reply is one (possibly multi-line) server reply.
type reply struct {
	Code  int
	Lines []string // text of each line, without the "123-" / "123 " prefix
}

func (r *reply) msg() string { return strings.Join(r.Lines, "\n") }

func (r *reply) err() *ReplyError { return &ReplyError{Code: r.Code, Msg: r.msg()} }

// fail marks the client broken (first error wins) and closes the control
// connection and any data connection, unblocking pending I/O. It is safe to
// call from any goroutine.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	conn, data := c.conn, c.data
	c.mu.Unlock()
	conn.Close()
	if data != nil {
		data.Close()
	}
}

func (c *Client) setData(d io.Closer) {
	c.mu.Lock()
	c.data = d
	broken := c.broken
	c.mu.Unlock()
	if broken != nil && d != nil {
		d.Close() // lost a race with fail
	}
}

// alive returns an error if the client is closed or broken.
func (c *Client) alive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return errors.New("ftp: client closed")
	case c.broken != nil:
		return fmt.Errorf("%w: %w", errBroken, c.broken)
	}
	return nil
}

// Usable reports whether a command may be sent now: c is not closed, not broken (a failed
// ABOR, a lost connection) and not in a transfer. A transfer aborted cleanly (its Close
// returned the server's 426) leaves c usable.
func (c *Client) Usable() bool { return c.usable() == nil }

// usable returns an error if no command may be sent now.
func (c *Client) usable() error {
	if c.inTransfer {
		return errors.New("ftp: a transfer is in progress on this client")
	}
	return c.alive()
}

// do runs op with ctx guarding it: cancellation closes the connections, and
// the returned error then wraps ctx's error.
func (c *Client) do(ctx context.Context, what string, op func() error) error {
	if err := c.usable(); err != nil {
		return fmt.Errorf("ftp %s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ftp %s: %w", what, err)
	}
	stop := context.AfterFunc(ctx, func() { c.fail(context.Cause(ctx)) })
	err := op()
	if !stop() && err != nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("ftp %s: %w", what, err)
	}
	return nil
}

// send writes one command line.
func (c *Client) send(line string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.cfg.ReplyTimeout))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		verb, _, _ := strings.Cut(line, " ")
		err = fmt.Errorf("sending %s: %w", verb, err)
		c.fail(err)
		return err
	}
	return nil
}

// sendAll sends lines in one write (pipelined commands: one TCP segment, one TLS record).
func (c *Client) sendAll(lines []string) error {
	if len(lines) == 1 {
		return c.send(lines[0])
	}
	return c.send(strings.Join(lines, "\r\n"))
}

// cmd sends a command and returns its final reply (1xx replies are skipped).
// Only a broken connection is an error; any reply code is returned.
func (c *Client) cmd(line string) (*reply, error) {
	return c.cmdTimeout(line, c.cfg.ReplyTimeout)
}

// cmdTimeout is cmd with a reply timeout other than ReplyTimeout.
func (c *Client) cmdTimeout(line string, timeout time.Duration) (*reply, error) {
	if err := c.send(line); err != nil {
		return nil, err
	}
	return c.readFinal(timeout)
}

// expect is cmd that turns a reply with another code into a *ReplyError.
func (c *Client) expect(line string, codes ...int) (*reply, error) {
	if err := c.send(line); err != nil {
		return nil, err
	}
	return c.expectReply(codes...)
}

// expectReply reads the final reply to a command already sent and turns one with a code other
// than codes into a *ReplyError.
func (c *Client) expectReply(codes ...int) (*reply, error) {
	r, err := c.readFinal(c.cfg.ReplyTimeout)
	if err != nil {
		return nil, err
	}
	for _, code := range codes {
		if r.Code == code {
			return r, nil
		}
	}
	return r, r.err()
}

// readReply reads one reply within timeout; see readReplyBy.
func (c *Client) readReply(timeout time.Duration) (*reply, error) {
	return c.readReplyBy(time.Now().Add(timeout), timeout, false)
}

// readFinal reads replies until a final (non-1xx) one, all within timeout:
// the deadline covers the whole sequence, so a server that keeps sending
// preliminary replies cannot hold the client forever.
func (c *Client) readFinal(timeout time.Duration) (*reply, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.readReplyBy(deadline, timeout, false)
		if err != nil || r.Code >= 200 {
			return r, err
		}
	}
}

// errNoReply is returned by readReplyBy with idleOK when no byte of a reply
// arrived before the deadline; the client is not marked broken then.
var errNoReply = errors.New("ftp: no reply yet")

// readReplyBy reads one reply, handling RFC 959 multi-line replies. The
// deadline applies to the whole reply, which is also bounded in size
// (maxLine per line, maxReplyBytes in all): a server trickling an endless
// multi-line reply fails at the deadline or at the size limit. timeout is
// only used in the error message. 421 and I/O or protocol errors mark the
// client broken, except, with idleOK, a deadline reached before the first
// byte (errNoReply).
func (c *Client) readReplyBy(deadline time.Time, timeout time.Duration, idleOK bool) (*reply, error) {
	_ = c.conn.SetReadDeadline(deadline)
	st := &replyState{timeout: timeout, idleOK: idleOK}
	line, err := c.readLine(st)
	if err != nil {
		return nil, err
	}
	code, sep, ok := parseCodeLine(line)
	if !ok {
		err := fmt.Errorf("%w from %s: %q", ErrMalformedReply, c.cfg.Addr, excerpt(line, excerptLen))
		c.fail(err)
		return nil, err
	}
	r := &reply{Code: code, Lines: []string{textOf(line)}}
	for sep == '-' {
		if line, err = c.readLine(st); err != nil {
			return nil, err
		}
		if code2, sep2, ok := parseCodeLine(line); ok && code2 == code && sep2 == ' ' {
			sep = ' '
			line = textOf(line)
		} else if ok && code2 == code && sep2 == '-' {
			line = textOf(line)
		}
		r.Lines = append(r.Lines, line)
	}
	if code == 421 {
		c.fail(r.err())
		return nil, r.err()
	}
	return r, nil
}

// replyState tracks one reply being read.
type replyState struct {
	n       int // bytes read so far
	first   string
	timeout time.Duration
	idleOK  bool
}

// readLine reads one line of a reply, without its CR LF.
func (c *Client) readLine(st *replyState) (string, error) {
	var b []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		st.n += len(frag)
		if len(b)+len(frag) > maxLine+2 { // +2: CR LF
			err := fmt.Errorf("%w: a reply line from %s is longer than %d bytes: %q",
				ErrReplyTooLong, c.cfg.Addr, maxLine, excerpt(string(append(b, frag...)), excerptLen))
			c.fail(err)
			return "", err
		}
		if st.n > maxReplyBytes {
			err := fmt.Errorf("%w: a reply from %s is longer than %d bytes: %q",
				ErrReplyTooLong, c.cfg.Addr, maxReplyBytes, excerpt(st.first, excerptLen))
			c.fail(err)
			return "", err
		}
		b = append(b, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			var ne net.Error
			switch {
			case st.idleOK && st.n == 0 && errors.As(err, &ne) && ne.Timeout():
				return "", errNoReply
			case errors.As(err, &ne) && ne.Timeout():
				err = fmt.Errorf("%w: no complete reply from %s within %s: %w", ErrReplyTimeout, c.cfg.Addr, st.timeout, err)
			case err == io.EOF:
				err = fmt.Errorf("reading reply: %w", io.ErrUnexpectedEOF)
			default:
				err = fmt.Errorf("reading reply: %w", err)
			}
			c.fail(err)
			return "", err
		}
	}
	line := strings.TrimRight(string(b), "\r\n")
	if st.first == "" {
		st.first = line
	}
	return line, nil
}

// parseCodeLine parses "123 text", "123-text" or "123".
func parseCodeLine(line string) (code int, sep byte, ok bool) {
	if len(line) < 3 {
		return 0, 0, false
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, 0, false
		}
	}
	code, _ = strconv.Atoi(line[:3])
	if code < 100 {
		return 0, 0, false
	}
	if len(line) == 3 {
		return code, ' ', true
	}
	if line[3] != ' ' && line[3] != '-' {
		return 0, 0, false
	}
	return code, line[3], true
}

func textOf(line string) string {
	if len(line) <= 4 {
		return ""
	}
	return line[4:]
}

// truncate is excerpt: remote text for an error message.
func truncate(s string, n int) string { return excerpt(s, n) }

// excerpt returns s as printable ASCII (other bytes become '?'), cut to n
// bytes with "..." appended when longer: remote text may be quoted in an
// error only this way.
func excerpt(s string, n int) string {
	cut := len(s) > n
	if cut {
		s = s[:n]
	}
	b := []byte(s)
	for i, ch := range b {
		if ch < 0x20 || ch > 0x7e {
			b[i] = '?'
		}
	}
	if cut {
		return string(b) + "..."
	}
	return string(b)
}

// checkArg rejects arguments that would inject extra commands.
func checkArg(s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return errors.New("contains CR, LF or NUL")
	}
	return nil
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
