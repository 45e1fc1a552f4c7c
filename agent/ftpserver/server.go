package ftpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	ftplib "github.com/fclairamb/ftpserverlib"
)

// Server is one FTP server serving Config.Root. It holds no global state;
// several Servers can run in one process.
type Server struct {
	cfg  Config
	v    *validated
	log  *slog.Logger
	fs   *rootFs
	lib  *ftplib.FtpServer
	ln   *trackingListener
	addr net.Addr

	mu       sync.Mutex
	closed   bool
	stopped  bool                   // StopAccepting closed the listener
	creds    map[string]*credential // one-time credentials by user name
	conns    map[string]net.Conn    // live control connections by connKey
	live     int                    // accepted control connections not yet disconnected
	drained  chan struct{}          // closed once closed && live == 0
	drainSet bool

	// Floods and accounts (limits.go, users.go, pasvbind.go).
	perIP      map[string]int // admitted control connections by sourceKey
	refused    int            // connections refused since refusedLog
	refusedLog time.Time
	logins     *loginLimiter      // nil: failed logins are not slowed down
	accounts   *accountSet        // Config.Accounts
	homes      map[string]*rootFs // the accounts' homes by cleaned name, each its own root
	// pluginHomes are homes Authenticators named, opened at their first login (auth.go).
	pluginHomes map[string]*rootFs
	pasvIP      netip.Addr // the control listener's IP, bound by passive listeners; invalid = any
	data        *dataSide  // congestion control and digests of data transfers (datafile.go)

	closeOnce sync.Once
	closeErr  error
}

// Time Close waits for sessions: first after half-closing their control
// connections (they end cleanly and abort transfers), then after closing
// them outright.
const (
	closeGrace = 2 * time.Second
	closeForce = 3 * time.Second
)

// New validates cfg (errors name the offending field), opens Root and binds
// the control listener. Call Serve to accept clients.
func New(cfg Config) (*Server, error) {
	v, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	var fs *rootFs
	if cfg.Storage != nil {
		fs = &rootFs{root: cfg.Storage}
	} else if fs, err = newRootFs(cfg.Root); err != nil {
		return nil, fieldErr("Root", "%v", err)
	}
	homes, err := openHomes(fs, v.homes)
	if err != nil {
		_ = fs.close()
		return nil, err
	}
	accounts, err := newAccountSet(v.accounts)
	if err != nil {
		closeHomes(homes)
		_ = fs.close()
		return nil, fieldErr("Accounts", "%v", err)
	}
	lc := net.ListenConfig{}
	l, err := lc.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		closeHomes(homes)
		_ = fs.close()
		return nil, fieldErr("Listen", "%v", err)
	}

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		v:        v,
		log:      log,
		fs:       fs,
		addr:     l.Addr(),
		creds:    make(map[string]*credential),
		conns:    make(map[string]net.Conn),
		drained:  make(chan struct{}),
		perIP:    make(map[string]int),
		logins:   newLoginLimiter(v.loginDelay, v.loginMax),
		accounts: accounts,
		homes:    homes,
		data:     &dataSide{congestion: cfg.TCPCongestion, hashes: newHashCache(), log: log},
	}
	if ip, ok := addrIP(l.Addr()); ok && !ip.IsUnspecified() {
		s.pasvIP = ip
	}
	s.ln = &trackingListener{Listener: l, s: s}
	s.lib = ftplib.NewFtpServer(&mainDriver{s: s})
	s.lib.Logger = slog.New(libLog{log.Handler()}).With("component", "ftpserverlib")
	if err := s.lib.Listen(); err != nil { // loads settings, adopts s.ln
		_ = l.Close()
		closeHomes(homes)
		_ = fs.close()
		return nil, fmt.Errorf("ftpserver: %w", err)
	}
	log.Info("ftp server listening", "addr", s.addr.String(), "root", cfg.Root,
		"passivePorts", fmt.Sprintf("%d-%d", cfg.PassivePorts.Lo, cfg.PassivePorts.Hi),
		"tls", cfg.TLS != nil, "anonymousRead", cfg.AnonymousRead, "users", len(v.users)+len(v.accounts),
		"maxConns", v.maxConns, "maxConnsPerIP", v.maxPerIP, "loginDelay", v.loginDelay.String())
	return s, nil
}

// Addr returns the bound control address.
func (s *Server) Addr() net.Addr { return s.addr }

// Serve accepts clients until Close; it returns nil after Close.
func (s *Server) Serve() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	err := s.lib.Serve()
	s.mu.Lock()
	closed = s.closed || s.stopped
	s.mu.Unlock()
	if closed {
		return nil
	}
	return err
}

