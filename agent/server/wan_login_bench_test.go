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
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/server"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// hostDialer is a testbed host as an ftpclient.ContextDialer.
type hostDialer struct{ h *testbed.Host }

func (d hostDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.h.Dial(ctx, network, addr)
}

// BenchmarkWANFixedCosts times the fixed costs of an agent-to-agent job over a 100 ms RTT link
// (issue #16): a peer grant on a new gRPC connection and on a reused one, the login of one FTP
// session (FTPS and plain FTP) to an agent, and whole jobs copying a 4 KiB file from one agent
// to the other (the first job, then later ones). It needs root (testbed); run it once:
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startAgent := func(h *testbed.Host) (root string) {
		root = b.TempDir()
		p := h.Start(b, filepath.Join(binDir, "ferry-agent"),
			"--root", root, "--state-dir", b.TempDir(),
			"--token-file", testagent.TokenFile(b), "--peer-token-file", testagent.PeerTokenFile(b),
			"--insecure", "--grpc-listen", fmt.Sprintf(":%d", grpcPort), "--ftp-listen", fmt.Sprintf(":%d", ftpPort),
			"--log-level", "warn")
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		defer rcancel()
		if err := p.WaitOutput(rctx, "ferry-agent ready"); err != nil {
			b.Fatal(err)
		}
		return root
	}
	srvRoot := startAgent(srv)
	startAgent(cli)
	if err := os.WriteFile(filepath.Join(srvRoot, "small.bin"), make([]byte, 4096), 0o644); err != nil {
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

	// Whole jobs on the client agent: agent://srv/small.bin to its root, the first one (new
	// peer connection, first FTP session to that agent) and the next ones.
	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(testagent.AdminToken)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return cli.Dial(ctx, "tcp", a) }))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	api := ferryv1.NewAgentServiceClient(conn)
	jobs := 0
	job := func() (time.Duration, error) {
		jobs++
		start := time.Now()
		last, err := testagent.RunTransfer(ctx, api, &ferryv1.StartTransferRequest{
			Source: "agent://" + agentAddr + "/small.bin", Destination: fmt.Sprintf("in%d/", jobs),
			Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
		if err != nil {
			return 0, err
		}
		if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			return 0, fmt.Errorf("job: %v %s", last.GetState(), last.GetError())
		}
		return time.Since(start), nil
	}
	first, err := job()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wan-fixed-costs: %-40s %6.0f ms = %4.1f RTT\n", "job-4k-first",
		float64(first)/float64(time.Millisecond), float64(first)/float64(rtt))
	b.ReportMetric(float64(first)/float64(time.Millisecond), "job-4k-first-ms")
	median("job-4k-next", job)
}
