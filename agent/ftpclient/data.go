package ftpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/agent/netopt"
)

// DataInfo describes the last data connection.
type DataInfo struct {
	Mode Mode
	Cmd  string // EPSV, PASV, EPRT or PORT
	// Announced is the address in the server's EPSV/PASV reply (passive) or
	// the one sent in EPRT/PORT (active).
	Announced string
	// Used is the address actually dialled (passive) or listened on
	// (active), also when that failed.
	Used string
	// Peer is the remote address of the established data connection.
	Peer string
	// PASVMismatch: the IP in the PASV reply differs from the control
	// connection's peer (typical of a server behind NAT that is not
	// configured with its public address).
	PASVMismatch bool
}

// DataInfo returns information about the last data connection.
func (c *Client) DataInfo() DataInfo { return c.info }

// epsvFallback are the EPSV/EPRT reply codes after which PASV/PORT is tried.
func isNotSupported(code int) bool {
	return code == 500 || code == 501 || code == 502 || code == 504 || code == 522
}

// pendingData is a data connection being set up: either a dialled passive
// connection or an active listener (then conn is the accepted connection).
// Close may be called from another goroutine (cancellation).
type pendingData struct {
	ln   *net.TCPListener // active
	addr string           // for errors: dialled (passive) or announced (active) address
	// dial, if set, dials the passive connection while the transfer command is on its way
	// (see eagerPassive); cancel stops it.
	dial   func() (net.Conn, error)
	cancel context.CancelFunc
	sent   bool // the transfer command went with EPSV

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

func (p *pendingData) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.cancel != nil {
		p.cancel()
	}
	if p.ln != nil {
		p.ln.Close()
	}
	if p.conn != nil {
		p.conn.Close()
	}
	return nil
}

// accepted records the accepted active connection so that Close closes it.
func (p *pendingData) accepted(conn net.Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	if p.closed {
		conn.Close()
		return net.ErrClosed
	}
	p.conn = conn
	return nil
}

func (p *pendingData) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// dialed records the eagerly dialled passive connection so that Close closes it.
func (p *pendingData) dialed(conn net.Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		conn.Close()
		return net.ErrClosed
	}
	p.conn = conn
	return nil
}

// openTransfer sets up a data connection, sends "REST offset" (if
// offset > 0) and the transfer command cmd, and returns the data connection
// once the server has sent its preliminary 1xx reply and the connection (and
// TLS handshake) is up.
func (c *Client) openTransfer(ctx context.Context, cmd string, offset int64, pl *pipeline) (net.Conn, error) {
	var (
		p   *pendingData
		err error
	)
	if pl == nil && c.pipelined && c.cfg.Mode == ModePassive && !c.cfg.UsePASVHost {
		// A Ferry agent (it announced login pipelining): RETR and STOR go eager too.
		pl = &pipeline{}
	}
	switch {
	case c.cfg.Mode == ModeActive:
		p, err = c.listenActive()
	case pl != nil:
		p, err = c.eagerPassive(ctx, cmd, offset, pl)
	default:
		p, err = c.dialPassive(ctx)
	}
	if err != nil {
		return nil, err
	}
	c.setData(p)
	conn, err := c.startTransfer(cmd, offset, p)
	if err != nil {
		p.Close()
		c.setData(nil)
		return nil, err
	}
	c.setData(conn)
	if c.cfg.TCPCongestion != "" {
		_ = netopt.SetCongestion(conn, c.cfg.TCPCongestion)
	}
	c.info.Peer = conn.RemoteAddr().String()
	c.dataOK = true
	return conn, nil
}

