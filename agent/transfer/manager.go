// Package transfer is Ferry's transfer engine: it parses endpoints, runs jobs (download and
// upload of a file or a directory tree over FTP, in active, passive or auto mode), keeps their
// state and fans progress out to watchers. It knows nothing of gRPC or of the CLI: the API edge
// (agent/server) translates requests and errors, and reaches peer agents through the Peers
// interface declared here.
package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// Grant is a one-time FTP credential from a peer agent, scoped to one path and direction.
type Grant struct {
	FTPAddr  string // host:port of the peer's FTP server (for LocalFTP: ":port")
	User     string
	Password string
	// PassivePorts is the granting server's passive port range ("50000-50100"), if known.
	PassivePorts string
}

// Peers reaches other Ferry agents (implemented over gRPC by the API layer).
type Peers interface {
	Grant(ctx context.Context, agentAddr, path string, write bool) (Grant, error)
	// Reverse asks the peer at agentAddr to run the mirror image of a transfer against this
	// agent's FTP server, and follows it: progress is called with each snapshot of the peer's
	// transfer (the last one final). It returns when that transfer has ended, with an error
	// unless it succeeded; when ctx ends it cancels the peer's transfer.
	Reverse(ctx context.Context, agentAddr string, r ReverseRequest, progress func(Snapshot)) error
}

// ReverseRequest describes the transfer a peer runs against this agent's FTP server.
type ReverseRequest struct {
	PeerPath  string // path under the peer's root ("in/" with a trailing slash: into that directory)
	PeerSends bool   // true: the peer uploads PeerPath to us; false: it downloads into PeerPath
	FTPPort   int    // this agent's FTP port; the peer uses the address it sees the call from
	User      string // one-time credential on this agent's FTP server, scoped to LocalPath
	Password  string
	LocalPath string // path under this agent's root, as the peer's FTP path
}

// LocalFTP issues one-time credentials on this agent's own FTP server, for reversed transfers.
type LocalFTP interface {
	LocalGrant(path string, write bool) (Grant, error)
}

// ClientOptions are the FTP client settings applied to every transfer.
type ClientOptions struct {
	ActiveAddr  string // IP announced in PORT/EPRT (client behind port-forwarding NAT)
	ActiveBind  string // local IP to listen on for active data connections
	ActivePorts ftpclient.PortRange
	DialTimeout time.Duration
	DataTimeout time.Duration // time to establish a data connection; default 10s
	// ProbeTimeout bounds the first data connection of each auto-mode attempt (and the checks of
	// Diagnose), so a blocked mode costs this long, not DataTimeout; default 3s.
	ProbeTimeout time.Duration
}

// Config configures a Manager.
type Config struct {
	Root        string // the agent's served directory; local endpoints are confined to it
	Peers       Peers
	Local       LocalFTP // nil: auto mode never reverses the direction
	Client      ClientOptions
	DefaultMode Mode // used when a request leaves the mode unspecified
	// Tick is how often progress is sampled and published; default 250ms (4 per second).
	Tick time.Duration
	// Keep is how many finished transfers are remembered; default 1000.
	Keep   int
	Logger *slog.Logger
}

// Request asks for one transfer.
type Request struct {
	Source      string
	Destination string
	Mode        Mode
	// ModeSet is false when the caller left the mode unspecified (DefaultMode applies).
	ModeSet bool
}

// Manager owns the jobs of one agent. No global state: tests run several in one process.
type Manager struct {
	cfg    Config
	root   *os.Root
	log    *slog.Logger
	ctx    context.Context // parent of every job; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	modes  *modeMemory

	mu     sync.Mutex
	jobs   map[string]*job
	closed bool
}

// NewManager opens the root and returns a manager ready to start transfers.
func NewManager(cfg Config) (*Manager, error) {
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 1000
	}
	if cfg.Client.DataTimeout <= 0 {
		cfg.Client.DataTimeout = 10 * time.Second
	}
	if cfg.Client.ProbeTimeout <= 0 {
		cfg.Client.ProbeTimeout = 3 * time.Second
	}
	if cfg.Client.ProbeTimeout > cfg.Client.DataTimeout {
		cfg.Client.ProbeTimeout = cfg.Client.DataTimeout
	}
	if cfg.Client.DialTimeout <= 0 {
		cfg.Client.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, root: root, log: cfg.Logger, ctx: ctx, cancel: cancel,
		jobs: make(map[string]*job), modes: newModeMemory(10 * time.Minute),
	}, nil
}

