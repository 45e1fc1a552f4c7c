package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/security"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Store is where jobs are kept: the agent's job store's "fleet" bucket (store.Bucket), never
// the transfer engine's, so neither recovery reads the other's records.
type Store interface {
	Put(id string, rec []byte) error
	Delete(id string) error
	List(fn func(id string, rec []byte) error) error
}

// Config wires the coordinator to the agent.
type Config struct {
	// Store keeps jobs across restarts; nil keeps them in memory only.
	Store Store
	// Token is presented to the other agents (the agent's peer token); they must list it with
	// the role fleet. TLS secures those calls (the agent's peer TLS); nil is plaintext.
	Token string
	TLS   *tls.Config
	// Dial overrides how agents are reached (tests); nil uses Token and TLS.
	Dial func(addr string) (*grpc.ClientConn, error)
	// Poll is the interval at which running deliveries are polled (default 500ms);
	// RetryBase the first delay before a host's next attempt (default 1s, doubling, at most
	// 30s).
	Poll      time.Duration
	RetryBase time.Duration
	// CallTimeout bounds every call to another agent (default 5s).
	CallTimeout time.Duration
	// Keep is how many finished jobs are kept (default 100); older ones are deleted.
	Keep   int
	Logger *slog.Logger
}

// Defaults of a job's knobs.
const (
	DefaultFanout      = 3
	DefaultConcurrency = 16   // direct (and collect): what the one source (or destination) serves at once
	DefaultTreeRunning = 1024 // tree: holders bound themselves (fanout each); this bounds the polls
	DefaultAttempts    = 3
	maxFanout          = 64
	maxConcurrency     = 1024
	maxAttempts        = 20
	maxReroutes        = 8 // deliveries moved off dead relays, per host
	pollWorkers        = 32
)

// Coordinator holds and drives fleet jobs. Safe for concurrent use.
type Coordinator struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	jobs  map[string]*job
	reqs  map[string]string // request id -> job id
	conns map[string]*grpc.ClientConn
}

// New opens the coordinator and resumes the jobs in the store that had not ended.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, jobs: map[string]*job{}, reqs: map[string]string{},
		conns: map[string]*grpc.ClientConn{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.recover(); err != nil {
		return nil, fmt.Errorf("fleet jobs: %w", err)
	}
	return c, nil
}

