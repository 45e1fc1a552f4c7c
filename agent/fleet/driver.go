package fleet

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// run starts j's driver.
func (c *Coordinator) run(j *job) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.drive(j)
	}()
}

// drive steps the job every Poll until it ends or the coordinator closes (then the job stays
// stored as it is and resumes at the next start).
func (c *Coordinator) drive(j *job) {
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		if c.step(j) {
			close(j.done)
			c.log.Info("fleet job ended", "job", j.rec.ID, "state", j.rec.State, "error", j.rec.Error)
			return
		}
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-j.wake:
		}
	}
}

// outcome is what one call about one host brought back.
type outcome struct {
	t   *ferryv1.Transfer
	err error
}

// step looks at every running delivery, starts new ones and reports whether the job ended.
// Only the driver writes the job; it writes under j.mu, and reads without it.
func (c *Coordinator) step(j *job) bool {
	r := &j.rec
	ctx := c.ctx
	dirty := map[int]bool{}

	if r.Cancelled || j.cancel.Load() {
		c.cancelAll(j)
		return true
	}

	// 1. Running deliveries: ask their agents (or start again with the same request id a
	// delivery the coordinator may have started before it restarted).
	var run []int
	for i, h := range j.hosts {
		if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING {
			run = append(run, i)
		}
	}
	outs := make([]outcome, len(run))
	parallel(len(run), func(k int) {
		h := j.hosts[run[k]]
		if h.TransferID == "" {
			outs[k].t, outs[k].err = c.startTransfer(ctx, j, h)
		} else {
			outs[k].t, outs[k].err = c.getTransfer(ctx, h)
		}
	})
	probes := map[string]error{} // relay address -> health, once per step
	probe := func(addr string) error {
		if err, ok := probes[addr]; ok {
			return err
		}
		err := c.probe(ctx, addr)
		probes[addr] = err
		return err
	}
	for k, i := range run {
		if ctx.Err() != nil {
			return false
		}
		if c.apply(j, i, outs[k], probe) {
			dirty[i] = true
		}
	}

	// 2. New deliveries.
	started := c.schedule(j)
	for _, i := range started {
		dirty[i] = true
	}
	c.persist(j, dirty)
	if len(started) > 0 {
		souts := make([]outcome, len(started))
		parallel(len(started), func(k int) {
			souts[k].t, souts[k].err = c.startTransfer(ctx, j, j.hosts[started[k]])
		})
		dirty = map[int]bool{}
		for k, i := range started {
			if ctx.Err() != nil {
				return false
			}
			if c.apply(j, i, souts[k], probe) {
				dirty[i] = true
			}
		}
		c.persist(j, dirty)
	}

	// 3. The end?
	return c.finish(j)
}