// startTransfer sends REST and cmd, then concurrently waits for the
// preliminary reply and establishes the data connection (accept and/or TLS
// handshake): servers differ in which of the two they do first.
func (c *Client) startTransfer(cmd string, offset int64, p *pendingData) (net.Conn, error) {
	if offset > 0 && !p.sent {
		if _, err := c.expect("REST "+strconv.FormatInt(offset, 10), 350); err != nil {
			return nil, err
		}
	}
	if !p.sent {
		if err := c.send(cmd); err != nil {
			return nil, err
		}
	}
	type result struct {
		conn  net.Conn
		err   error
		cause bool // eager: err is why the transfer failed (the session was failed for it)
	}
	raw := make(chan result, 1)
	go func() {
		conn, err := c.establish(p)
		raw <- result{conn: conn, err: err}
	}()
	estc := raw
	// Wait at most DataTimeout for the preliminary reply: a server that
	// cannot connect back (active) stays silent until its own timeout.
	timeout := c.cfg.ReplyTimeout
	if c.cfg.Mode == ModeActive {
		timeout = c.dataTimeout()
	}
	if p.dial != nil {
		// Eager: a data connection that cannot be made fails the transfer (and the session,
		// whose server still waits for it) at once, not after the server's own timeout.
		estc = make(chan result, 1)
		go func() {
			res := <-raw
			if res.err != nil && !errors.Is(res.err, net.ErrClosed) && !p.isClosed() {
				res.cause = true
				c.fail(res.err)
			}
			estc <- res
		}()
	}
	r, rerr := c.readReply(timeout)
	if rerr != nil && p.dial != nil {
		p.Close() // stops a dial still under way
		res := <-estc
		if res.conn != nil {
			res.conn.Close()
		}
		if res.cause {
			return nil, res.err // no data connection: that is why the reply never came
		}
		return nil, rerr
	}
	if rerr == nil && r.Code/100 != 1 {
		// Refused (e.g. 550, or 425 when the server could not connect).
		p.Close()
		if res := <-estc; res.conn != nil {
			res.conn.Close()
		}
		re := c.replyErr(r)
		if r.Code == 425 && c.cfg.Mode == ModeActive {
			return nil, &DataConnError{Mode: ModeActive, Addr: p.addr, Err: re}
		}
		return nil, re
	}
	if rerr != nil {
		p.Close()
		if res := <-estc; res.conn != nil {
			res.conn.Close()
		}
		var ne net.Error
		if c.cfg.Mode == ModeActive && errors.As(rerr, &ne) && ne.Timeout() {
			// No reply and no connection: the server is stuck connecting.
			return nil, &DataConnError{Mode: ModeActive, Addr: p.addr, Timeout: true,
				Err: &timeoutError{timeout}}
		}
		return nil, rerr
	}
	res := <-estc
	if res.err != nil {
		// The control connection is left in an unknown state (the server
		// may still be trying to connect).
		c.fail(res.err)
		return nil, res.err
	}
	return res.conn, nil
}

// establish finishes the data connection: accept (active) and TLS handshake.
func (c *Client) establish(p *pendingData) (net.Conn, error) {
	conn := p.conn // passive: set before the goroutine started
	if p.dial != nil {
		var err error
		if conn, err = p.dial(); err != nil {
			return nil, err
		}
		if err := p.dialed(conn); err != nil {
			return nil, err
		}
	}
	if p.ln != nil {
		var err error
		conn, err = acceptFrom(p.ln, c.remoteIP, c.dataTimeout())
		if err != nil {
			var de *DataConnError
			if errors.As(err, &de) {
				de.Addr = p.addr
			}
			return nil, err
		}
		if err := p.accepted(conn); err != nil {
			return nil, err
		}
	}
	if c.tlsConf == nil {
		return conn, nil
	}
	tc := tls.Client(conn, c.tlsConf)
	// The connection is up, so the way is open: the handshake now waits for the server to
	// start the transfer, which may first do the command's work (ftpserverlib reads a whole
	// directory before it opens a listing's connection): as long as a reply may take, not
	// DataTimeout (an auto-mode probe's 3s called a busy agent's passive port blocked).
	_ = conn.SetDeadline(time.Now().Add(max(c.dataTimeout(), c.cfg.ReplyTimeout)))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, &DataConnError{Mode: c.cfg.Mode, Addr: p.addr, Err: fmt.Errorf("tls handshake: %w", err)}
	}
	if !tc.ConnectionState().DidResume {
		c.noResume = true
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// acceptFrom accepts the first connection whose remote IP is want, closing
// any other (so a third party can neither steal nor inject data), until
// timeout.
func acceptFrom(ln *net.TCPListener, want netip.Addr, timeout time.Duration) (net.Conn, error) {
	if err := ln.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	for {
		conn, err := ln.AcceptTCP()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, &DataConnError{Mode: ModeActive, Addr: ln.Addr().String(), Timeout: true,
					Err: &timeoutError{timeout}}
			}
			return nil, &DataConnError{Mode: ModeActive, Addr: ln.Addr().String(), Err: err}
		}
		if addrIP(conn.RemoteAddr()) == want {
			return conn, nil
		}
		conn.Close()
	}
}

