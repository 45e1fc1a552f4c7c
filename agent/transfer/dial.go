package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/netcheck"
)

// dial opens an FTP session to a remote endpoint; for an agent:// endpoint it first asks the peer
// for a one-time credential scoped to the path and direction. With probe (auto mode) the first
// data connection is bounded by ProbeTimeout instead of DataTimeout.
func (m *Manager) dial(ctx context.Context, r Endpoint, mode Mode, write, probe bool) (*ftpclient.Client, error) {
	l, err := m.login(ctx, r, write)
	if err != nil {
		return nil, err
	}
	cfg := m.clientConfig(mode)
	cfg.Addr, cfg.User, cfg.Password = l.Addr, l.User, l.Password
	if probe {
		// A quick probe: a control port that does not answer in time is as blocked as a data
		// port that does not, and auto mode goes on to the next way.
		cfg.FirstDataTimeout = m.cfg.Client.ProbeTimeout
		cfg.DialTimeout = min(cfg.DialTimeout, m.cfg.Client.ProbeTimeout)
	}
	c, err := ftpclient.Dial(ctx, cfg)
	if err != nil {
		return nil, &controlError{addr: l.Addr, err: err}
	}
	return c, nil
}

// canReach refuses an agent:// endpoint when this manager has no way to reach peer agents.
func (m *Manager) canReach(field string, e Endpoint) error {
	if e.Kind == KindAgent && m.cfg.Peers == nil {
		return invalid(field, "agent:// endpoints are not available on this agent")
	}
	return nil
}

// login returns where and as whom to log in to a remote endpoint.
func (m *Manager) login(ctx context.Context, r Endpoint, write bool) (netcheck.Login, error) {
	if r.Kind != KindAgent {
		return netcheck.Login{Addr: r.Host, User: r.User, Password: r.Password}, nil
	}
	g, err := m.cfg.Peers.Grant(ctx, r.Host, r.Path, write)
	if err != nil {
		return netcheck.Login{}, fmt.Errorf("peer agent %s: %w", r.Host, err)
	}
	return netcheck.Login{Addr: g.FTPAddr, User: g.User, Password: g.Password, PassivePorts: g.PassivePorts}, nil
}

func (m *Manager) clientConfig(mode Mode) ftpclient.Config {
	o := m.cfg.Client
	cm := ftpclient.ModePassive
	if mode == ModeActive {
		cm = ftpclient.ModeActive
	}
	return ftpclient.Config{
		Mode:       cm,
		ActiveAddr: o.ActiveAddr, ActiveBind: o.ActiveBind, ActivePorts: o.ActivePorts,
		DialTimeout: o.DialTimeout, DataTimeout: o.DataTimeout,
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
// refused login): the FTP port cannot be reached from here at all.
func (e *controlError) unreachable() bool {
	var re *ftpclient.ReplyError
	return !errors.As(e.err, &re)
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
	if timeout <= 0 {
		timeout = m.cfg.Client.ProbeTimeout
	}
	cfg := m.clientConfig(ModePassive)
	return netcheck.Probe(ctx, netcheck.Target{
		Path:  e.Path,
		Login: func(ctx context.Context) (netcheck.Login, error) { return m.login(ctx, e, false) },
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
		if r, ok := m.modes.get(e.Host); ok && !r.reversed && r.mode == ModeActive {
			order = []Mode{ModeActive, ModePassive}
		}
	}
	for i, md := range order {
		out, err := m.listRemote(ctx, e, md, mode == ModeAuto)
		var dce *ftpclient.DataConnError
		if err != nil && i+1 < len(order) && errors.As(err, &dce) {
			continue
		}
		return out, err
	}
	return nil, nil // not reached
}

func (m *Manager) listRemote(ctx context.Context, e Endpoint, mode Mode, probe bool) ([]Entry, error) {
	c, err := m.dial(ctx, e, mode, false, probe)
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
		return nil, invalid("url", fmt.Sprintf("%q does not exist under the agent root", p))
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
