package server_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/server"
	"github.com/ferry-dev/ferry/internal/testagent"
)

// connCounter is a gRPC dialer that counts the TCP connections it makes and their closes.
type connCounter struct {
	dials, closes atomic.Int32
}

func (c *connCounter) option() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		c.dials.Add(1)
		return &countedConn{Conn: conn, c: c}, nil
	})
}

type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() { cc.c.closes.Add(1) })
	return cc.Conn.Close()
}

// TestPeersReuseConnection: grants to one peer agent, one after the other and concurrently,
// share one gRPC connection (one TCP connection); Close closes it and refuses later calls.
func TestPeersReuseConnection(t *testing.T) {
	a := testagent.Start(t)
	var n connCounter
	p := &server.Peers{Token: testagent.PeerToken, DialOptions: []grpc.DialOption{n.option()}}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	g1, err := p.GrantLogins(ctx, a.GRPC, "/", false, 2)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := p.Grant(ctx, a.GRPC, "/", true)
	if err != nil {
		t.Fatal(err)
	}
	if g1.User == g2.User || g1.Password == g2.Password || g1.Logins != 2 || g2.Logins != 1 {
		t.Fatalf("grants %+v and %+v: want two distinct credentials (2 and 1 logins)", g1.Logins, g2.Logins)
	}
	if d := n.dials.Load(); d != 1 {
		t.Fatalf("two grants to one peer made %d connections, want 1", d)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Grant(ctx, a.GRPC, "/", false)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := n.dials.Load(); d != 1 {
		t.Fatalf("10 grants to one peer made %d connections, want 1", d)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); n.closes.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if c := n.closes.Load(); c != 1 {
		t.Fatalf("after Close, %d of 1 connections closed", c)
	}
	if _, err := p.Grant(ctx, a.GRPC, "/", false); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Grant after Close: %v, want an error saying the connections are closed", err)
	}
	_ = p.Close() // twice is fine
}

// TestPeersReplaceFailedConnection: a peer that could not be reached is called again as soon as
// it is up, on a new connection, not after the failed one's reconnection backoff.
func TestPeersReplaceFailedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var n connCounter
	p := &server.Peers{Token: testagent.PeerToken, DialOptions: []grpc.DialOption{n.option()}}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := p.Grant(ctx, addr, "/", false); err == nil {
		t.Fatal("Grant to a closed port succeeded")
	}
	testagent.Start(t, func(c *daemon.Config) { c.GRPCListen = addr })
	start := time.Now()
	if _, err := p.Grant(ctx, addr, "/", false); err != nil {
		t.Fatalf("Grant once the peer is up (%v after the failure): %v", time.Since(start), err)
	}
}