// Start validates the request, starts the job and returns its first snapshot.
func (m *Manager) Start(req Request) (Snapshot, error) {
	plan, err := m.plan(req)
	if err != nil {
		return Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Snapshot{}, ErrClosed
	}
	id := newID()
	ctx, cancel := context.WithCancel(m.ctx)
	j := &job{
		m: m, plan: plan, ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	j.snap = Snapshot{
		ID: id, Source: plan.src.String(), Destination: plan.dst.String(),
		Direction: plan.dir, RequestedMode: plan.mode, State: StateQueued,
		Created: time.Now(), ETA: -1,
	}
	j.b = newBroadcaster(j.snap)
	m.jobs[id] = j
	m.forgetOldLocked()
	first := j.snap // copied before the job starts writing its own
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		j.run()
	}()
	return first, nil
}

// Get returns the current snapshot of a transfer.
func (m *Manager) Get(id string) (Snapshot, error) {
	j, err := m.job(id)
	if err != nil {
		return Snapshot{}, err
	}
	return j.b.snapshot(), nil
}

// List returns snapshots of all known transfers, newest first, optionally only in some states.
func (m *Manager) List(states ...State) []Snapshot {
	m.mu.Lock()
	jobs := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j)
	}
	m.mu.Unlock()
	out := make([]Snapshot, 0, len(jobs))
	for _, j := range jobs {
		s := j.b.snapshot()
		if len(states) == 0 || containsState(states, s.State) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	return out
}

func containsState(states []State, s State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// Watch returns a channel of snapshots: the current one at once, then the newest after each
// change (intermediate values may be skipped for a slow reader). The channel is closed after
// the final snapshot. stop releases the subscription early.
func (m *Manager) Watch(id string) (ch <-chan Snapshot, stop func(), err error) {
	j, err := m.job(id)
	if err != nil {
		return nil, nil, err
	}
	ch, stop = j.b.subscribe()
	return ch, stop, nil
}

// Cancel stops a transfer and waits (up to wait) for it to reach its final state, which it
// returns. Cancelling a finished transfer returns its snapshot unchanged.
func (m *Manager) Cancel(id string, wait time.Duration) (Snapshot, error) {
	j, err := m.job(id)
	if err != nil {
		return Snapshot{}, err
	}
	j.cancelled.Store(true)
	j.cancel()
	select {
	case <-j.done:
	case <-time.After(wait):
	}
	return j.b.snapshot(), nil
}

// Close cancels every running transfer and waits for them to end.
func (m *Manager) Close() error {
	m.mu.Lock()
	already := m.closed
	m.closed = true
	m.mu.Unlock()
	if already {
		return nil
	}
	m.cancel()
	m.wg.Wait()
	return m.root.Close()
}

func (m *Manager) job(id string) (*job, error) {
	if id == "" {
		return nil, invalid("id", "is empty")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, notFound(id)
	}
	return j, nil
}

// forgetOldLocked drops the oldest finished jobs beyond cfg.Keep.
func (m *Manager) forgetOldLocked() {
	if len(m.jobs) <= m.cfg.Keep {
		return
	}
	var finished []*job
	for _, j := range m.jobs {
		if j.b.snapshot().State.Final() {
			finished = append(finished, j)
		}
	}
	sort.Slice(finished, func(a, b int) bool {
		return finished[a].snap.Created.Before(finished[b].snap.Created)
	})
	for i := 0; i < len(finished) && len(m.jobs) > m.cfg.Keep; i++ {
		delete(m.jobs, finished[i].snap.ID)
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// route is what worked with a peer: a mode from this agent, or the reversed direction.
type route struct {
	mode     Mode
	reversed bool
}

func (r route) String() string {
	if r.reversed {
		return "reversing the direction"
	}
	return r.mode.String() + " mode"
}

// modeMemory remembers, per peer (FTP server or agent address), the route that worked last (for
// auto mode).
type modeMemory struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]modeEntry
}

type modeEntry struct {
	r  route
	at time.Time
}

func newModeMemory(ttl time.Duration) *modeMemory {
	return &modeMemory{ttl: ttl, m: make(map[string]modeEntry)}
}

func (mm *modeMemory) get(addr string) (route, bool) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	e, ok := mm.m[addr]
	if !ok || time.Since(e.at) > mm.ttl {
		return route{}, false
	}
	return e.r, true
}

func (mm *modeMemory) put(addr string, r route) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.m[addr] = modeEntry{r: r, at: time.Now()}
}

func (mm *modeMemory) forget(addr string) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	delete(mm.m, addr)
}
