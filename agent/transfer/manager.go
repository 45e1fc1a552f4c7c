// Package transfer is Ferry's transfer engine: it parses endpoints, runs jobs (download and
// upload of a file or a directory tree over FTP, in active, passive or auto mode), keeps their
// state durable, resumes and retries them, and fans progress out to watchers. It knows nothing
// of gRPC or of the CLI: it is handed its ports (ports.go) — the served Storage, a Store for
// job records, Peers for other agents, an Observer — and the API edge (agent/server)
// translates requests and maps the domain errors (errors.go) to gRPC codes.
package transfer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
)

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
	// StallTimeout fails an attempt whose data connection moves no byte for this long; default 60s.
	StallTimeout time.Duration
	// TLS is the base configuration of ftpes:// and ftps:// sessions (RootCAs from --ftp-ca;
	// nil: the system roots). Sessions to peer agents pin the peer's certificate instead.
	TLS *tls.Config
	// TCPCongestion is the congestion control set on data connections (netopt.Resolve's name;
	// "" = the system default). It is shown in each transfer's snapshot.
	TCPCongestion string
}

// Config configures a Manager.
type Config struct {
	// Storage is the served root, shared with the FTP server. If nil, Root is opened (and
	// closed by Close).
	Storage Storage
	Root    string
	// Store keeps jobs across restarts; nil keeps them in memory only.
	Store       Store
	Peers       Peers
	Local       LocalFTP // nil: auto mode never reverses the direction
	Observer    Observer // nil: no one is told
	Client      ClientOptions
	DefaultMode Mode // used when a request leaves the mode unspecified
	// Tick is how often progress is sampled and published; default 250ms (4 per second).
	Tick time.Duration
	// Keep is how many finished transfers are remembered; default 1000.
	Keep int
	// History is how long finished transfers are kept in the store; default 7 days.
	History time.Duration
	// Retries is how many times a transient failure is retried; 0 means 5, < 0 none.
	Retries int
	// RetryBase is the first backoff delay (doubled each time, with jitter, up to RetryMax);
	// defaults 1s and 30s.
	RetryBase, RetryMax time.Duration
	// MaxTransfers bounds running transfers (the rest wait in order); default 16.
	MaxTransfers int
	// MaxSessionsPerHost bounds FTP sessions open to one server; default 4.
	MaxSessionsPerHost int
	// PartTTL is how old a part file no job will resume must be before it is removed;
	// default 24h.
	PartTTL time.Duration
	Logger  *slog.Logger

	// Policy limits the remote addresses this agent connects to (--allow-remote); nil allows
	// everything but link-local addresses.
	Policy *Policy

	// LimitRate is the agent's bandwidth limit in bytes per second, shared by all its
	// transfers (--limit-rate); 0 = none. Each transfer may have its own (Spec.LimitRate) too.
	LimitRate int64
}

// Manager owns the jobs of one agent. No global state: tests run several in one process.
type Manager struct {
	cfg    Config
	root   Storage
	closer io.Closer // the root, when the manager opened it
	store  Store
	log    *slog.Logger
	obs    Observer
	ctx    context.Context // parent of every job; cancelled with ErrShutdown by Close
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	dialer *dialer
	sched  *slots
	// listings keeps remote directory listings for their next pages (ListFilesPage).
	listings listingCache
	// limit is the agent's bandwidth limit (Config.LimitRate), nil = none.
	limit *agentLimit

	mu        sync.Mutex
	jobs      map[string]*job
	byRequest map[string]*job       // request_id -> job
	writers   map[string]*job       // destination key -> the unfinished job writing it
	lastCheck map[string]checkpoint // job key -> checkpoint of the last failed job (resume by a new copy)
	closed    bool
}

// NewManager opens the root, recovers the jobs in the store (unfinished ones go on by
// themselves) and returns a manager ready to start transfers.
func NewManager(cfg Config) (*Manager, error) {
	setDefaults(&cfg)
	m := &Manager{
		cfg: cfg, root: cfg.Storage, store: cfg.Store, log: cfg.Logger, obs: cfg.Observer,
		jobs: make(map[string]*job), byRequest: make(map[string]*job),
		writers: make(map[string]*job), lastCheck: make(map[string]checkpoint),
		sched: newSlots(cfg.MaxTransfers), limit: newAgentLimit(cfg.LimitRate),
	}
	if m.root == nil {
		r, err := storage.Open(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("open root: %w", err)
		}
		m.root, m.closer = r, r
	}
	m.dialer = &dialer{
		opts: cfg.Client, peers: cfg.Peers, policy: cfg.Policy, connect: dialFTP,
		routes: newModeMemory(10 * time.Minute), hosts: hostSlots{max: cfg.MaxSessionsPerHost},
	}
	m.ctx, m.cancel = context.WithCancelCause(context.Background())
	if err := m.recover(); err != nil {
		if m.closer != nil {
			m.closer.Close()
		}
		return nil, err
	}
	m.wg.Add(1)
	go m.housekeeping()
	return m, nil
}