// ---- passive ----

func (c *Client) dialPassive(ctx context.Context) (*pendingData, error) {
	addr, err := c.passiveAddr()
	if err != nil {
		return nil, err
	}
	c.info.Used = addr
	timeout := c.dataTimeout()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.cfg.Dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, passiveDialError(dctx, addr, err, timeout)
	}
	return &pendingData{conn: conn, addr: addr}, nil
}

// passiveDialError is the DataConnError of a failed passive data dial bounded by dctx (the
// data-connection timeout).
func passiveDialError(dctx context.Context, addr string, err error, timeout time.Duration) *DataConnError {
	de := &DataConnError{Mode: ModePassive, Addr: addr, Err: err}
	var ne net.Error
	if dctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		de.Timeout = true
		de.Err = &timeoutError{timeout}
	}
	return de
}

// pipeline asks for an eager passive transfer (eagerPassive); before are commands sent ahead
// of it in the same flight, whose final replies end up in replies.
type pipeline struct {
	before  []string
	replies []*reply
}

// eagerPassive is dialPassive for a server known to take commands pipelined and to wait for
// the data connection after the transfer command (a Ferry agent): EPSV, REST (offset > 0) and
// cmd go together, and the dial is left to establish, which runs while the server handles cmd.
// That saves three round trips: EPSV's own, REST's, and the connection's handshake before the
// command. A REST the server refuses fails the session: cmd is under way from offset 0.
func (c *Client) eagerPassive(ctx context.Context, cmd string, offset int64, pl *pipeline) (*pendingData, error) {
	c.info = DataInfo{Mode: ModePassive}
	lines := append(pl.before[:len(pl.before):len(pl.before)], "EPSV")
	if offset > 0 {
		lines = append(lines, "REST "+strconv.FormatInt(offset, 10))
	}
	if err := c.sendAll(append(lines, cmd)); err != nil {
		return nil, err
	}
	for range pl.before {
		r, err := c.cmdReply()
		if err != nil {
			return nil, err
		}
		pl.replies = append(pl.replies, r)
	}
	r, err := c.cmdReply()
	if err != nil {
		return nil, err
	}
	var rest *reply
	if offset > 0 {
		if rest, err = c.cmdReply(); err != nil {
			return nil, err
		}
	}
	if r.Code != 229 {
		// The command was refused for want of a data connection: its reply comes next.
		if _, err := c.readFinal(c.cfg.ReplyTimeout); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("EPSV: %w", r.err())
	}
	port, err := parseEPSV(r.msg())
	if err != nil {
		c.fail(err)
		return nil, err
	}
	if rest != nil && rest.Code != 350 {
		err := fmt.Errorf("REST %d: %w", offset, c.replyErr(rest))
		c.fail(err) // the server runs cmd from offset 0: this session cannot go on
		return nil, err
	}
	addr := net.JoinHostPort(c.remoteIP.String(), strconv.Itoa(port))
	c.info.Cmd, c.info.Announced, c.info.Used = "EPSV", addr, addr
	timeout := c.dataTimeout()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	p := &pendingData{addr: addr, cancel: cancel, sent: true}
	p.dial = func() (net.Conn, error) {
		defer cancel()
		conn, err := c.cfg.Dialer.DialContext(dctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		switch {
		case p.isClosed():
			return nil, net.ErrClosed // given up by startTransfer (a refusal, say)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		return nil, passiveDialError(dctx, addr, err, timeout)
	}
	return p, nil
}

// cmdReply reads the final reply to a command already sent.
func (c *Client) cmdReply() (*reply, error) { return c.readFinal(c.cfg.ReplyTimeout) }

// passiveAddr sends EPSV (or PASV) and returns the address to dial.
func (c *Client) passiveAddr() (string, error) {
	c.info = DataInfo{Mode: ModePassive}
	ipv6 := c.remoteIP.Is6()
	if !c.noEPSV || ipv6 {
		r, err := c.cmd("EPSV")
		if err != nil {
			return "", err
		}
		if r.Code == 229 {
			port, err := parseEPSV(r.msg())
			if err != nil {
				c.fail(err)
				return "", err
			}
			addr := net.JoinHostPort(c.remoteIP.String(), strconv.Itoa(port))
			c.info.Cmd, c.info.Announced = "EPSV", addr
			return addr, nil
		}
		if ipv6 || !(isNotSupported(r.Code) || r.Code/100 == 5) {
			return "", fmt.Errorf("EPSV: %w", r.err())
		}
		c.noEPSV = true
	}
	r, err := c.expect("PASV", 227)
	if err != nil {
		return "", fmt.Errorf("PASV: %w", err)
	}
	ip, port, err := parsePASV(r.msg())
	if err != nil {
		c.fail(err)
		return "", err
	}
	c.info.Cmd = "PASV"
	c.info.Announced = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	c.info.PASVMismatch = ip != c.remoteIP
	host := c.remoteIP
	if c.cfg.UsePASVHost {
		host = ip
	}
	return net.JoinHostPort(host.String(), strconv.Itoa(port)), nil
}

// parseEPSV parses "Entering Extended Passive Mode (|||6446|)".
func parseEPSV(msg string) (int, error) {
	i := strings.IndexByte(msg, '(')
	j := strings.LastIndexByte(msg, ')')
	if i < 0 || j < i+5 {
		return 0, fmt.Errorf("ftp: malformed EPSV reply %q", truncate(msg, 80))
	}
	f := msg[i+1 : j]
	d := f[0]
	parts := strings.Split(f, string(d))
	if len(parts) != 5 || parts[0] != "" || parts[4] != "" {
		return 0, fmt.Errorf("ftp: malformed EPSV reply %q", truncate(msg, 80))
	}
	port, err := strconv.Atoi(parts[3])
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("ftp: malformed EPSV port in %q", truncate(msg, 80))
	}
	return port, nil
}

// parsePASV parses "Entering Passive Mode (h1,h2,h3,h4,p1,p2)"; the
// parentheses are optional.
func parsePASV(msg string) (netip.Addr, int, error) {
	bad := fmt.Errorf("ftp: malformed PASV reply %q", truncate(msg, 80))
	start := strings.IndexAny(msg, "0123456789")
	if start < 0 {
		return netip.Addr{}, 0, bad
	}
	end := start
	for end < len(msg) && (msg[end] == ',' || (msg[end] >= '0' && msg[end] <= '9')) {
		end++
	}
	parts := strings.Split(msg[start:end], ",")
	if len(parts) != 6 {
		return netip.Addr{}, 0, bad
	}
	var b [6]byte
	for i, s := range parts {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return netip.Addr{}, 0, bad
		}
		b[i] = byte(n)
	}
	port := int(b[4])<<8 | int(b[5])
	if port == 0 {
		return netip.Addr{}, 0, bad
	}
	return netip.AddrFrom4([4]byte(b[:4])), port, nil
}

