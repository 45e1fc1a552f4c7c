package transfer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// throttle holds a job's data to its bandwidth limit (Spec.LimitRate, changeable while it runs
// with Manager.Update) and to the agent's (Config.LimitRate, shared by every job). The copy loops
// ask it, before each read or sendfile, how many bytes they may move now: at most a tenth of a
// second's worth, so a new limit takes effect within about that long.
type throttle struct {
	limit atomic.Int64 // the job's limit in bytes per second; 0 = none
	agent *agentLimit  // nil = none

	mu      sync.Mutex
	lim     *rate.Limiter
	applied int64 // the limit lim was set up for
}

// agentLimit is the agent's limit, one token bucket shared by all jobs.
type agentLimit struct {
	bps   int64
	chunk int
	lim   *rate.Limiter
}

func newAgentLimit(bps int64) *agentLimit {
	if bps <= 0 {
		return nil
	}
	c := chunkFor(bps)
	return &agentLimit{bps: bps, chunk: c, lim: rate.NewLimiter(rate.Limit(bps), c)}
}

// chunkFor is the most a copy may move in one step under a limit of bps: a tenth of a second's
// worth, between 512 bytes and 4 MiB.
func chunkFor(bps int64) int {
	return int(min(max(bps/10, 512), 4<<20))
}

// grant waits until up to want bytes may be moved and returns how many (at least 1).
func (t *throttle) grant(ctx context.Context, want int) (int, error) {
	bps := t.limit.Load()
	if bps <= 0 && t.agent == nil {
		return want, nil
	}
	n := want
	var lim *rate.Limiter
	if bps > 0 {
		n = min(n, chunkFor(bps))
		lim = t.limiter(bps)
	}
	if t.agent != nil {
		n = min(n, t.agent.chunk)
	}
	n = max(n, 1)
	if lim != nil {
		if err := lim.WaitN(ctx, n); err != nil {
			return 0, waitErr(ctx, err)
		}
	}
	if t.agent != nil {
		if err := t.agent.lim.WaitN(ctx, n); err != nil {
			return 0, waitErr(ctx, err)
		}
	}
	return n, nil
}

func waitErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return fmt.Errorf("rate limit: %w", err)
}

// limiter returns the job's token bucket, set up for bps.
func (t *throttle) limiter(bps int64) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lim == nil {
		t.lim = rate.NewLimiter(rate.Limit(bps), chunkFor(bps))
	} else if t.applied != bps {
		t.lim.SetLimit(rate.Limit(bps))
		t.lim.SetBurst(chunkFor(bps))
	}
	t.applied = bps
	return t.lim
}

// grantFunc is grant bound to ctx, or nil when no limit can apply (the copy then skips it).
func (t *throttle) grantFunc(ctx context.Context) func(int) (int, error) {
	return func(want int) (int, error) { return t.grant(ctx, want) }
}
