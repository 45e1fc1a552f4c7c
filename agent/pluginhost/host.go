// Package pluginhost runs ferry-agent's plugins: separate processes spoken to over gRPC with
// hashicorp/go-plugin (AutoMTLS, optional SHA-256 pinning of the binary), restarted with
// backoff when they die, every call under a timeout. It adapts them to the agent's extension
// points: auth plugins are ftpserver.Authenticators (failing closed while down), hook plugins
// are one transfer.Observer/Gate and ftpserver.EventSink (Hooks; fail-open or fail-closed per
// hook). The SDK plugins are written with is the plugins package; docs/plugins.md the guide.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/ferry-dev/ferry/plugins"
)

// Config configures a Host. Zero durations get the defaults.
type Config struct {
	Plugins []Spec
	// Timeout bounds every call to a plugin (a login check, an event, a check); default 5s.
	Timeout time.Duration
	// StartTimeout bounds a plugin's start (process, handshake, GetInfo); default 10s.
	StartTimeout time.Duration
	// Restarts back off from MinBackoff (default 200ms), doubling up to MaxBackoff (30s).
	MinBackoff, MaxBackoff time.Duration
	// QueueLen is how many events wait for one hook plugin; beyond, events are dropped (and
	// counted). Default 1024.
	QueueLen int
	Logger   *slog.Logger
}

// State of a plugin process.
type State string

// States.
const (
	StateRunning    State = "running"
	StateRestarting State = "restarting" // died; waiting out the backoff or starting again
	StateStopped    State = "stopped"    // the host is closed
)

// Status is a plugin as `ferryctl agent info` shows it.
type Status struct {
	Name      string // what the plugin calls itself
	Path      string
	Kinds     []string
	State     State
	Restarts  int
	LastError string
	PID       int
	Dropped   int64 // hook events dropped (queue full, or plugin down)
}

// Host owns the plugin processes of one agent. No global state.
type Host struct {
	cfg     Config
	log     *slog.Logger
	procs   []*proc
	hooks   *Hooks
	closing chan struct{}
	wg      sync.WaitGroup

	closeOnce sync.Once
}

// New starts every plugin and asks each what it serves. When one cannot start, the others are
// stopped and the error names it and says why.
func New(cfg Config) (*Host, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, closing: make(chan struct{})}
	seen := map[string]bool{}
	for i, s := range cfg.Plugins {
		if s.Path == "" {
			h.Close()
			return nil, fmt.Errorf("plugin %d: empty path", i)
		}
		if s.SHA256 != "" {
			if err := CheckSHA256(s.SHA256); err != nil {
				h.Close()
				return nil, fmt.Errorf("plugin %q: sha256: %w", s.Path, err)
			}
		}
		key := s.Path + "\x00" + strings.Join(s.Args, "\x00")
		if seen[key] {
			h.Close()
			return nil, fmt.Errorf("plugin %q: listed twice", s.Path)
		}
		seen[key] = true
		p := &proc{h: h, spec: s, name: filepath.Base(s.Path)}
		if err := p.start(); err != nil {
			h.Close()
			return nil, fmt.Errorf("plugin %q: cannot start: %w", s.Path, err)
		}
		h.procs = append(h.procs, p)
		h.log.Info("plugin started", "plugin", p.name, "path", s.Path, "kinds", strings.Join(p.info.Kinds, ","), "pid", p.pid)
	}
	var hookProcs []*proc
	for _, p := range h.procs {
		if p.info.Has("hook") {
			p.queue = make(chan item, cfg.QueueLen)
			hookProcs = append(hookProcs, p)
			h.wg.Add(1)
			go p.worker()
		}
		h.wg.Add(1)
		go p.monitor()
	}
	if len(hookProcs) > 0 {
		h.hooks = &Hooks{procs: hookProcs}
	}
	return h, nil
}

// Status lists the plugins in their --plugin order.
func (h *Host) Status() []Status {
	out := make([]Status, 0, len(h.procs))
	for _, p := range h.procs {
		p.mu.Lock()
		out = append(out, Status{Name: p.name, Path: p.spec.Path, Kinds: append([]string(nil), p.info.Kinds...),
			State: p.state, Restarts: p.restarts, LastError: p.lastErr, PID: p.pid, Dropped: p.dropped.Load()})
		p.mu.Unlock()
	}
	return out
}

// Close stops every plugin process. Safe to call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		close(h.closing)
		h.wg.Wait() // monitors and workers: no start after this
		for _, p := range h.procs {
			p.mu.Lock()
			c := p.client
			p.client, p.api, p.state = nil, nil, StateStopped
			p.mu.Unlock()
			if c != nil {
				c.Kill()
			}
		}
	})
	return nil
}

// proc is one plugin process and its restarts.
type proc struct {
	h    *Host
	spec Spec
	name string

	mu       sync.Mutex
	client   *plugin.Client
	api      *plugins.Client
	info     plugins.Info // from the first start
	state    State
	restarts int
	lastErr  string
	pid      int
	upSince  time.Time

	queue   chan item // hook plugins: events and checks, in order
	dropped atomic.Int64
}

