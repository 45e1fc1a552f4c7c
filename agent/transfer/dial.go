package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// dial opens an FTP session to a remote endpoint; for an agent:// endpoint it first asks the peer
// for a one-time credential scoped to the path and direction.
func (m *Manager) dial(ctx context.Context, r Endpoint, mode Mode, write bool) (*ftpclient.Client, error) {
	addr, user, pass := r.Host, r.User, r.Password
	if r.Kind == KindAgent {
		g, err := m.cfg.Peers.Grant(ctx, r.Host, r.Path, write)
		if err != nil {
			return nil, fmt.Errorf("peer agent %s: %w", r.Host, err)
		}
		addr, user, pass = g.FTPAddr, g.User, g.Password
	}
	o := m.cfg.Client
	cm := ftpclient.ModePassive
	if mode == ModeActive {
		cm = ftpclient.ModeActive
	}
	c, err := ftpclient.Dial(ctx, ftpclient.Config{
		Addr: addr, User: user, Password: pass, Mode: cm,
		ActiveAddr: o.ActiveAddr, ActiveBind: o.ActiveBind, ActivePorts: o.ActivePorts,
		DialTimeout: o.DialTimeout, DataTimeout: o.DataTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("ftp %s: %w", addr, err)
	}
	return c, nil
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
	if e.Kind == KindAgent && m.cfg.Peers == nil {
		return nil, invalid("url", "agent:// endpoints are not available on this agent")
	}
	order := []Mode{mode}
	if mode == ModeAuto {
		order = []Mode{ModePassive, ModeActive}
	}
	for i, md := range order {
		out, err := m.listRemote(ctx, e, md)
		var dce *ftpclient.DataConnError
		if err != nil && i+1 < len(order) && errors.As(err, &dce) {
			continue
		}
		return out, err
	}
	return nil, nil // not reached
}

func (m *Manager) listRemote(ctx context.Context, e Endpoint, mode Mode) ([]Entry, error) {
	c, err := m.dial(ctx, e, mode, false)
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