func setDefaults(cfg *Config) {
	if cfg.Policy == nil {
		cfg.Policy = &Policy{}
	}
	if cfg.Peers != nil {
		cfg.Peers = policyPeers{Peers: cfg.Peers, p: cfg.Policy}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 1000
	}
	if cfg.History <= 0 {
		cfg.History = 7 * 24 * time.Hour
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 5
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 16
	}
	if cfg.MaxSessionsPerHost <= 0 {
		cfg.MaxSessionsPerHost = 4
	}
	if cfg.PartTTL <= 0 {
		cfg.PartTTL = 24 * time.Hour
	}
	c := &cfg.Client
	if c.DataTimeout <= 0 {
		c.DataTimeout = 10 * time.Second
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = 3 * time.Second
	}
	if c.ProbeTimeout > c.DataTimeout {
		c.ProbeTimeout = c.DataTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// Start validates the request and starts the job (it may wait in the queue) and returns its
// first snapshot. A request_id seen before returns that job instead.
func (m *Manager) Start(spec Spec) (Snapshot, error) {
	if len(spec.RequestID) > MaxRequestID {
		return Snapshot{}, invalid("request_id", fmt.Sprintf("is %d bytes; at most %d", len(spec.RequestID), MaxRequestID))
	}
	if spec.LimitRate < 0 {
		return Snapshot{}, invalid("limit_rate", fmt.Sprintf("is %d; want bytes per second, 0 for no limit", spec.LimitRate))
	}
	if spec.RequestID != "" {
		m.mu.Lock()
		j, ok := m.byRequest[requestKey(spec)]
		m.mu.Unlock()
		if ok {
			return j.b.snapshot(), nil
		}
	}
	plan, err := m.plan(spec)
	if err != nil {
		return Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Snapshot{}, ErrClosed
	}
	if j, ok := m.byRequest[requestKey(spec)]; ok && spec.RequestID != "" {
		return j.b.snapshot(), nil // started meanwhile by a concurrent call
	}
	if w, ok := m.writers[plan.destKey]; ok {
		return Snapshot{}, WithKind(ErrConflict, fmt.Errorf("destination: %s is being written by transfer %s; wait for it or cancel it", plan.dst, w.id()))
	}
	j := m.newJob(newID(), spec, plan, Snapshot{
		Source: plan.src.String(), Destination: plan.dst.String(), Direction: plan.dir,
		RequestedMode: plan.mode, State: StateQueued, Created: time.Now(), ETA: -1,
		RequestID: spec.RequestID, Owner: spec.Owner, LimitRate: spec.LimitRate, Options: spec.Options,
		TCPCongestion: m.cfg.Client.TCPCongestion,
	}, m.lastCheck[plan.key])
	if spec.Restart {
		j.check = checkpoint{}
	}
	if err := j.saveLocked(); err != nil {
		return Snapshot{}, fmt.Errorf("job store: %w", err)
	}
	first := j.snap // copied before the job starts writing its own
	m.launchLocked(j)
	m.forgetOldLocked()
	return first, nil
}

// newJob registers a job (not started). The caller holds m.mu.
func (m *Manager) newJob(id string, spec Spec, p plan, snap Snapshot, check checkpoint) *job {
	ctx, cancel := context.WithCancelCause(m.ctx)
	snap.ID = id
	j := &job{m: m, spec: spec, plan: p, ctx: ctx, cancel: cancel, done: make(chan struct{}), snap: snap, check: check}
	j.thr.agent = m.limit
	j.thr.limit.Store(spec.LimitRate)
	j.b = newBroadcaster(snap)
	m.jobs[id] = j
	if spec.RequestID != "" {
		m.byRequest[requestKey(spec)] = j
	}
	return j
}

// requestKey scopes a request_id to its caller: one caller cannot reach another's job by
// guessing its key.
func requestKey(s Spec) string { return s.Owner + "\x00" + s.RequestID }

func (m *Manager) launchLocked(j *job) {
	m.writers[j.plan.destKey] = j
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		j.run()
	}()
}

// ended is called by a job once it reached a final state (or was interrupted by shutdown).
func (m *Manager) ended(j *job, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writers[j.plan.destKey] == j {
		delete(m.writers, j.plan.destKey)
	}
	if failed {
		m.lastCheck[j.plan.key] = j.check
	} else {
		delete(m.lastCheck, j.plan.key)
	}
}

// recover loads the store: finished jobs become history, unfinished ones start again.
func (m *Manager) recover() error {
	if m.store == nil {
		return nil
	}
	var recs []record
	var stale []string
	err := m.store.List(func(id string, b []byte) error {
		r, err := decodeRecord(b)
		if err != nil {
			m.log.Warn("job store: unreadable record skipped", "id", id, "err", err)
			return nil
		}
		if r.Snap.State.Final() && time.Since(r.Snap.Finished) > m.cfg.History {
			stale = append(stale, id)
			return nil
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("job store: %w", err)
	}
	for _, id := range stale {
		_ = m.store.Delete(id)
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Snap.Created.Before(recs[b].Snap.Created) })
	m.mu.Lock()
	defer m.mu.Unlock()
	resumed := 0
	for _, r := range recs {
		if r.Snap.State.Final() {
			// History: no plan (it would stat paths for nothing); a failed job's checkpoint
			// is kept for a new copy with the same endpoints to resume.
			m.recoverFinished(r)
			continue
		}
		p, err := m.plan(r.Spec)
		if err != nil {
			r.Snap.State, r.Snap.Finished = StateFailed, time.Now()
			r.Snap.Err, r.Snap.ErrCode = "after a restart: "+oneLine(err.Error()), ErrorCode(err)
			_ = m.recoverFinished(r).saveLocked()
			continue
		}
		r.Snap.State, r.Snap.ETA, r.Snap.Rate = StateQueued, -1, 0
		j := m.newJob(r.Snap.ID, r.Spec, p, r.Snap, r.Check)
		j.restarted = true
		m.launchLocked(j)
		resumed++
	}
	if resumed > 0 {
		m.log.Info("unfinished transfers resume after the restart", "count", resumed)
	}
	return nil
}

// recoverFinished registers a finished job from the store. The caller holds m.mu.
func (m *Manager) recoverFinished(r record) *job {
	j := m.newJob(r.Snap.ID, r.Spec, plan{}, r.Snap, r.Check)
	j.b.publish(r.Snap) // final: watchers get it and the stream ends
	close(j.done)
	if key, err := specKey(r.Spec); err == nil && r.Snap.State == StateFailed {
		m.lastCheck[key] = r.Check
	}
	return j
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
// the final snapshot, or without one when the agent shuts down (the job goes on after the
// restart). stop releases the subscription early.
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
	j.cancel(context.Canceled)
	select {
	case <-j.done:
	case <-time.After(wait):
	}
	return j.b.snapshot(), nil
}

// Close stops accepting transfers and interrupts the running ones with ErrShutdown: they are
// checkpointed in the store and go on after the restart (a shutdown is not a cancel).
func (m *Manager) Close() error {
	m.mu.Lock()
	already := m.closed
	m.closed = true
	m.mu.Unlock()
	if already {
		return nil
	}
	m.cancel(ErrShutdown)
	m.wg.Wait()
	if m.closer != nil {
		return m.closer.Close()
	}
	return nil
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

// forgetOldLocked drops the oldest finished jobs beyond cfg.Keep from memory (the store keeps
// them for History).
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
		return finished[a].b.snapshot().Created.Before(finished[b].b.snapshot().Created)
	})
	for i := 0; i < len(finished) && len(m.jobs) > m.cfg.Keep; i++ {
		m.dropLocked(finished[i])
	}
}