// start launches the process, does the handshake and asks GetInfo.
func (p *proc) start() error {
	cfg := p.h.cfg
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	tail := &tailBuffer{}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  plugins.Handshake,
		Plugins:          plugin.PluginSet{plugins.PluginName: &plugins.Plugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     cfg.StartTimeout,
		Logger:           newHCLog(p.h.log.With("plugin", p.name)),
		Stderr:           tail, // besides Logger: the last lines explain a failed start
	}
	if p.spec.SHA256 != "" {
		sum, _ := hex.DecodeString(p.spec.SHA256)
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		err = explainStart(err)
		if t := tail.String(); t != "" {
			err = fmt.Errorf("%w; the plugin wrote: %s", err, t)
		}
		return err
	}
	raw, err := rpc.Dispense(plugins.PluginName)
	if err != nil {
		client.Kill()
		return err
	}
	api, ok := raw.(*plugins.Client)
	if !ok {
		client.Kill()
		return fmt.Errorf("unexpected plugin client %T", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	info, err := api.Info(ctx)
	cancel()
	if err != nil {
		client.Kill()
		return fmt.Errorf("GetInfo: %w", err)
	}
	if len(info.Kinds) == 0 {
		client.Kill()
		return errors.New("the plugin declares no kind (auth or hook)")
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info.Kinds == nil {
		p.info = info
		if info.Name != "" {
			p.name = info.Name
		}
	} else if strings.Join(info.Kinds, ",") != strings.Join(p.info.Kinds, ",") {
		p.h.log.Warn("plugin changed its kinds after a restart; keeping the first", "plugin", p.name,
			"was", strings.Join(p.info.Kinds, ","), "now", strings.Join(info.Kinds, ","))
	}
	p.client, p.api, p.state, p.pid, p.upSince = client, api, StateRunning, pid, time.Now()
	return nil
}

// explainStart turns go-plugin's start errors into what an operator can act on.
func explainStart(err error) error {
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("the binary's SHA-256 differs from --plugin-sha256: %w", err)
	case errors.Is(err, exec.ErrNotFound), strings.Contains(err.Error(), "no such file"):
		return fmt.Errorf("binary not found: %w", err)
	case strings.Contains(err.Error(), "permission denied"):
		return fmt.Errorf("binary not executable: %w", err)
	case strings.Contains(err.Error(), "Incompatible API version"):
		return fmt.Errorf("built for another plugin protocol version: %v", firstLine(err))
	case strings.Contains(err.Error(), "Unrecognized remote plugin message"), strings.Contains(err.Error(), "plugin exited before we could connect"):
		return fmt.Errorf("no handshake: the plugin exited at start (a bad argument or configuration?) or is not a Ferry plugin (%v)", firstLine(err))
	}
	return err
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSpace(s)
}

// tailBuffer keeps the last 512 bytes of a plugin's stderr, on one line.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 512 {
		t.b = t.b[len(t.b)-512:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(strings.Fields(string(t.b)), " ")
}

// current returns the client while the plugin runs.
func (p *proc) current() (*plugins.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != StateRunning || p.api == nil {
		return nil, fmt.Errorf("plugin %s is %s", p.name, p.stateLocked())
	}
	return p.api, nil
}

func (p *proc) stateLocked() State {
	if p.state == "" {
		return StateRestarting
	}
	return p.state
}

// monitor notices the process's death and restarts it with backoff.
func (p *proc) monitor() {
	defer p.h.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	backoff := p.h.cfg.MinBackoff
	for {
		select {
		case <-p.h.closing:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		c, up := p.client, p.upSince
		exited := c != nil && c.Exited()
		if exited {
			p.client, p.api, p.state = nil, nil, StateRestarting
			p.lastErr = "process exited"
		}
		p.mu.Unlock()
		if !exited {
			continue
		}
		c.Kill() // releases go-plugin's resources
		if time.Since(up) > time.Minute {
			backoff = p.h.cfg.MinBackoff // it had been up a while: not a crash loop
		}
		p.h.log.Warn("plugin died; restarting", "plugin", p.name, "path", p.spec.Path, "in", backoff.String())
		for {
			t := time.NewTimer(backoff)
			select {
			case <-p.h.closing:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, p.h.cfg.MaxBackoff)
			err := p.start()
			if err == nil {
				p.mu.Lock()
				p.restarts++
				n, pid := p.restarts, p.pid
				p.mu.Unlock()
				p.h.log.Info("plugin restarted", "plugin", p.name, "restarts", n, "pid", pid)
				break
			}
			p.mu.Lock()
			p.lastErr = "restart: " + explainStart(err).Error()
			p.mu.Unlock()
			p.h.log.Warn("plugin restart failed", "plugin", p.name, "err", err, "next", backoff.String())
		}
	}
}

// call runs f against the plugin under the host's timeout.
func (p *proc) call(ctx context.Context, f func(context.Context, *plugins.Client) error) error {
	api, err := p.current()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.h.cfg.Timeout)
	defer cancel()
	if err := f(ctx, api); err != nil {
		return fmt.Errorf("plugin %s: %w", p.name, err)
	}
	return nil
}

// hclogAdapter forwards go-plugin's log (and the plugin's own log lines) to slog.
func newHCLog(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Info, Output: slogWriter{log}, DisableTime: true})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	line := strings.TrimSpace(string(b))
	if line != "" {
		w.log.Info("plugin log", "line", line)
	}
	return len(b), nil
}
