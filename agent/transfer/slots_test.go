package transfer

import (
	"context"
	"testing"
	"time"
)

func TestSlotsFIFO(t *testing.T) {
	s := newSlots(1)
	ctx := context.Background()
	if err := s.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			if err := s.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
		}()
		// Each waiter queues before the next one starts.
		deadline := time.Now().Add(2 * time.Second)
		for {
			s.mu.Lock()
			n := len(s.waiters)
			s.mu.Unlock()
			if n == i+1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	for want := range 3 {
		s.release()
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("waiter %d got the slot, want %d", got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no waiter got the slot")
		}
	}
}

func TestSlotsCancelledWaiter(t *testing.T) {
	s := newSlots(1)
	_ = s.acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.acquire(ctx); err == nil {
		t.Fatal("acquire succeeded on a full semaphore")
	}
	s.release()
	if err := s.acquire(context.Background()); err != nil { // the gone waiter took nothing
		t.Fatal(err)
	}
}
