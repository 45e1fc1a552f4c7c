package testbed

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a long-running process started by Host.Start (or by WAN). Its stdout and stderr go to
// one buffer (the last MiB is kept), shown in the test log if the test fails.
type Proc struct {
	Cmd *exec.Cmd

	label string
	out   outBuffer
	done  chan struct{}
	err   error // exit status, set before done is closed
}

// Start starts a long-running command inside the host ("ip netns exec") in a process group of
// its own. The group is stopped (SIGTERM, SIGKILL after 2 s) by t's cleanup and by the bed's,
// whichever runs first; if t failed, the output is logged.
func (h *Host) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	argv := append([]string{"netns", "exec", h.NS, name}, args...)
	return h.bed.start(t, h.Name+": "+name, "ip", argv...)
}

func (b *Bed) start(t testing.TB, label, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{label: label, done: make(chan struct{})}
	p.Cmd = command(context.Background(), name, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = &p.out, &p.out

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		t.Fatalf("testbed: start %s: bed already cleaned up", label)
	}
	if err := p.Cmd.Start(); err != nil {
		b.mu.Unlock()
		t.Fatalf("testbed: start %s: %v", label, err)
	}
	b.procs = append(b.procs, p)
	b.mu.Unlock()

	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", p, p.Output())
		}
	})
	return p
}

func (p *Proc) String() string { return fmt.Sprintf("%s (pid %d)", p.label, p.Pid()) }

// Pid is the process id (and process group id) of the command.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Output returns what the process wrote so far to stdout and stderr.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the process's exit error once Done is closed (nil for a clean exit or before).
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// WaitOutput waits until the output contains s. It fails if the process exits first or ctx ends;
// a ctx without deadline gets one of 30 s.
func (p *Proc) WaitOutput(ctx context.Context, s string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmdTimeout)
		defer cancel()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), s) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p, p.err, s, tail(p.Output(), 4000))
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %q: %w; output:\n%s", p, s, ctx.Err(), tail(p.Output(), 4000))
		case <-tick.C:
		}
	}
}

// Stop stops the process group: SIGTERM, then SIGKILL after 2 s. It returns once the process has
// been reaped (or after 5 more seconds). Safe to call more than once and from any goroutine.
func (p *Proc) Stop() error {
	pgid := p.Pid()
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%s: still running after SIGKILL", p)
		}
	}
	// Whatever of the group survived its leader (a daemon's children) goes too.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// outBuffer is a concurrency-safe buffer that keeps the last maxOutput bytes.
type outBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const maxOutput = 1 << 20

func (b *outBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > maxOutput {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-maxOutput:]...)
	}
	return len(p), nil
}

func (b *outBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
