// Package netcheck probes how an FTP server can be reached from this agent: the control
// connection, a passive data connection, an active connect-back, the address the server announces
// in PASV replies and whether it offers TLS. Each probe is bounded by a short timeout, so a
// blocked path costs seconds, not a transfer's data timeout. `ferryctl doctor` shows the result
// (through the Diagnose RPC); the transfer engine's auto mode relies on the same failure causes.
//
// The package knows FTP (agent/ftpclient) and nothing of gRPC or of the transfer engine: the
// caller says how to log in (for another agent, with a one-time credential it obtains per
// session).
package netcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// Status is the outcome of one check.
type Status int

const (
	// Skip: not run (an earlier check failed, or it does not apply).
	Skip Status = iota
	// OK: works.
	OK
	// Warn: works, or does not matter for transfers, but something is off.
	Warn
	// Fail: does not work.
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	case Fail:
		return "fail"
	}
	return "skip"
}

// Names of the checks, in the order they run.
const (
	CheckControl = "control"      // TCP connect, greeting and login
	CheckPASV    = "pasv-address" // PASV reply address against the control connection's
	CheckPassive = "passive"      // a passive data connection (NLST over EPSV/PASV)
	CheckActive  = "active"       // an active connect-back (NLST over EPRT/PORT)
	CheckTLS     = "tls"          // AUTH TLS offered on the control port
)

// Check is the result of one probe.
type Check struct {
	Name     string
	Status   Status
	Duration time.Duration
	Detail   string
}

// Mode is the data-connection mode a report suggests.
type Mode int

const (
	// ModeNone: neither mode works from this agent.
	ModeNone Mode = iota
	ModePassive
	ModeActive
)

func (m Mode) String() string {
	switch m {
	case ModePassive:
		return "passive"
	case ModeActive:
		return "active"
	}
	return "none"
}

// Login is where and as whom one probe session logs in.
type Login struct {
	Addr           string // host:port of the FTP control port
	User, Password string
	// PassivePorts is the server's passive port range when known ("50000-50100"), for the
	// recommendation; empty when unknown (a third-party server).
	PassivePorts string
	// TLS, when set, protects the session (FTPS); Implicit: TLS from the first byte.
	TLS      *tls.Config
	Implicit bool
}

// Configure makes cfg log in as l: its address, user, password and TLS.
func (l Login) Configure(cfg *ftpclient.Config) {
	cfg.Addr, cfg.User, cfg.Password = l.Addr, l.User, l.Password
	cfg.TLS, cfg.Implicit = l.TLS, l.Implicit
}

// Target is the FTP server to probe.
type Target struct {
	// Path is listed (NLST) to open data connections: a directory or a file the login may
	// read; "" or "." is the login directory.
	Path string
	// Login is called once per FTP session the probe opens (up to twice): another agent
	// issues a one-time credential per session.
	Login func(ctx context.Context) (Login, error)
}

// Options tune a probe.
type Options struct {
	// Timeout bounds each probe: connect and login, each data connection, the TLS check.
	// Default 3 s.
	Timeout time.Duration
	// Client carries this agent's active-mode settings (ActiveAddr, ActiveBind, ActivePorts);
	// the address, credentials, mode and timeouts are set by the probe.
	Client ftpclient.Config
}

// DefaultTimeout is the per-probe timeout when Options.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// Report is the result of Probe.
type Report struct {
	Addr      string // the FTP control address probed (empty if no login could be obtained)
	Checks    []Check
	Passive   bool // a passive data connection worked
	Active    bool // an active connect-back worked
	Suggested Mode
	// Recommendation says in plain words what to do.
	Recommendation string

	// Facts behind the recommendation.
	announced    netip.AddrPort // PASV reply address, when it differs from the control address
	controlIP    netip.Addr
	passivePort  string // port the server announced for the failed passive connection
	activeAddr   string // address announced in EPRT/PORT
	passiveRange string
	activeWhy    string // "refused" or "timeout" or ""
	controlErr   error
}

