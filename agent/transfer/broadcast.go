package transfer

import "sync"

// broadcaster fans one job's snapshots out to any number of watchers without ever blocking the
// publisher (the pattern of grpc-go's health Watch): each watcher has a channel of capacity 1
// and a publish replaces a value nobody has read yet, so a slow watcher sees the newest state
// and never slows the transfer. After the final snapshot the channels are closed.
type broadcaster struct {
	mu    sync.Mutex
	last  Snapshot
	final bool // no more snapshots: the job reached a final state, or this agent shut down
	subs  map[chan Snapshot]struct{}
}

func newBroadcaster(s Snapshot) *broadcaster {
	return &broadcaster{last: s, subs: make(map[chan Snapshot]struct{})}
}

func (b *broadcaster) publish(s Snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.final {
		return
	}
	b.last = s
	b.final = s.State.Final()
	for ch := range b.subs {
		offer(ch, s)
		if b.final {
			close(ch)
		}
	}
	if b.final {
		b.subs = nil
	}
}

// interrupt publishes s (not final) as the last snapshot this process will publish and closes
// the subscriptions: the agent is shutting down and the job goes on after the restart.
func (b *broadcaster) interrupt(s Snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.final {
		return
	}
	b.last, b.final = s, true
	for ch := range b.subs {
		offer(ch, s)
		close(ch)
	}
	b.subs = nil
}

// offer puts s in ch, dropping a stale value; only the publisher sends, under b.mu.
func offer(ch chan Snapshot, s Snapshot) {
	select {
	case <-ch:
	default:
	}
	ch <- s
}

func (b *broadcaster) snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// subscribe returns a channel that first holds the current snapshot, and a function that stops
// the subscription (safe to call after the channel was closed).
func (b *broadcaster) subscribe() (<-chan Snapshot, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan Snapshot, 1)
	ch <- b.last
	if b.final {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, ch) // no-op once final (subs is nil)
	}
}
