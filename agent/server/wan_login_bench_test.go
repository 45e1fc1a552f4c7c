package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/server"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
)

// hostDialer is a testbed host as an ftpclient.ContextDialer.
type hostDialer struct{ h *testbed.Host }

func (d hostDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.h.Dial(ctx, network, addr)
}

// BenchmarkWANFixedCosts times the fixed costs of an agent-to-agent job over a 100 ms RTT link
// (issue #16): a peer grant on a new gRPC connection and on a reused one, and the login of one
// FTP session (FTPS and plain FTP) to an agent. It needs root (testbed); run it once:
//
//	go test -run '^$' -bench WANFixedCosts -benchtime 1x ./agent/server/
//
// Each figure is the median of several runs, printed on stderr and reported as a metric.
func BenchmarkWANFixedCosts(b *testing.B) {
	const (
		rtt      = 100 * time.Millisecond
		runs     = 5
		grpcPort = 7071
		ftpPort  = 2122
	)
	bed := testbed.New(b)
	cli, srv := bed.Host("fl-cli"), bed.Host("fl-srv")
	link := bed.WANLink(cli, srv, testbed.WANOpts{RTT: rtt})
	binDir := testbin.Dir(b)
	b.Cleanup(testbin.Cleanup)
	p := srv.Start(b, filepath.Join(binDir, "ferry-agent"),
		"--root", b.TempDir(), "--state-dir", b.TempDir(),
		"--token-file", testagent.TokenFile(b), "--peer-token-file", testagent.PeerTokenFile(b),
		"--insecure", "--grpc-listen", fmt.Sprintf(":%d", grpcPort), "--ftp-listen", fmt.Sprintf(":%d", ftpPort),
		"--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	defer rcancel()
	if err := p.WaitOutput(rctx, "ferry-agent ready"); err != nil {
		b.Fatal(err)
	}
	agentAddr := net.JoinHostPort(link.AddrC.String(), strconv.Itoa(grpcPort))
	viaCli := grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return cli.Dial(ctx, "tcp", a) })
	newPeers := func() *server.Peers {
		return &server.Peers{Token: testagent.PeerToken, DialOptions: []grpc.DialOption{viaCli}}
	}
	// median runs f runs times; f returns the time of the part measured.
	median := func(name string, f func() (time.Duration, error)) time.Duration {
		var ds []time.Duration
		for range runs {
			d, err := f()
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		m := ds[len(ds)/2]
		fmt.Fprintf(os.Stderr, "wan-fixed-costs: %-40s median %6.0f ms = %4.1f RTT (runs %v)\n",
			name, float64(m)/float64(time.Millisecond), float64(m)/float64(rtt), ds)
		b.ReportMetric(float64(m)/float64(time.Millisecond), name+"-ms")
		return m
	}
	closer := func(p *server.Peers) {
		if c, ok := any(p).(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}
	b.ResetTimer()

	// A grant on a fresh Peers: a new gRPC connection (what every grant cost before).
	median("grant-new-conn", func() (time.Duration, error) {
		peers := newPeers()
		defer closer(peers)
		start := time.Now()
		_, err := peers.GrantLogins(ctx, agentAddr, "/", false, 1)
		return time.Since(start), err
	})
	// Grants on one Peers, after a first one.
	peers := newPeers()
	defer closer(peers)
	g, err := peers.GrantLogins(ctx, agentAddr, "/", false, 2*runs+1)
	if err != nil {
		b.Fatal(err)
	}
	median("grant-same-peers", func() (time.Duration, error) {
		start := time.Now()
		_, err := peers.GrantLogins(ctx, agentAddr, "/", false, 1)
		return time.Since(start), err
	})

	pin, err := ftpclient.PinSHA256(g.TLSPin)
	if err != nil {
		b.Fatal(err)
	}
	// dial times Dial alone (connect, greeting, TLS, login, TYPE, FEAT), not Close's QUIT.
	dial := func(tlsOn bool) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			cfg := ftpclient.Config{Addr: g.FTPAddr, User: g.User, Password: g.Password, Dialer: hostDialer{cli}}
			if tlsOn {
				cfg.TLS = pin
			}
			start := time.Now()
			c, err := ftpclient.Dial(ctx, cfg)
			d := time.Since(start)
			if err != nil {
				return d, err
			}
			return d, c.Close()
		}
	}
	median("ftps-dial", dial(true))
	median("ftp-dial", dial(false))
}