// apply records what a call about host i brought back; it reports whether the host changed.
func (c *Coordinator) apply(j *job, i int, o outcome, probe func(string) error) bool {
	h := j.hosts[i]
	r := &j.rec
	now := time.Now().UTC()
	relay := h.ServedBy != "" && r.Kind == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY
	if o.err != nil {
		code := status.Code(o.err)
		switch {
		case code == codes.InvalidArgument || code == codes.PermissionDenied || code == codes.Unauthenticated:
			c.failHost(j, h, fmt.Sprintf("%s refused the delivery: %s", h.Runner, msg(o.err)), true)
		case code == codes.NotFound && h.TransferID != "":
			c.failHost(j, h, fmt.Sprintf("%s lost transfer %s", h.Runner, h.TransferID), false)
		case h.TransferID == "":
			c.failHost(j, h, fmt.Sprintf("start on %s: %s", h.Runner, msg(o.err)), false)
		default:
			h.polls++
			if h.polls < 3 {
				return false
			}
			c.failHost(j, h, fmt.Sprintf("%s unreachable: %s", h.Runner, msg(o.err)), false)
		}
		return true
	}
	h.polls = 0
	t := o.t
	p := t.GetProgress()
	switch t.GetState() {
	case ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED:
		sum := t.GetSha256()
		if r.Kind == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY && sum != "" {
			if r.SHA256 == "" && !relay {
				j.mu.Lock()
				r.SHA256 = sum
				j.mu.Unlock()
				c.putJob(j)
			}
			if r.SHA256 != "" && sum != r.SHA256 {
				if relay {
					c.relayGone(j, h, "served a copy with another SHA-256")
				}
				c.failHost(j, h, fmt.Sprintf("checksum: got %s, the source has %s", short(sum), short(r.SHA256)), false)
				return true
			}
		}
		j.mu.Lock()
		h.TransferID, h.BytesDone, h.BytesTotal = t.GetId(), p.GetBytesDone(), p.GetBytesTotal()
		h.State, h.SHA256, h.Finished = ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED, sum, now
		j.changed()
		j.mu.Unlock()
		if r.Kind == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY && r.Strategy == ferryv1.FleetStrategy_FLEET_STRATEGY_DIRECT {
			c.release(h.Address) // a relay keeps its connection: the coordinator probes it
		}
		return true
	case ferryv1.TransferState_TRANSFER_STATE_FAILED, ferryv1.TransferState_TRANSFER_STATE_CANCELLED:
		cause := t.GetError()
		if cause == "" {
			cause = strings.ToLower(strings.TrimPrefix(t.GetState().String(), "TRANSFER_STATE_"))
		}
		if relay && t.GetErrorCode() != "no_space" {
			// Unless the receiver's own disk is full, this holder serves no one else (it may
			// be down, or lost its copy); the host tries another.
			c.relayGone(j, h, "a delivery from it failed: "+cause)
			if c.reroute(j, h, fmt.Sprintf("relay %s failed: %s", h.ServedBy, cause)) {
				return true
			}
		}
		permanent := false
		switch t.GetErrorCode() {
		case "not_found", "permission_denied", "invalid":
			permanent = !relay
		}
		c.failHost(j, h, cause, permanent)
		return true
	default: // queued or running
		changed := p.GetBytesDone() != h.BytesDone || p.GetBytesTotal() != h.BytesTotal || t.GetId() != h.TransferID
		j.mu.Lock()
		h.TransferID, h.BytesDone, h.BytesTotal = t.GetId(), p.GetBytesDone(), p.GetBytesTotal()
		if t.GetAttempt() > 1 && t.GetLastError() != "" {
			h.Err = t.GetLastError()
		}
		if changed {
			j.changed()
		}
		j.mu.Unlock()
		// A delivery retrying from a relay: if the relay is gone, go elsewhere now rather than
		// after the engine's retries run out.
		if relay && t.GetAttempt() > 1 {
			if err := probe(h.ServerAddr); err != nil {
				c.cancelTransfer(h)
				c.relayGone(j, h, "unreachable: "+msg(err))
				if c.reroute(j, h, fmt.Sprintf("relay %s unreachable: %s", h.ServedBy, msg(err))) {
					return true
				}
				c.failHost(j, h, "relay unreachable and reroutes exhausted", false)
				return true
			}
		}
		return changed
	}
}

// relayGone takes the host that served h out of the holders, and says so on its line.
func (c *Coordinator) relayGone(j *job, h *hostRecord, why string) {
	for _, o := range j.hosts {
		if o.Name == h.ServedBy && !o.RelayDead {
			j.mu.Lock()
			o.RelayDead = true
			o.Err = "stopped serving as a relay: " + why
			j.changed()
			j.mu.Unlock()
			c.log.Warn("fleet relay dropped", "job", j.rec.ID, "relay", o.Name, "why", why)
			c.persistHost(j, o)
		}
	}
}