// ---- active ----

func (c *Client) listenActive() (*pendingData, error) {
	c.info = DataInfo{Mode: ModeActive}
	bind := c.localIP
	if c.cfg.ActiveBind != "" {
		ip, err := netip.ParseAddr(c.cfg.ActiveBind)
		if err != nil {
			return nil, fmt.Errorf("ftp: ActiveBind: %w", err)
		}
		bind = ip.Unmap()
	}
	announce := c.localIP
	switch {
	case c.cfg.ActiveAddr != "":
		ip, err := netip.ParseAddr(c.cfg.ActiveAddr)
		if err != nil {
			return nil, fmt.Errorf("ftp: ActiveAddr: %w", err)
		}
		announce = ip.Unmap()
	case c.cfg.ActiveBind != "" && !bind.IsUnspecified():
		announce = bind
	}
	if !announce.IsValid() {
		return nil, errors.New("ftp: cannot determine the address to announce for active mode; set ActiveAddr")
	}

	ln, err := listenRange(bind, c.cfg.ActivePorts)
	if err != nil {
		return nil, &DataConnError{Mode: ModeActive, Addr: net.JoinHostPort(bind.String(), "0"), Err: err}
	}
	port := ln.Addr().(*net.TCPAddr).Port
	p := &pendingData{ln: ln, addr: net.JoinHostPort(announce.String(), strconv.Itoa(port))}
	c.info.Announced, c.info.Used = p.addr, ln.Addr().String()

	if err := c.sendPort(announce, port); err != nil {
		ln.Close()
		return nil, err
	}
	return p, nil
}