// recover loads the stored jobs and restarts the drivers of those still running.
func (c *Coordinator) recover() error {
	if c.cfg.Store == nil {
		return nil
	}
	recs := map[string]*jobRecord{}
	hosts := map[string][]*hostRecord{}
	err := c.cfg.Store.List(func(key string, b []byte) error {
		switch {
		case strings.HasPrefix(key, "j/"):
			var r jobRecord
			if err := json.Unmarshal(b, &r); err != nil {
				return fmt.Errorf("record %s: %w", key, err)
			}
			recs[r.ID] = &r
		case strings.HasPrefix(key, "h/"):
			id, _, _ := strings.Cut(strings.TrimPrefix(key, "h/"), "/")
			var h hostRecord
			if err := json.Unmarshal(b, &h); err != nil {
				return fmt.Errorf("record %s: %w", key, err)
			}
			hosts[id] = append(hosts[id], &h) // keys list in index order
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, r := range recs {
		hs := hosts[id]
		if len(hs) != r.Hosts {
			c.log.Warn("fleet job incomplete in the store; dropped", "job", id, "hosts", len(hs), "want", r.Hosts)
			continue
		}
		j := newJob(*r, hs)
		c.jobs[id] = j
		if r.RequestID != "" {
			c.reqs[r.RequestID] = id
		}
		if finalJob(r.State) {
			close(j.done)
			continue
		}
		c.log.Info("fleet job resumed", "job", id, "hosts", len(hs))
		c.run(j)
	}
	return nil
}

// Close stops the drivers (jobs stay stored and resume at the next New) and closes
// connections.
func (c *Coordinator) Close() error {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, cc := range c.conns {
		cc.Close()
		delete(c.conns, a)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// InvalidError is a request the coordinator refuses; its text starts with the field's name.
type InvalidError struct{ msg string }

func (e *InvalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }

// ErrNotFound: no job with that id.
var ErrNotFound = errors.New("fleet job not found")

func checkAgent(field string, a Agent) error {
	if !nameRE.MatchString(a.Name) {
		return invalid("%s.name: %q is not a name (letters, digits, '.', '_', '-'; at most 64)", field, a.Name)
	}
	if a.Address == "" || strings.ContainsAny(a.Address, "/ \t\r\n") {
		return invalid("%s.address: %q is not host:port", field, a.Address)
	}
	return nil
}

func checkPath(field, p string) error {
	if p == "" || strings.Contains(p, "://") || strings.ContainsAny(p, "\x00\r\n") {
		return invalid("%s: want a path under the agent's root, got %q", field, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return invalid("%s: %q leaves the root", field, p)
		}
	}
	return nil
}

// Start validates req, stores the job and starts driving it. owner names the caller.
func (c *Coordinator) Start(req *ferryv1.StartFleetJobRequest, owner string) (*ferryv1.FleetJob, error) {
	r := jobRecord{
		Kind: req.GetKind(), SourcePath: req.GetSourcePath(), DestPath: req.GetDestinationPath(),
		Strategy: req.GetStrategy(), Fanout: int(req.GetFanout()), Canary: int(req.GetCanary()),
		Concurrency: int(req.GetConcurrency()), MaxAttempts: int(req.GetMaxAttempts()),
		RequestID: req.GetRequestId(), State: ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING,
	}
	switch r.Kind {
	case ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY:
		r.Source = Agent{Name: req.GetSource().GetName(), Address: req.GetSource().GetAddress()}
		if err := checkAgent("source", r.Source); err != nil {
			return nil, err
		}
	case ferryv1.FleetJobKind_FLEET_JOB_KIND_COLLECT:
		r.Destination = Agent{Name: req.GetDestination().GetName(), Address: req.GetDestination().GetAddress()}
		if err := checkAgent("destination", r.Destination); err != nil {
			return nil, err
		}
		r.Strategy = ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT
	default:
		return nil, invalid("kind: want COPY or COLLECT, got %d", r.Kind)
	}
	if err := checkPath("source_path", r.SourcePath); err != nil {
		return nil, err
	}
	if err := checkPath("destination_path", r.DestPath); err != nil {
		return nil, err
	}
	switch r.Strategy {
	case ferryv1.FleetStrategy_FLEET_STRATEGY_UNSPECIFIED:
		r.Strategy = ferryv1.FleetStrategy_FLEET_STRATEGY_TREE
	case ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT, ferryv1.FleetStrategy_FLEET_STRATEGY_TREE:
	default:
		return nil, invalid("strategy: unknown value %d", r.Strategy)
	}
	for _, k := range []struct {
		name     string
		v        *int
		def, max int
	}{{"fanout", &r.Fanout, DefaultFanout, maxFanout}, {"concurrency", &r.Concurrency, DefaultConcurrency, maxConcurrency},
		{"max_attempts", &r.MaxAttempts, DefaultAttempts, maxAttempts}} {
		if *k.v < 0 || *k.v > k.max {
			return nil, invalid("%s: %d; want 0 (default %d) to %d", k.name, *k.v, k.def, k.max)
		}
		if *k.v == 0 {
			*k.v = k.def
			if k.name == "concurrency" && r.Strategy == ferryv1.FleetStrategy_FLEET_STRATEGY_TREE {
				*k.v = DefaultTreeRunning
			}
		}
	}
	if len(req.GetTargets()) == 0 {
		return nil, invalid("targets: none (the selector matched no agent?)")
	}
	if r.Canary < 0 || r.Canary > len(req.GetTargets()) {
		return nil, invalid("canary: %d; want 0 to the number of targets (%d)", r.Canary, len(req.GetTargets()))
	}
	seen := map[string]bool{r.Source.Name: r.Kind == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY}
	var hosts []*hostRecord
	for i, t := range req.GetTargets() {
		a := Agent{Name: t.GetName(), Address: t.GetAddress()}
		if err := checkAgent(fmt.Sprintf("targets[%d]", i), a); err != nil {
			return nil, err
		}
		if seen[a.Name] {
			return nil, invalid("targets[%d].name: %q twice (or the source itself)", i, a.Name)
		}
		seen[a.Name] = true
		wave := 2
		if i < r.Canary {
			wave = 1
		}
		hosts = append(hosts, &hostRecord{Name: a.Name, Address: a.Address, Wave: wave,
			State: ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING})
	}
	r.Hosts = len(hosts)

	c.mu.Lock()
	defer c.mu.Unlock()
	if r.RequestID != "" {
		if id, ok := c.reqs[r.RequestID]; ok {
			return c.jobs[id].snapshot(true), nil
		}
	}
	if c.ctx.Err() != nil {
		return nil, errors.New("coordinator closing")
	}
	r.ID = newID()
	r.Created = time.Now().UTC()
	j := newJob(r, hosts)
	j.owner = owner
	// Hosts first, the job record last: a job is only recovered once all of it is stored.
	for i, h := range hosts {
		if err := c.put(hostKey(r.ID, i), h); err != nil {
			return nil, err
		}
	}
	if err := c.put(jobKey(r.ID), &j.rec); err != nil {
		return nil, err
	}
	c.jobs[r.ID] = j
	if r.RequestID != "" {
		c.reqs[r.RequestID] = r.ID
	}
	c.log.Info("fleet job started", "job", r.ID, "kind", r.Kind, "hosts", len(hosts), "strategy", r.Strategy, "owner", owner)
	c.run(j)
	c.trim()
	return j.snapshot(true), nil
}

func (c *Coordinator) put(key string, v any) error {
	if c.cfg.Store == nil {
		return nil
	}
	return c.cfg.Store.Put(key, marshal(v))
}

// trim deletes the oldest finished jobs beyond Keep; call with c.mu held.
func (c *Coordinator) trim() {
	var done []*job
	for _, j := range c.jobs {
		select {
		case <-j.done:
			done = append(done, j)
		default:
		}
	}
	if len(done) <= c.cfg.Keep {
		return
	}
	sort.Slice(done, func(a, b int) bool { return done[a].rec.Created.Before(done[b].rec.Created) })
	for _, j := range done[:len(done)-c.cfg.Keep] {
		delete(c.jobs, j.rec.ID)
		delete(c.reqs, j.rec.RequestID)
		if c.cfg.Store != nil {
			for i := range j.hosts {
				_ = c.cfg.Store.Delete(hostKey(j.rec.ID, i))
			}
			_ = c.cfg.Store.Delete(jobKey(j.rec.ID))
		}
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Coordinator) get(id string) (*job, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return j, nil
}

// Get returns one job with its hosts.
func (c *Coordinator) Get(id string) (*ferryv1.FleetJob, error) {
	j, err := c.get(id)
	if err != nil {
		return nil, err
	}
	return j.snapshot(true), nil
}

// List returns every job, newest first, without hosts.
func (c *Coordinator) List() []*ferryv1.FleetJob {
	c.mu.Lock()
	js := make([]*job, 0, len(c.jobs))
	for _, j := range c.jobs {
		js = append(js, j)
	}
	c.mu.Unlock()
	out := make([]*ferryv1.FleetJob, 0, len(js))
	for _, j := range js {
		out = append(out, j.snapshot(false))
	}
	sort.Slice(out, func(a, b int) bool {
		ta, tb := out[a].GetCreatedAt().AsTime(), out[b].GetCreatedAt().AsTime()
		if !ta.Equal(tb) {
			return ta.After(tb)
		}
		return out[a].GetId() < out[b].GetId()
	})
	return out
}

// Watch calls send with the job's snapshot now and at each change (at most every interval),
// until the job ends (after sending its final snapshot), ctx ends or send fails.
func (c *Coordinator) Watch(ctx context.Context, id string, interval time.Duration, send func(*ferryv1.FleetJob) error) error {
	j, err := c.get(id)
	if err != nil {
		return err
	}
	var last uint64
	first := true
	for {
		j.mu.Lock()
		v, ch := j.version, j.notify
		j.mu.Unlock()
		if first || v != last {
			snap := j.snapshot(true)
			if err := send(snap); err != nil {
				return err
			}
			if finalJob(snap.GetState()) {
				return nil
			}
			first, last = false, v
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return errors.New("coordinator stopping; watch again after its restart")
		case <-ch:
		}
		select { // coalesce bursts of changes
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Cancel stops a job: running deliveries are cancelled on their agents, pending hosts skipped.
// It waits up to wait for the final state.
func (c *Coordinator) Cancel(id string, wait time.Duration) (*ferryv1.FleetJob, error) {
	j, err := c.get(id)
	if err != nil {
		return nil, err
	}
	j.cancel.Store(true)
	select {
	case j.wake <- struct{}{}:
	default:
	}
	select {
	case <-j.done:
	case <-time.After(wait):
	}
	return j.snapshot(true), nil
}

// conn returns a pooled connection to addr.
func (c *Coordinator) conn(addr string) (ferryv1.AgentServiceClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return ferryv1.NewAgentServiceClient(cc), nil
	}
	var cc *grpc.ClientConn
	var err error
	if c.cfg.Dial != nil {
		cc, err = c.cfg.Dial(addr)
	} else {
		creds := insecure.NewCredentials()
		if c.cfg.TLS != nil {
			creds = credentials.NewTLS(c.cfg.TLS)
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithUserAgent("ferry-fleet")}
		if c.cfg.Token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(security.BearerToken(c.cfg.Token)))
		}
		cc, err = grpc.NewClient(addr, opts...)
	}
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return ferryv1.NewAgentServiceClient(cc), nil
}

// release closes the pooled connection to addr (a host that is done): a job over thousands of
// hosts keeps only the connections of deliveries in flight.
func (c *Coordinator) release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		cc.Close()
		delete(c.conns, addr)
	}
}