// Close stops the listener and all sessions (in-flight transfers are
// aborted) and waits a few seconds at most for them to end. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]net.Conn, 0, len(s.conns))
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		s.creds = map[string]*credential{}
		s.maybeDrainedLocked()
		s.mu.Unlock()

		if err := s.ln.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) { // StopAccepting closed it
			s.closeErr = err
		}

		// Half-close first: ftpserverlib reads EOF, closes the transfer
		// (aborting a running copy) and the connection, and says goodbye
		// through ClientDisconnected.
		for _, c := range conns {
			if cr, ok := c.(interface{ CloseRead() error }); ok {
				_ = cr.CloseRead()
			} else {
				_ = c.Close()
			}
		}
		if !s.waitDrained(closeGrace) {
			for _, c := range conns {
				_ = c.Close()
			}
			if !s.waitDrained(closeForce) {
				s.log.Warn("ftp sessions still running after close")
			}
		}
		closeHomes(s.homes)
		s.mu.Lock()
		closeHomes(s.pluginHomes)
		s.mu.Unlock()
		if err := s.fs.close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		s.log.Info("ftp server closed", "addr", s.addr.String())
	})
	return s.closeErr
}

func (s *Server) waitDrained(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.drained:
		return true
	case <-t.C:
		return false
	}
}

func (s *Server) maybeDrainedLocked() {
	if s.closed && s.live == 0 && !s.drainSet {
		s.drainSet = true
		close(s.drained)
	}
}

func connKey(remote, local net.Addr) string {
	return remote.String() + "|" + local.String()
}

// trackingListener records control connections so Close can end them
// (ftpserverlib's own Stop only closes the listener) and hands each to the
// library behind the conformance filter, controlConn.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	s := l.s
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := sourceKey(c.RemoteAddr())
		s.mu.Lock()
		if !s.closed && !s.admitLocked(key) {
			s.mu.Unlock()
			s.refuse(c, key) // over Config.MaxConns/MaxConnsPerIP: the library never sees it
			continue
		}
		cc := newControlConn(s, c)
		s.live++ // matched by ClientDisconnected, which ftpserverlib always calls
		if s.closed {
			_ = c.Close()
		} else {
			s.conns[connKey(c.RemoteAddr(), c.LocalAddr())] = cc
		}
		s.mu.Unlock()
		return cc, nil
	}
}

// mainDriver implements ftpserverlib.MainDriver for a Server.
type mainDriver struct{ s *Server }

var _ ftplib.MainDriver = (*mainDriver)(nil)

func (d *mainDriver) GetSettings() (*ftplib.Settings, error) {
	s := d.s
	st := &ftplib.Settings{
		Listener:                s.ln,
		ListenAddr:              s.addr.String(), // informational (STAT) only
		Banner:                  welcomeBanner,
		PublicIPResolver:        s.resolvePASVHost,
		IdleTimeout:             s.v.idleSeconds,
		ConnectionTimeout:       int(dataConnTimeout / time.Second),
		ActiveTransferPortNon20: true,
		EnableHASH:              true,
		DisableSite:             true,
		DefaultTransferType:     ftplib.TransferTypeBinary,
		ActiveConnectionsCheck:  ftplib.IPMatchRequired,
		PasvConnectionsCheck:    ftplib.IPMatchRequired,
	}
	if pr := s.cfg.PassivePorts; !pr.isZero() {
		st.PassiveTransferPortRange = ftplib.PortRange{Start: pr.Lo, End: pr.Hi}
	}
	return st, nil
}

func (d *mainDriver) ClientConnected(cc ftplib.ClientContext) (string, error) {
	d.s.attach(cc)
	d.s.log.Debug("ftp client connected", "client", cc.ID(), "remote", cc.RemoteAddr().String())
	return welcomeBanner, nil
}

func (d *mainDriver) ClientDisconnected(cc ftplib.ClientContext) {
	s := d.s
	s.mu.Lock()
	delete(s.conns, connKey(cc.RemoteAddr(), cc.LocalAddr()))
	s.releaseLocked(sourceKey(cc.RemoteAddr()))
	s.live--
	s.maybeDrainedLocked()
	s.mu.Unlock()
	sessionOf(cc).end()
}

var errAuth = errors.New("authentication failed")

func (d *mainDriver) AuthUser(cc ftplib.ClientContext, user, _ string) (ftplib.ClientDriver, error) {
	// The control connection filter checked the password (see controlConn.pass).
	pol, ok := d.s.acceptedLogin(cc, user)
	if !ok {
		return nil, errAuth
	}
	fs := d.s.fs
	if h := pol.home; h != "" && h != "." {
		if fs = d.s.homeFs(h); fs == nil { // cannot happen: homes are opened in New or at login
			return nil, errAuth
		}
	}
	return &sessionFs{fs: fs, pol: pol, cwd: cc.Path, lastCmd: cc.GetLastCommand, sess: sessionOf(cc), data: d.s.data, ctl: d.s.controlOf(cc),
		publish: d.s.publishCheck(cc.RemoteAddr(), cc.LocalAddr(), user, pol.home)}, nil
}

func (d *mainDriver) GetTLSConfig() (*tls.Config, error) {
	if d.s.cfg.TLS == nil {
		return nil, errNoTLS
	}
	return d.s.cfg.TLS, nil
}

// resolvePASVHost implements PublicHost and HostOverrides for PASV replies.
func (s *Server) resolvePASVHost(cc ftplib.ClientContext) (string, error) {
	return pasvHost(s.v.overrides, s.v.publicHost, cc.RemoteAddr(), cc.LocalAddr())
}
