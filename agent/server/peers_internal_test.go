package server

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/connectivity"
)

// TestPeersPoolBounds: idle connections beyond maxIdlePeerConns are closed least recently used
// first; a connection taken out of the pool while a call uses it is closed by that call's end.
func TestPeersPoolBounds(t *testing.T) {
	p := &Peers{}
	defer p.Close()
	var first *peerConn
	for i := range maxIdlePeerConns + 5 {
		pc, err := p.get(fmt.Sprintf("127.0.0.1:%d", 1+i)) // never dialled: no call is made
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = pc
		}
		p.release(pc)
	}
	if n := len(p.conns); n != maxIdlePeerConns {
		t.Fatalf("%d pooled connections, want %d", n, maxIdlePeerConns)
	}
	if s := first.cc.GetState(); s != connectivity.Shutdown || p.conns[first.addr] != nil {
		t.Fatalf("the least recently used connection: state %v, still pooled %v", s, p.conns[first.addr] != nil)
	}

	// A busy connection is not evicted.
	busy, err := p.get("127.0.0.1:65000")
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxIdlePeerConns + 5 {
		pc, err := p.get(fmt.Sprintf("127.0.0.1:%d", 2000+i))
		if err != nil {
			t.Fatal(err)
		}
		p.release(pc)
	}
	if p.conns[busy.addr] != busy || busy.cc.GetState() == connectivity.Shutdown {
		t.Fatal("a connection in use was evicted")
	}
	// Retired while in use: closed when released.
	p.mu.Lock()
	p.retireLocked(busy)
	p.mu.Unlock()
	if busy.cc.GetState() == connectivity.Shutdown {
		t.Fatal("retiring closed a connection in use")
	}
	p.release(busy)
	if busy.cc.GetState() != connectivity.Shutdown {
		t.Fatal("the retired connection was not closed by its last release")
	}
}
