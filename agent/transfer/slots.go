package transfer

import (
	"context"
	"sync"
)

// slots is a counting semaphore that serves waiters in arrival order: the scheduler's global
// limit (queued jobs start in the order they came) and the per-server session limit.
type slots struct {
	mu      sync.Mutex
	used    int
	max     int
	waiters []chan struct{}
}

func newSlots(max int) *slots { return &slots{max: max} }

// acquire takes a slot, waiting in line; it fails only when ctx ends first.
func (s *slots) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.used < s.max && len(s.waiters) == 0 {
		s.used++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, w := range s.waiters {
			if w == ch {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				return context.Cause(ctx)
			}
		}
		// Handed a slot just as ctx ended: give it back.
		s.releaseLocked()
		return context.Cause(ctx)
	}
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *slots) releaseLocked() {
	if len(s.waiters) > 0 {
		ch := s.waiters[0]
		s.waiters = s.waiters[1:]
		close(ch) // the slot passes to the first waiter
		return
	}
	s.used--
}

// hostSlots limits sessions per server address.
type hostSlots struct {
	max int
	mu  sync.Mutex
	m   map[string]*slots
}

func (h *hostSlots) get(addr string) *slots {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[string]*slots)
	}
	s, ok := h.m[addr]
	if !ok {
		s = newSlots(h.max)
		h.m[addr] = s
	}
	return s
}