// Check returns the check called name, and whether it ran (or was recorded as skipped).
func (r Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Probe runs the checks against t. It never returns early with an error: every problem is a
// failed check, and the report says what to do about it.
func Probe(ctx context.Context, t Target, o Options) Report {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	p := &prober{t: t, o: o}
	p.run(ctx)
	p.r.Recommendation, p.r.Suggested = recommend(&p.r)
	return p.r
}

type prober struct {
	t     Target
	o     Options
	r     Report
	login Login
}

func (p *prober) add(name string, st Status, start time.Time, format string, args ...any) {
	d := time.Duration(0)
	if !start.IsZero() {
		d = time.Since(start)
	}
	p.r.Checks = append(p.r.Checks, Check{Name: name, Status: st, Duration: d, Detail: fmt.Sprintf(format, args...)})
}

// session logs in, in passive mode, bounded by the probe timeout.
func (p *prober) session(ctx context.Context) (*ftpclient.Client, error) {
	lctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	l, err := p.t.Login(lctx)
	cancel()
	if err != nil {
		return nil, err
	}
	p.login = l
	p.r.Addr = l.Addr
	if l.PassivePorts != "" {
		p.r.passiveRange = l.PassivePorts
	}
	cfg := p.o.Client
	l.Configure(&cfg)
	cfg.Mode = ftpclient.ModePassive
	// The TCP connect is bounded by the probe timeout (a dropped SYN is a firewall); the
	// greeting and login get LoginGrace more: a server that delays its 530 refused the
	// password, and must not be diagnosed as a firewall.
	cfg.Dialer = ConnectBound(cfg.Dialer, p.o.Timeout)
	cfg.DialTimeout, cfg.DataTimeout, cfg.FirstDataTimeout = p.o.Timeout+LoginGrace, p.o.Timeout, 0
	cfg.ReplyTimeout = max(2*p.o.Timeout, LoginGrace)
	return ftpclient.Dial(ctx, cfg)
}

func (p *prober) run(ctx context.Context) {
	start := time.Now()
	c, err := p.session(ctx)
	if err != nil {
		p.r.controlErr = err
		p.add(CheckControl, Fail, start, "%s", oneLine(err.Error()))
		for _, n := range []string{CheckPASV, CheckPassive, CheckActive, CheckTLS} {
			p.add(n, Skip, time.Time{}, "no control connection")
		}
		return
	}
	p.r.controlIP = addrIP(c.RemoteAddr())
	p.add(CheckControl, OK, start, "connected to %s and logged in", p.r.Addr)

	p.checkPASV(ctx, c)
	passiveOK := p.checkData(ctx, c, ftpclient.ModePassive)
	if !passiveOK {
		// The session may be broken or hold a half-open transfer: use a fresh one.
		c.Close()
		if c, err = p.session(ctx); err != nil {
			p.add(CheckActive, Fail, time.Time{}, "could not log in again: %s", oneLine(err.Error()))
			c = nil
		}
	}
	if c != nil {
		p.checkData(ctx, c, ftpclient.ModeActive)
		c.Close()
	}
	p.checkTLS(ctx)
}

func (p *prober) checkPASV(ctx context.Context, c *ftpclient.Client) {
	if p.r.controlIP.Is6() {
		p.add(CheckPASV, Skip, time.Time{}, "IPv6 control connection: EPSV replies carry no address")
		return
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	ap, err := c.PASVAddress(cctx)
	switch {
	case err != nil:
		p.add(CheckPASV, Warn, start, "PASV failed: %s (EPSV may still work)", oneLine(err.Error()))
	case ap.Addr() != p.r.controlIP:
		p.r.announced = ap
		p.add(CheckPASV, Warn, start, "the server announces %s in PASV replies but is reached at %s "+
			"(behind NAT without its public address set); Ferry connects to %s instead, like lftp's fix-pasv-address",
			ap.Addr(), p.r.controlIP, p.r.controlIP)
	default:
		p.add(CheckPASV, OK, start, "the server announces %s, the address it is reached at", ap.Addr())
	}
}

// checkData opens one data connection in mode with NLST of the target path.
func (p *prober) checkData(ctx context.Context, c *ftpclient.Client, mode ftpclient.Mode) bool {
	name := CheckPassive
	if mode == ftpclient.ModeActive {
		name = CheckActive
	}
	if err := c.SetMode(mode); err != nil {
		p.add(name, Fail, time.Time{}, "%v", err)
		return false
	}
	start := time.Now()
	// The data timeout bounds the connection; this bounds the replies around it.
	cctx, cancel := context.WithTimeout(ctx, 3*p.o.Timeout)
	defer cancel()
	path := p.t.Path
	if path == "" {
		path = "."
	}
	_, err := c.NameList(cctx, path)
	info := c.DataInfo()
	var de *ftpclient.DataConnError
	var re *ftpclient.ReplyError
	switch {
	case err == nil && mode == ftpclient.ModePassive:
		p.r.Passive = true
		p.add(name, OK, start, "data connection to %s (%s)", info.Used, info.Cmd)
		return true
	case err == nil:
		p.r.Active = true
		p.add(name, OK, start, "the server connected back to %s (%s)", info.Announced, info.Cmd)
		return true
	case errors.As(err, &de) && mode == ftpclient.ModePassive:
		if _, port, e := net.SplitHostPort(de.Addr); e == nil {
			p.r.passivePort = port
		}
		p.add(name, Fail, start, "no data connection to %s: %s: the data port is unreachable", de.Addr, cause(de))
	case errors.As(err, &de):
		p.r.activeAddr = de.Addr
		switch {
		case de.Refused:
			p.r.activeWhy = "refused"
			p.add(name, Fail, start, "the server refused to connect back to %s (%s): it sees this agent at another address (NAT)",
				de.Addr, oneLine(de.Err.Error()))
		case de.Timeout:
			p.r.activeWhy = "timeout"
			p.add(name, Fail, start, "the server did not connect back to %s (%s): inbound connections to this agent are blocked",
				de.Addr, cause(de))
		default:
			p.add(name, Fail, start, "the server could not connect back to %s: %s", de.Addr, oneLine(de.Err.Error()))
		}
	case errors.As(err, &re) && mode == ftpclient.ModePassive && info.Used != "":
		// The TCP connection was made before NLST was sent: the path works, the listing did not.
		p.r.Passive = true
		p.add(name, OK, start, "data connection to %s (%s); the server then answered NLST with %d %s", info.Used, info.Cmd, re.Code, oneLine(re.Msg))
		return true
	case errors.As(err, &re):
		p.add(name, Warn, start, "inconclusive: the server answered NLST %s with %d %s", path, re.Code, oneLine(re.Msg))
	default:
		p.add(name, Fail, start, "%s", oneLine(err.Error()))
	}
	return false
}

// checkTLS asks for AUTH TLS on a fresh control connection (no login, no handshake).
func (p *prober) checkTLS(ctx context.Context) {
	start := time.Now()
	if p.login.Implicit {
		// The probe sessions were TLS from their first byte.
		p.add(CheckTLS, OK, start, "implicit FTPS (ftps://): the probe sessions used TLS")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	var d ftpclient.ContextDialer = &net.Dialer{}
	if p.o.Client.Dialer != nil {
		d = p.o.Client.Dialer // the agent's outbound policy
	}
	conn, err := d.DialContext(cctx, "tcp", p.r.Addr)
	if err != nil {
		p.add(CheckTLS, Warn, start, "could not connect again: %s", oneLine(err.Error()))
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(cctx, func() { conn.Close() })
	defer stop()
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		p.add(CheckTLS, Warn, start, "no greeting: %s", oneLine(err.Error()))
		return
	}
	if err := tp.PrintfLine("AUTH TLS"); err != nil {
		p.add(CheckTLS, Warn, start, "%s", oneLine(err.Error()))
		return
	}
	code, msg, err := tp.ReadResponse(234)
	switch {
	case err == nil:
		p.add(CheckTLS, OK, start, "AUTH TLS offered (explicit FTPS)")
	case code != 0:
		p.add(CheckTLS, Warn, start, "AUTH TLS not offered (%d %s): logins and data cross the network in clear", code, oneLine(msg))
	default:
		p.add(CheckTLS, Warn, start, "AUTH TLS: %s", oneLine(err.Error()))
	}
}

func cause(de *ftpclient.DataConnError) string {
	if de.Timeout {
		var ne interface{ Timeout() bool }
		if errors.As(de.Err, &ne) {
			return de.Err.Error()
		}
		return "timed out"
	}
	return oneLine(de.Err.Error())
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// LoginGrace is how long a probe waits for the greeting and the login reply once the control
// connection is open: servers delay a failed login's 530 by seconds (vsftpd's
// delay_failed_login, Ferry's own guessing brake up to 8 s).
const LoginGrace = 10 * time.Second

// ConnectBound returns a dialer whose first dial (the control connection) gives up after
// timeout; later dials (passive data connections) keep the caller's own bounds. d nil means a
// net.Dialer.
func ConnectBound(d ftpclient.ContextDialer, timeout time.Duration) ftpclient.ContextDialer {
	if d == nil {
		d = &net.Dialer{}
	}
	return &connectBound{d: d, timeout: timeout}
}

type connectBound struct {
	d       ftpclient.ContextDialer
	timeout time.Duration
	used    atomic.Bool
}

func (c *connectBound) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.timeout <= 0 || c.used.Swap(true) {
		return c.d.DialContext(ctx, network, addr)
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.d.DialContext(dctx, network, addr)
}
