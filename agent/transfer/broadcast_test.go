package transfer

import (
	"testing"
	"time"
)

func TestBroadcasterNeverBlocksAndEndsWithFinal(t *testing.T) {
	b := newBroadcaster(Snapshot{State: StateQueued})
	slow, stopSlow := b.subscribe() // never read until the end
	defer stopSlow()
	gone, stopGone := b.subscribe()
	stopGone() // a watcher that went away
	done := make(chan struct{})
	go func() {
		for i := int64(1); i <= 10000; i++ {
			b.publish(Snapshot{State: StateRunning, BytesDone: i})
		}
		b.publish(Snapshot{State: StateSucceeded, BytesDone: 10000})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publisher blocked on a watcher that does not read")
	}
	var last Snapshot
	n := 0
	for s := range slow {
		last = s
		n++
	}
	if n != 1 || last.State != StateSucceeded || last.BytesDone != 10000 {
		t.Fatalf("slow watcher got %d values, last %+v; want only the final one", n, last)
	}
	// The watcher that went away holds at most the value it had when it left.
	if s := <-gone; s.State != StateQueued {
		t.Fatalf("unsubscribed watcher got %+v", s)
	}
	select {
	case s := <-gone:
		t.Fatalf("unsubscribed watcher kept receiving: %+v", s)
	default:
	}
	late, stop := b.subscribe()
	defer stop()
	s, ok := <-late
	if !ok || s.State != StateSucceeded {
		t.Fatalf("late watcher got %+v %v", s, ok)
	}
	if _, ok := <-late; ok {
		t.Fatal("late watcher channel not closed after the final snapshot")
	}
}

func TestRateAndETA(t *testing.T) {
	var m rateMeter
	t0 := time.Now()
	m.sample(0, t0)
	var r float64
	for i := 1; i <= 40; i++ {
		r = m.sample(int64(i)*25<<20, t0.Add(time.Duration(i)*250*time.Millisecond)) // 100 MiB/s
	}
	if r < 99<<20 || r > 101<<20 {
		t.Fatalf("rate %.0f, want about 100 MiB/s", r)
	}
	if e := eta(50<<20, 150<<20, 100<<20); e != time.Second {
		t.Fatalf("eta %v, want 1s", e)
	}
	if e := eta(0, 0, 1); e >= 0 {
		t.Fatalf("eta with unknown total = %v, want < 0", e)
	}
}