func (m *Manager) dropLocked(j *job) {
	delete(m.jobs, j.id())
	if k := requestKey(j.spec); j.spec.RequestID != "" && m.byRequest[k] == j {
		delete(m.byRequest, k)
	}
}

// housekeeping removes expired history and orphaned part files, at start and every hour.
func (m *Manager) housekeeping() {
	defer m.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		m.expireHistory()
		m.sweepParts()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) expireHistory() {
	m.mu.Lock()
	var old []*job
	for _, j := range m.jobs {
		s := j.b.snapshot()
		if s.State.Final() && time.Since(s.Finished) > m.cfg.History {
			old = append(old, j)
			m.dropLocked(j)
		}
	}
	m.mu.Unlock()
	if m.store == nil {
		return
	}
	for _, j := range old {
		if err := m.store.Delete(j.id()); err != nil {
			m.log.Warn("job store: could not delete expired transfer", "id", j.id(), "err", err)
		}
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// backoff is the delay before attempt n+1: RetryBase doubled per attempt, capped at RetryMax,
// with ±25% jitter so many jobs that failed together do not retry together.
func (m *Manager) backoff(n int) time.Duration {
	d := m.cfg.RetryBase
	for i := 1; i < n && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.RetryMax)
	var b [2]byte
	_, _ = rand.Read(b[:])
	jitter := (float64(int(b[0])<<8|int(b[1]))/65535 - 0.5) / 2 // -0.25 .. 0.25
	return d + time.Duration(float64(d)*jitter)
}

// errShutdown reports whether ctx ended because the agent is shutting down.
func errShutdown(ctx context.Context) bool { return errors.Is(context.Cause(ctx), ErrShutdown) }

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
