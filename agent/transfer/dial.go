package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/netcheck"
)

// dialer opens FTP sessions for the engine: it logs in (a one-time grant from a peer agent for
// agent:// endpoints), bounds the sessions open to one server, and remembers per peer the route
// that worked last (auto mode).
type dialer struct {
	opts    ClientOptions
	peers   Peers
	policy  *Policy
	connect func(ctx context.Context, cfg ftpclient.Config) (Session, error)
	routes  *modeMemory
	hosts   hostSlots
}

func dialFTP(ctx context.Context, cfg ftpclient.Config) (Session, error) {
	c, err := ftpclient.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// dial opens an FTP session to a remote endpoint, waiting for a free session slot to its
// server. With probe (auto mode) the first data connection is bounded by ProbeTimeout.
func (d *dialer) dial(ctx context.Context, r Endpoint, mode Mode, write, probe bool) (Session, error) {
	l, err := d.login(ctx, r, write)
	if err != nil {
		return nil, err
	}
	return d.dialLogin(ctx, l, mode, probe)
}

// dialLogin opens an FTP session with login l, waiting for a free session slot to its server.
func (d *dialer) dialLogin(ctx context.Context, l netcheck.Login, mode Mode, probe bool) (Session, error) {
	cfg := d.loginConfig(l, mode)
	if probe {
		// A quick probe: a control port that does not accept the connection in time is as
		// blocked as a data port that does not, and auto mode goes on to the next way. The
		// greeting and login keep their own time: a server that delays its 530 refuses a
		// password, it is no firewall.
		cfg.FirstDataTimeout = d.opts.ProbeTimeout
		cfg.Dialer = netcheck.ConnectBound(cfg.Dialer, d.opts.ProbeTimeout)
	}
	slot := d.hosts.get(l.Addr)
	if err := slot.acquire(ctx); err != nil {
		return nil, err
	}
	return d.connectHeld(ctx, cfg, l.Addr, slot.release)
}

// connectHeld opens the session cfg describes; release (if not nil) gives back its slot when
// the session closes or fails to open.
func (d *dialer) connectHeld(ctx context.Context, cfg ftpclient.Config, addr string, release func()) (Session, error) {
	if release == nil {
		release = func() {}
	}
	s, err := d.connect(ctx, cfg)
	if err != nil {
		release()
		return nil, &controlError{addr: addr, err: err}
	}
	return &held{Session: s, release: release}, nil
}

// held is a session holding a slot of its server's limit until Close.
type held struct {
	Session
	once    sync.Once
	release func()
}

// unheld is s itself, the session inside when s is held: what it can do beyond Session (its
// RTT, whether it is usable, a tree stream) is the client's.
func unheld(s Session) Session {
	if h, ok := s.(*held); ok {
		return h.Session
	}
	return s
}

func (h *held) Close() error {
	err := h.Session.Close()
	h.once.Do(h.release)
	return err
}

// closeLater closes s without the job waiting: Close's polite QUIT waits for the server's
// reply (a round trip, bounded by the client's quit timeout), which a transfer that is over
// need not wait for. The job's end (run) waits for every session closed this way, so none
// outlives the job, and Manager.Close waits for the job.
func (j *job) closeLater(s Session) {
	j.closing.Go(func() { s.Close() })
}

// login returns where and as whom to log in to a remote endpoint.
func (d *dialer) login(ctx context.Context, r Endpoint, write bool) (netcheck.Login, error) {
	if r.Kind != KindAgent {
		l := netcheck.Login{Addr: r.Host, User: r.User, Password: r.Password}
		return l, d.secure(&l, r.TLS, r.Pin)
	}
	g, err := d.peers.Grant(ctx, r.Host, grantPath(r.Path), write)
	if err != nil {
		return netcheck.Login{}, fmt.Errorf("peer agent %s: %w", r.Host, err)
	}
	return d.grantLogin(g)
}

// grant asks the peer agent of r for a credential for r's path, good for logins logins when
// the peer grants several (else for one: Grant.Logins says), and times the call (Grant.Took).
func (d *dialer) grant(ctx context.Context, r Endpoint, write bool, logins int) (Grant, error) {
	start := time.Now()
	var g Grant
	err := errSingleUse
	if lg, ok := d.peers.(loginsGranter); ok && logins > 1 {
		g, err = lg.GrantLogins(ctx, r.Host, grantPath(r.Path), write, logins)
	}
	if errors.Is(err, errSingleUse) {
		g, err = d.peers.Grant(ctx, r.Host, grantPath(r.Path), write)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("peer agent %s: %w", r.Host, err)
	}
	g.Took = time.Since(start)
	return g, nil
}

// grantLogin is where and as whom a peer agent's grant logs in.
func (d *dialer) grantLogin(g Grant) (netcheck.Login, error) {
	l := netcheck.Login{Addr: g.FTPAddr, User: g.User, Password: g.Password, PassivePorts: g.PassivePorts}
	if g.TLSPin == "" {
		// The peer's FTP server has TLS off: plain FTP, as its grant says.
		return l, nil
	}
	return l, d.secure(&l, TLSExplicit, g.TLSPin)
}

// loginConfig is clientConfig(mode) logging in as l.
func (d *dialer) loginConfig(l netcheck.Login, mode Mode) ftpclient.Config {
	cfg := d.clientConfig(mode)
	l.Configure(&cfg)
	return cfg
}

func (d *dialer) clientConfig(mode Mode) ftpclient.Config {
	o := d.opts
	cm := ftpclient.ModePassive
	if mode == ModeActive {
		cm = ftpclient.ModeActive
	}
	return ftpclient.Config{
		Dialer:     d.policy.sessionDialer(),
		Mode:       cm,
		ActiveAddr: o.ActiveAddr, ActiveBind: o.ActiveBind, ActivePorts: o.ActivePorts,
		DialTimeout: o.DialTimeout, DataTimeout: o.DataTimeout, StallTimeout: o.StallTimeout,
		TCPCongestion: o.TCPCongestion,
	}
}

// controlError is a failure to open or log in on the FTP control connection.
type controlError struct {
	addr string
	err  error
}

func (e *controlError) Error() string { return fmt.Sprintf("ftp %s: %v", e.addr, e.err) }
func (e *controlError) Unwrap() error { return e.err }

// unreachable reports whether the control connection failed at the network level (not a
// refused login, not a server that answered nonsense): the FTP port cannot be reached.
func (e *controlError) unreachable() bool {
	var re *ftpclient.ReplyError
	return !errors.As(e.err, &re) && !errors.Is(e.err, ftpclient.ErrReplyTooLong) &&
		!errors.Is(e.err, ErrPolicy) && !errors.Is(e.err, ftpclient.ErrNotFTP)
}

// canReach refuses an agent:// endpoint when this manager has no way to reach peer agents.
func (m *Manager) canReach(field string, e Endpoint) error {
	if e.Kind == KindAgent && m.cfg.Peers == nil {
		return invalid(field, "agent:// endpoints are not available on this agent")
	}
	return nil
}

// Diagnose probes how the FTP server of url (ftp:// or agent://) can be reached from this
// agent; timeout bounds each check (0: ProbeTimeout).
func (m *Manager) Diagnose(ctx context.Context, url string, timeout time.Duration) (netcheck.Report, error) {
	e, err := ParseEndpoint("url", url)
	if err != nil {
		return netcheck.Report{}, err
	}
	if e.Kind == KindLocal {
		return netcheck.Report{}, invalid("url", "want an ftp:// or agent:// URL, not a local path")
	}
	if err := m.canReach("url", e); err != nil {
		return netcheck.Report{}, err
	}
	if err := m.cfg.Policy.Check(ctx, e.Host); err != nil {
		return netcheck.Report{}, err
	}
	if timeout <= 0 {
		timeout = m.cfg.Client.ProbeTimeout
	}
	cfg := m.dialer.clientConfig(ModePassive)
	return netcheck.Probe(ctx, netcheck.Target{
		Path:  e.Path,
		Login: func(ctx context.Context) (netcheck.Login, error) { return m.dialer.login(ctx, e, false) },
	}, netcheck.Options{Timeout: timeout, Client: cfg}), nil
}

// Entry is one listed file or directory.
type Entry struct {
	Name    string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// ListFiles lists a directory, or describes a file, at a local path or an ftp:// / agent:// URL.
// In auto mode a listing whose data connection fails in passive mode is retried in active mode.
func (m *Manager) ListFiles(ctx context.Context, target string, mode Mode) ([]Entry, error) {
	e, err := ParseEndpoint("url", target)
	if err != nil {
		return nil, err
	}
	if e.Kind == KindLocal {
		return m.listLocal(e.Path)
	}
	if err := m.canReach("url", e); err != nil {
		return nil, err
	}
	order := []Mode{mode}
	if mode == ModeAuto {
		order = []Mode{ModePassive, ModeActive}
		if r, ok := m.dialer.routes.get(e.Host); ok && !r.reversed && r.mode == ModeActive {
			order = []Mode{ModeActive, ModePassive}
		}
	}
	for i, md := range order {
		out, err := m.listRemote(ctx, e, md, mode == ModeAuto)
		var dce *ftpclient.DataConnError
		if err != nil && i+1 < len(order) && errors.As(err, &dce) {
			continue
		}
		return out, classify(err)
	}
	return nil, nil // not reached
}

func (m *Manager) listRemote(ctx context.Context, e Endpoint, mode Mode, probe bool) ([]Entry, error) {
	c, err := m.dialer.dial(ctx, e, mode, false, probe)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := c.Stat(ctx, e.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	if !st.IsDir {
		return []Entry{{Name: path.Base(e.Path), Size: st.Size, ModTime: st.ModTime}}, nil
	}
	list, err := c.List(ctx, e.Path)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", e.Path, err)
	}
	out := make([]Entry, 0, len(list))
	for _, x := range list {
		if x.Name == "." || x.Name == ".." {
			continue
		}
		out = append(out, Entry{Name: x.Name, Size: x.Size, ModTime: x.ModTime, IsDir: x.IsDir})
	}
	return out, nil
}

func (m *Manager) listLocal(p string) ([]Entry, error) {
	fi, err := m.root.Stat(p)
	if err != nil {
		return nil, WithKind(ErrNotFound, fmt.Errorf("url: %q does not exist under the agent root", p))
	}
	if !fi.IsDir() {
		return []Entry{{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()}}, nil
	}
	des, err := fs.ReadDir(m.root.FS(), p)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(des))
	for _, d := range des {
		info, err := d.Info()
		if err != nil {
			continue
		}
		out = append(out, Entry{Name: d.Name(), Size: info.Size(), ModTime: info.ModTime(), IsDir: d.IsDir()})
	}
	return out, nil
}

// DescribeGrant is what a grant for p (a path under the root) tells the peer about it: a
// regular file's size and modification time (to the second, as MLST gives it), or that it is
// a directory, or that neither is there. Only what the root holds is looked at.
func (m *Manager) DescribeGrant(p string) GrantedPath {
	fi, err := m.root.Stat(p)
	switch {
	case err != nil || (!fi.IsDir() && !fi.Mode().IsRegular()):
		return GrantedPath{} // a FIFO or device: the FTP server describes it itself
	case fi.IsDir():
		return GrantedPath{Exists: true, IsDir: true}
	}
	return GrantedPath{Exists: true, Size: fi.Size(), ModTime: fi.ModTime().UTC().Truncate(time.Second)}
}