// reroute puts h back in line to be served by another holder, without counting an attempt.
func (c *Coordinator) reroute(j *job, h *hostRecord, why string) bool {
	if h.Reroutes >= maxReroutes {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	h.Reroutes++
	h.State, h.TransferID, h.Err, h.NextTry = ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING, "", why, time.Time{}
	h.BytesDone = 0
	j.changed()
	return true
}

// failHost ends an attempt: the host waits for its next one, or fails for good after
// MaxAttempts (or at once when permanent).
func (c *Coordinator) failHost(j *job, h *hostRecord, cause string, permanent bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	failures := h.Attempt - h.Reroutes
	h.Err, h.TransferID, h.polls = cause, "", 0
	if permanent || failures >= j.rec.MaxAttempts {
		h.State, h.Finished = ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED, time.Now().UTC()
		c.log.Warn("fleet host failed", "job", j.rec.ID, "host", h.Name, "attempts", h.Attempt, "error", cause)
	} else {
		backoff := c.cfg.RetryBase << min(failures-1, 5)
		h.State, h.NextTry = ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING, time.Now().Add(min(backoff, 30*time.Second))
		c.log.Info("fleet host retries", "job", j.rec.ID, "host", h.Name, "attempt", h.Attempt, "error", cause)
	}
	j.changed()
}

// schedule picks the hosts to start now and who serves each; it marks them running (with a new
// attempt and request id) and returns their indexes.
func (c *Coordinator) schedule(j *job) []int {
	r := &j.rec
	now := time.Now()
	copyJob := r.Kind == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY
	tree := copyJob && r.Strategy == ferryv1.FleetStrategy_FLEET_STRATEGY_TREE

	running := 0
	load := map[string]int{}
	wave1Open, wave1Failed := false, false
	for _, h := range j.hosts {
		if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING {
			running++
			load[h.ServerAddr]++
		}
		if h.Wave == 1 && !h.final() {
			wave1Open = true
		}
		if h.Wave == 1 && h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED {
			wave1Failed = true
		}
	}
	if wave1Failed && !wave1Open {
		var failed []string
		for _, h := range j.hosts {
			if h.Wave == 1 && h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED {
				failed = append(failed, h.Name)
			}
		}
		j.mu.Lock()
		for _, h := range j.hosts {
			if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING {
				h.State, h.Err, h.Finished = ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED, "canary wave failed", now.UTC()
			}
		}
		if r.Error == "" {
			r.Error = "canary wave failed (" + names(failed) + "); the other hosts were skipped"
		}
		j.changed()
		j.mu.Unlock()
		dirty := map[int]bool{}
		for i, h := range j.hosts {
			if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED {
				dirty[i] = true
			}
		}
		c.persist(j, dirty)
		return nil
	}

	// Holders that may serve (tree): hosts with a verified copy that still answer.
	type holder struct{ name, addr string }
	var relays []holder
	var loads []int
	if tree {
		for _, h := range j.hosts {
			if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED && !h.RelayDead {
				relays = append(relays, holder{h.Name, h.Address})
				loads = append(loads, load[h.Address])
			}
		}
	}
	// nextRelay returns a relay with a free slot, the least loaded level first (every relay gets
	// its first child before any gets a second), in O(relays × fanout) for a whole pass.
	level, cursor := 0, 0
	nextRelay := func() int {
		for ; level < r.Fanout; level++ {
			for scanned := 0; scanned < len(relays); scanned++ {
				k := (cursor + scanned) % len(relays)
				if loads[k] <= level {
					cursor = k + 1
					return k
				}
			}
			cursor = 0
		}
		return -1
	}
	var out []int
pick:
	for i, h := range j.hosts {
		if running >= r.Concurrency {
			break
		}
		if h.State != ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING || now.Before(h.NextTry) {
			continue
		}
		if h.Wave == 2 && (wave1Open || wave1Failed) {
			continue
		}
		var served, addr string
		switch {
		case !copyJob: // collect: the destination pulls from the host
			served, addr = h.Name, h.Address
		case !tree:
			addr = r.Source.Address
		default:
			best := nextRelay()
			switch {
			case best >= 0:
				served, addr = relays[best].name, relays[best].addr
				loads[best]++
			case load[r.Source.Address] < r.Fanout && (r.SourceCopies < r.Fanout || len(relays) == 0):
				addr = r.Source.Address
			default:
				break pick // every holder is busy (for any host): wait for one, or for new holders
			}
		}
		j.mu.Lock()
		h.Attempt++
		h.RequestID = fmt.Sprintf("fleet-%s-%d-%d", r.ID, i, h.Attempt)
		h.State, h.TransferID, h.ServedBy, h.ServerAddr = ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING, "", served, addr
		h.BytesDone = 0
		if copyJob {
			h.Runner, h.RunnerAddr = h.Name, h.Address
		} else {
			h.Runner, h.RunnerAddr = r.Destination.Name, r.Destination.Address
		}
		if h.Started.IsZero() {
			h.Started = now.UTC()
		}
		if copyJob && served == "" {
			r.SourceCopies++
		}
		j.changed()
		j.mu.Unlock()
		running++
		load[addr]++
		out = append(out, i)
	}
	if len(out) > 0 {
		c.putJob(j)
	}
	return out
}

// startTransfer starts (or, with the same request id, finds again) h's delivery on its runner.
func (c *Coordinator) startTransfer(ctx context.Context, j *job, h *hostRecord) (*ferryv1.Transfer, error) {
	r := &j.rec
	req := &ferryv1.StartTransferRequest{RequestId: h.RequestID}
	if r.Kind == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY {
		src := r.SourcePath
		if h.ServedBy != "" {
			src = r.finalPath()
		}
		req.Source, req.Destination = agentURL(h.ServerAddr, src), r.DestPath
	} else {
		req.Source = agentURL(h.ServerAddr, r.SourcePath)
		req.Destination = path.Join(r.DestPath, h.Name) + "/"
	}
	cl, err := c.conn(h.RunnerAddr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	resp, err := cl.StartTransfer(cctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetTransfer(), nil
}

func agentURL(addr, p string) string { return "agent://" + addr + "/" + strings.TrimPrefix(p, "/") }

func (c *Coordinator) getTransfer(ctx context.Context, h *hostRecord) (*ferryv1.Transfer, error) {
	cl, err := c.conn(h.RunnerAddr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	resp, err := cl.GetTransfer(cctx, &ferryv1.GetTransferRequest{Id: h.TransferID})
	if err != nil {
		return nil, err
	}
	return resp.GetTransfer(), nil
}

func (c *Coordinator) cancelTransfer(h *hostRecord) {
	if h.TransferID == "" {
		return
	}
	cl, err := c.conn(h.RunnerAddr)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
	defer cancel()
	_, _ = cl.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: h.TransferID})
}

// probe asks an agent whether it answers (GetAgentInfo, bounded by a short timeout).
func (c *Coordinator) probe(ctx context.Context, addr string) error {
	cl, err := c.conn(addr)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, min(c.cfg.CallTimeout, 2*time.Second))
	defer cancel()
	_, err = cl.GetAgentInfo(cctx, &ferryv1.GetAgentInfoRequest{})
	return err
}

// cancelAll ends a cancelled job: running deliveries are cancelled on their agents, the rest
// skipped.
func (c *Coordinator) cancelAll(j *job) {
	var run []*hostRecord
	for _, h := range j.hosts {
		if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING {
			run = append(run, h)
		}
	}
	parallel(len(run), func(k int) { c.cancelTransfer(run[k]) })
	now := time.Now().UTC()
	dirty := map[int]bool{}
	j.mu.Lock()
	for i, h := range j.hosts {
		if !h.final() {
			h.State, h.Err, h.Finished = ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED, "cancelled", now
			dirty[i] = true
		}
	}
	j.rec.State, j.rec.Finished, j.rec.Error = ferryv1.FleetJobState_FLEET_JOB_STATE_CANCELLED, now, "cancelled"
	j.rec.Cancelled = true
	j.changed()
	j.mu.Unlock()
	c.persist(j, dirty)
	c.putJob(j)
}

// finish ends the job once every host is final.
func (c *Coordinator) finish(j *job) bool {
	var failed []string
	for _, h := range j.hosts {
		if !h.final() {
			return false
		}
		if h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED {
			failed = append(failed, h.Name)
		}
	}
	j.mu.Lock()
	r := &j.rec
	r.State, r.Finished = ferryv1.FleetJobState_FLEET_JOB_STATE_SUCCEEDED, time.Now().UTC()
	if len(failed) > 0 || r.Error != "" {
		r.State = ferryv1.FleetJobState_FLEET_JOB_STATE_FAILED
		if r.Error == "" {
			r.Error = fmt.Sprintf("%d of %d hosts failed: %s", len(failed), len(j.hosts), names(failed))
		}
	}
	j.changed()
	j.mu.Unlock()
	c.putJob(j)
	for _, h := range j.hosts {
		c.release(h.Address)
	}
	c.mu.Lock()
	c.trim()
	c.mu.Unlock()
	return true
}

func names(ns []string) string {
	if len(ns) > 10 {
		return strings.Join(ns[:10], ", ") + fmt.Sprintf(" and %d more", len(ns)-10)
	}
	return strings.Join(ns, ", ")
}

// putJob stores the job record (a failure is logged: the job goes on, and a restart finds its
// deliveries again by their request ids).
func (c *Coordinator) putJob(j *job) {
	j.mu.Lock()
	b := marshal(&j.rec)
	j.mu.Unlock()
	if c.cfg.Store != nil {
		if err := c.cfg.Store.Put(jobKey(j.rec.ID), b); err != nil {
			c.log.Error("fleet job not stored", "job", j.rec.ID, "error", err)
		}
	}
}

func (c *Coordinator) persistHost(j *job, h *hostRecord) {
	for i, o := range j.hosts {
		if o == h {
			c.persist(j, map[int]bool{i: true})
		}
	}
}

// persist stores the changed hosts, concurrently (the store commits them together).
func (c *Coordinator) persist(j *job, dirty map[int]bool) {
	if c.cfg.Store == nil || len(dirty) == 0 {
		return
	}
	idx := make([]int, 0, len(dirty))
	recs := make([][]byte, 0, len(dirty))
	j.mu.Lock()
	for i := range dirty {
		idx = append(idx, i)
		recs = append(recs, marshal(j.hosts[i]))
	}
	j.mu.Unlock()
	parallel(len(idx), func(k int) {
		if err := c.cfg.Store.Put(hostKey(j.rec.ID, idx[k]), recs[k]); err != nil {
			c.log.Error("fleet host not stored", "job", j.rec.ID, "error", err)
		}
	})
}

// parallel runs fn(0..n-1) on at most pollWorkers goroutines and waits.
func parallel(n int, fn func(int)) {
	if n == 0 {
		return
	}
	sem := make(chan struct{}, pollWorkers)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// msg is an error's text without gRPC's wrapping of a dial error.
func msg(err error) string {
	m := err.Error()
	if s, ok := status.FromError(err); ok {
		m = s.Message()
	}
	const marker = "Error while dialing: "
	if i := strings.Index(m, marker); i >= 0 {
		m = strings.TrimRight(m[i+len(marker):], `"`)
	}
	return m
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