func (c *Client) sendPort(ip netip.Addr, port int) error {
	if !c.noEPRT || ip.Is6() {
		af := "1"
		if ip.Is6() {
			af = "2"
		}
		r, err := c.cmd(fmt.Sprintf("EPRT |%s|%s|%d|", af, ip, port))
		if err != nil {
			return err
		}
		if r.Code == 200 {
			c.info.Cmd = "EPRT"
			return nil
		}
		if ip.Is6() || !isNotSupported(r.Code) {
			return c.portRefused("EPRT", ip, port, r)
		}
		c.noEPRT = true
	}
	a := ip.As4()
	r, err := c.cmd(fmt.Sprintf("PORT %d,%d,%d,%d,%d,%d", a[0], a[1], a[2], a[3], port>>8, port&0xff))
	if err != nil {
		return fmt.Errorf("PORT: %w", err)
	}
	if r.Code != 200 {
		return c.portRefused("PORT", ip, port, r)
	}
	c.info.Cmd = "PORT"
	return nil
}

// portRefused is the error for a PORT/EPRT the server refused. A 5xx reply
// to a well-formed command almost always means the server connects back only
// to the address it sees the client at (vsftpd, ftpserverlib and most others
// refuse anything else to prevent FTP bounce attacks): the client is behind
// NAT, or announces the wrong address.
func (c *Client) portRefused(verb string, ip netip.Addr, port int, r *reply) error {
	re := r.err()
	if r.Code/100 != 5 {
		return fmt.Errorf("%s: %w", verb, re)
	}
	return &DataConnError{Mode: ModeActive, Refused: true,
		Addr: net.JoinHostPort(ip.String(), strconv.Itoa(port)), Err: fmt.Errorf("%s: %w", verb, re)}
}

// listenRange listens on ip with a port from pr, trying each port of the
// range from a random start until one binds.
func listenRange(ip netip.Addr, pr PortRange) (*net.TCPListener, error) {
	if pr.Lo <= 0 && pr.Hi <= 0 {
		return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	lo, hi := pr.Lo, pr.Hi
	if hi < lo {
		hi = lo
	}
	if lo < 1 || hi > 65535 {
		return nil, fmt.Errorf("invalid port range %d-%d", pr.Lo, pr.Hi)
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	var err error
	for i := range n {
		port := lo + (start+i)%n
		var ln *net.TCPListener
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port in %d-%d: %w", lo, hi, err)
}
