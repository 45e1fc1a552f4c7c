package wan

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
)

// BenchmarkWANSetup times one agent-to-agent 64 MiB copy with defaults (download, then upload)
// over the WAN link of BenchmarkWAN (100 ms RTT, 0.1% loss, 200 Mbit/s, CUBIC hosts), each
// FERRY_SETUP_RUNS times (default 2): the whole copy, and the time until its first data byte
// reached the receiver's disk (the fixed cost of grants, logins and commands before the data),
// beside one raw TCP copy with BBR over the same link (what the link and this machine carry).
// With FERRY_TIMELINE=dir it writes each run's FTP command timeline, as the serving agent
// logged it, to dir. Needs root. `go test -run '^$' -bench WANSetup -benchtime 1x ./internal/bench/wan/`
func BenchmarkWANSetup(b *testing.B) {
	bed := testbed.New(b)
	binDir := testbin.Dir(b)
	cli, srv := bed.Host("fs-cli"), bed.Host("fs-srv")
	link := bed.WANLink(cli, srv, testbed.WANOpts{RTT: 100 * time.Millisecond, LossPct: 0.1, RateMbit: 200})
	allowCubic(b)
	for _, h := range []*testbed.Host{cli, srv} {
		setCC(b, h, "cubic")
	}
	a := startAgent(b, cli, binDir, 0, "--log-level", "debug")
	s := startAgent(b, srv, binDir, 0, "--log-level", "debug")
	data := randomBytes(b, bigSize)
	must(b, os.WriteFile(filepath.Join(s.root, "big.bin"), data, 0o644))
	must(b, os.WriteFile(filepath.Join(a.root, "up.bin"), data, 0o644))
	runs := 2
	if v := os.Getenv("FERRY_SETUP_RUNS"); v != "" {
		fmt.Sscan(v, &runs)
	}
	b.ResetTimer()
	var lines []string
	for _, dir := range []string{"download", "upload"} {
		if !wanted(dir) {
			continue
		}
		sender, receiver, recvAddr := srv, cli, link.AddrA
		if dir == "upload" {
			sender, receiver, recvAddr = cli, srv, link.AddrC
		}
		raw := rawCopy(b, sender, receiver, recvAddr, "bbr", bigSize)
		line := fmt.Sprintf("%-8s raw TCP, one BBR socket (this link's ceiling here): %6.2fs  %5.1f MiB/s  %.0f%% of link",
			dir, raw.Seconds(), bigSize/raw.Seconds()/(1<<20), 100*bigSize/raw.Seconds()/(1<<20)/linkMiBs)
		fmt.Fprintln(os.Stderr, "bench-wan-setup:", line)
		lines = append(lines, line)
		raw8 := rawCopyN(b, sender, receiver, recvAddr, 8, bigSize)
		line = fmt.Sprintf("%-8s raw TCP, 8 BBR sockets, 8 MiB each:                  %6.2fs  %5.1f MiB/s  %.0f%% of link",
			dir, raw8.Seconds(), bigSize/raw8.Seconds()/(1<<20), 100*bigSize/raw8.Seconds()/(1<<20)/linkMiBs)
		fmt.Fprintln(os.Stderr, "bench-wan-setup:", line)
		lines = append(lines, line)
		for i := range runs {
			src, dst, watch := s.url("big.bin"), fmt.Sprintf("in%d/", i), filepath.Join(a.root, fmt.Sprintf("in%d", i))
			if dir == "upload" {
				src, dst, watch = "up.bin", s.url(fmt.Sprintf("up%d/", i)), filepath.Join(s.root, fmt.Sprintf("up%d", i))
			}
			mark, amark := len(s.proc.Output()), len(a.proc.Output())
			first := make(chan time.Duration, 1)
			stop := make(chan struct{})
			start := time.Now()
			fmt.Fprintf(os.Stderr, "bench-wan-setup: %s run %d starts at %s\n", dir, i, start.UTC().Format("15:04:05.000"))
			go firstByte(watch, start, stop, first)
			ctx, cancel := context.WithTimeout(context.Background(), runLimit)
			tr, err := a.copy(ctx, src, dst, 0)
			took := time.Since(start)
			cancel()
			close(stop)
			ttfb := <-first
			if err != nil {
				b.Fatalf("%s %d: %v", dir, i, err)
			}
			out := s.proc.Output()
			if mark > len(out) {
				mark = 0
			}
			firstCmd := firstData(out[mark:], start)
			line := fmt.Sprintf("%-8s run %d: %6.2fs  first RETR/STOR started %5.2fs  first block on disk %5.2fs  %5.1f MiB/s  %.0f%% of link  [%d streams]",
				dir, i, took.Seconds(), firstCmd.Seconds(), ttfb.Seconds(), bigSize/took.Seconds()/(1<<20),
				100*bigSize/took.Seconds()/(1<<20)/linkMiBs, tr.GetStreams())
			fmt.Fprintln(os.Stderr, "bench-wan-setup:", line)
			lines = append(lines, line)
			if d := os.Getenv("FERRY_TIMELINE"); d != "" {
				must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("%s-%d.log", dir, i)), []byte(out[mark:]), 0o644))
				if aout := a.proc.Output(); amark <= len(aout) {
					must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("%s-%d.client.log", dir, i)), []byte(aout[amark:]), 0o644))
				}
			}
		}
	}
	b.StopTimer()
	fmt.Printf("\n64 MiB agent to agent, defaults, 100 ms RTT, 0.1%% loss, 200 Mbit/s (CUBIC hosts)\n%s\n", strings.Join(lines, "\n"))
}

// firstByte sends the time from start until a file under dir first holds a data block on disk
// (part files are preallocated sparse, so their length says nothing), polling every 5 ms.
func firstByte(dir string, start time.Time, stop <-chan struct{}, out chan<- time.Duration) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			out <- time.Since(start)
			return
		case <-t.C:
		}
		found := false
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			var st syscall.Stat_t
			if syscall.Stat(p, &st) == nil && st.Blocks > 0 {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		if found {
			out <- time.Since(start)
			return
		}
	}
}

// firstData is the time from start until the serving agent's log (text format, debug level)
// shows the first "150" reply: the first RETR or STOR under way.
func firstData(log string, start time.Time) time.Duration {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `line="150 `) || !strings.HasPrefix(l, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t.Sub(start)
		}
	}
	return 0
}

// rawCopyN sends size bytes over n TCP connections at once (BBR on each sending socket, size/n
// each) from sender to receiver at addr, and returns the time until the receiver had them all.
func rawCopyN(b *testing.B, sender, receiver *testbed.Host, addr netip.Addr, n, size int) time.Duration {
	ln, err := receiver.Listen(context.Background(), "tcp", netip.AddrPortFrom(addr, 9101).String())
	must(b, err)
	defer ln.Close()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(io.Discard, c)
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	start := time.Now()
	for range n {
		go func() {
			c, err := sender.Dial(ctx, "tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			_ = setSockCC(c, "bbr")
			c.SetDeadline(time.Now().Add(runLimit))
			buf := make([]byte, 1<<20)
			for sent := 0; sent < size/n; sent += len(buf) {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
			c.(*net.TCPConn).CloseWrite()
		}()
	}
	wg.Wait()
	return time.Since(start)
}
