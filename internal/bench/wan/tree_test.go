package wan

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// BenchmarkTreeWAN is the small-files case alone, Ferry only, several runs each way, with a
// timeline of one run (the serving agent's FTP commands, --log-level debug): 500 files of
// 4 KiB agent to agent at 50 ms RTT, 200 Mbit/s, downloaded (pulled) then uploaded (pushed).
// FERRY_BENCH_RUNS sets the runs per direction (default 5). Needs root.
//
//	go test -run '^$' -bench BenchmarkTreeWAN -benchtime 1x ./internal/bench/wan/
func BenchmarkTreeWAN(b *testing.B) {
	bed := testbed.New(b)
	binDir := testbin.Dir(b)
	cli, srv := bed.Host("ft-cli"), bed.Host("ft-srv")
	bed.WANLink(cli, srv, testbed.WANOpts{RTT: 50 * time.Millisecond, RateMbit: 200})
	if n := os.Getenv("FERRY_BENCH_INITCWND"); n != "" {
		// What a larger initial congestion (and receive) window would give: a route option,
		// system tuning that Ferry cannot do per socket.
		for _, h := range []*testbed.Host{cli, srv} {
			i := h.Ifaces()[0]
			out, err := h.Exec(context.Background(), "ip", "route", "change", i.Prefix.Masked().String(), "dev", i.Name,
				"initcwnd", n, "initrwnd", n)
			if err != nil {
				b.Fatalf("initcwnd: %v: %s", err, out)
			}
		}
	}
	for range 2 {
		fmt.Fprintf(os.Stderr, "raw TCP, 2000 KiB server to client: %v\n", rawCopy(b, srv, cli, cli.Ifaces()[0].Addr, "", smallFiles*smallSize).Round(time.Millisecond))
	}
	a, ap := startAgentLog(b, cli, binDir, "debug")
	s, sp := startAgentLog(b, srv, binDir, "debug")
	makeTree(b, filepath.Join(s.root, "tree"))
	makeTree(b, filepath.Join(a.root, "tree"))
	runs := 5
	if n, err := strconv.Atoi(os.Getenv("FERRY_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	b.ResetTimer()
	for _, dir := range []string{"download", "upload"} {
		var total time.Duration
		best := time.Hour
		for i := range runs {
			mark, amark := len(sp.Output()), len(ap.Output())
			src, dst := s.url("tree"), fmt.Sprintf("down/%d/", i)
			if dir == "upload" {
				src, dst = "tree", s.url(fmt.Sprintf("up/%d/", i))
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), runLimit)
			_, err := a.copy(ctx, src, dst, 0)
			cancel()
			took := time.Since(start)
			must(b, err)
			total += took
			best = min(best, took)
			fmt.Fprintf(os.Stderr, "tree %s run %d: %v, %.0f files/s\n", dir, i, took.Round(time.Millisecond), smallFiles/took.Seconds())
			if i == runs-1 {
				fmt.Fprintf(os.Stderr, "timeline of the serving agent (ms after the request):\n%s", timeline(sp.Output()[mark:], start))
				fmt.Fprintf(os.Stderr, "timeline of the requesting agent:\n%s", timeline(ap.Output()[amark:], start))
			}
		}
		mean := total / time.Duration(runs)
		fmt.Printf("%d x 4 KiB tree %s, 50 ms RTT: mean %v (%.0f files/s), best %v (%.0f files/s)\n",
			smallFiles, dir, mean.Round(time.Millisecond), smallFiles/mean.Seconds(), best.Round(time.Millisecond), smallFiles/best.Seconds())
	}
	// sync down into the first download's copy after one file changed on the serving agent.
	var total time.Duration
	for i := range runs {
		p := filepath.Join(s.root, "tree/d00/f0000.bin")
		must(b, os.WriteFile(p, randomBytes(b, smallSize), 0o644))
		future := time.Now().Add(time.Duration(i+1) * time.Hour)
		must(b, os.Chtimes(p, future, future))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), runLimit)
		err := syncDown(ctx, a, s.url("tree"), "down/0/")
		cancel()
		must(b, err)
		total += time.Since(start)
	}
	fmt.Printf("sync of the %d-file tree, one file changed, 50 ms RTT: mean %v\n", smallFiles, (total / time.Duration(runs)).Round(time.Millisecond))
}

// syncDown runs one sync (options.sync) on the agent and waits for its end.
func syncDown(ctx context.Context, a *agent, src, dst string) error {
	last, err := testagent.RunTransfer(ctx, a.api, &ferryv1.StartTransferRequest{Source: src, Destination: dst,
		Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE, Options: &ferryv1.TransferOptions{Sync: true}})
	if err != nil {
		return err
	}
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || last.GetProgress().GetFilesTotal() != 1 {
		return fmt.Errorf("sync: %v %s, %d files", last.GetState(), last.GetError(), last.GetProgress().GetFilesTotal())
	}
	return nil
}

// startAgentLog is startAgent with a log level; it returns the process too (its output).
func startAgentLog(b *testing.B, h *testbed.Host, binDir, level string) (*agent, *testbed.Proc) {
	root := b.TempDir()
	addr := h.Ifaces()[0].Addr
	p := h.Start(b, filepath.Join(binDir, "ferry-agent"),
		"--root", root, "--state-dir", b.TempDir(),
		"--token-file", testagent.TokenFile(b), "--peer-token-file", testagent.PeerTokenFile(b),
		"--insecure", "--grpc-listen", fmt.Sprintf(":%d", grpcPort), "--ftp-listen", fmt.Sprintf(":%d", ftpPort),
		"--passive-ports", "30010-30039", "--log-level", level)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	must(b, p.WaitOutput(ctx, "ferry-agent ready"))
	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(testagent.AdminToken)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return h.Dial(ctx, "tcp", a) }))
	must(b, err)
	b.Cleanup(func() { conn.Close() })
	return &agent{root: root, addr: net.JoinHostPort(addr.String(), strconv.Itoa(grpcPort)), api: ferryv1.NewAgentServiceClient(conn)}, p
}

// timeline picks the FTP commands and replies out of an agent's debug log, in ms after start.
func timeline(out string, start time.Time) string {
	var sb strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "ftp command") && !strings.Contains(line, "ftp reply") && !strings.Contains(line, "transfer") && !strings.Contains(line, "tree") {
			continue
		}
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			fmt.Fprintf(&sb, "  %s\n", line)
			continue
		}
		fmt.Fprintf(&sb, "  %6.0f %s\n", float64(t.Sub(start).Microseconds())/1000, rest)
	}
	return sb.String()
}
