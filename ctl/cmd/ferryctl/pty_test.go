//go:build unix

package main

// The live progress display in a real terminal (a pty of 60 and of 120 columns): one line,
// cut to the width, with the file name, the elapsed time and the verifying phase, and nothing
// left behind after Ctrl-C.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/ferry-dev/ferry/internal/testagent"
)

// screen replays what a terminal shows for out: \r, \n, erase-to-end-of-line (ESC [ K) and
// printable runes overwriting at the cursor. It returns the lines, the last one being the
// cursor's.
func screen(out string) []string {
	lines := [][]rune{nil}
	col := 0
	for i := 0; i < len(out); {
		if strings.HasPrefix(out[i:], "\x1b[K") {
			cur := lines[len(lines)-1]
			if col < len(cur) {
				lines[len(lines)-1] = cur[:col]
			}
			i += 3
			continue
		}
		r, n := utf8.DecodeRuneInString(out[i:])
		i += n
		switch r {
		case '\r':
			col = 0
		case '\n':
			lines = append(lines, nil)
			col = 0
		default:
			cur := lines[len(lines)-1]
			for len(cur) < col {
				cur = append(cur, ' ')
			}
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			lines[len(lines)-1] = cur
			col++
		}
	}
	out2 := make([]string, len(lines))
	for i, l := range lines {
		out2[i] = string(l)
	}
	return out2
}

// frames are the progress lines drawn: the text between carriage returns, minus erasures.
func frames(out string) []string {
	var fs []string
	for _, f := range strings.Split(out, "\r") {
		f = strings.ReplaceAll(f, "\x1b[K", "")
		if strings.TrimSpace(f) != "" {
			fs = append(fs, f)
		}
	}
	return fs
}

type ptyRun struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *ptyRun) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *ptyRun) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startPty runs ferryctl on a pty of cols columns (stdin, stdout and stderr), with a minute
// at most.
func startPty(t *testing.T, cols uint16, args ...string) (*exec.Cmd, *os.File, *ptyRun, chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, ferryctlBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_AGENT=", "FERRY_TOKEN="+testagent.AdminToken, "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	rec := &ptyRun{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(rec, f) // ends with EIO once the process has exited
	}()
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
		done <- err
	}()
	return cmd, f, rec, done
}

func TestProgressDisplayPty(t *testing.T) {
	a, b := newPair(t)
	// A large sparse file: it moves quickly yet takes the server a moment to hash.
	const size = 96 << 20
	f, err := os.Create(filepath.Join(b.Root, "big-archive-2026.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, cols := range []uint16{60, 120} {
		t.Run(fmt.Sprintf("%dcols", cols), func(t *testing.T) {
			dst := "in/" + string(rune('a'+cols%26)) + ".bin"
			_, _, rec, done := startPty(t, cols, "--agent", a.GRPC, "copy", b.URL("big-archive-2026.bin"), dst, "--mode", "passive")
			if err := <-done; err != nil {
				t.Fatalf("copy: %v\n%q", err, rec.String())
			}
			out := rec.String()
			fs := frames(out)
			var running, verifying string
			for _, fr := range fs {
				if strings.HasPrefix(fr, "succeeded:") {
					continue
				}
				if n := utf8.RuneCountInString(strings.TrimRight(fr, "\n")); n >= int(cols) {
					t.Errorf("a progress line of %d columns on a %d-column terminal: %q", n, cols, fr)
				}
				if strings.Contains(fr, "\n") && !strings.HasPrefix(strings.TrimLeft(fr, "\n"), "succeeded") {
					t.Errorf("a progress line holds a line break: %q", fr)
				}
				switch {
				case strings.HasPrefix(fr, "running") && strings.Contains(fr, "elapsed"):
					running = fr
				case strings.HasPrefix(fr, "verifying"):
					verifying = fr
				}
			}
			if running == "" || !strings.Contains(running, "big-") {
				t.Errorf("no running frame with the file name and elapsed time; frames %q", fs)
			}
			if verifying == "" {
				t.Errorf("the verifying phase never showed; frames %q", fs)
			}
			scr := screen(out)
			// What stays on the screen: the result line, then the empty cursor line.
			var shown []string
			for _, l := range scr {
				if strings.TrimSpace(l) != "" {
					shown = append(shown, l)
				}
			}
			if len(shown) != 1 || !strings.HasPrefix(shown[0], "succeeded: 96.0 MiB") {
				t.Errorf("screen after the copy: %q, want the result line alone", shown)
			}
			t.Logf("capture at %d columns:\n%s\n%s\n%s", cols, running, verifying, shown)
		})
	}
}

func TestProgressCtrlCPty(t *testing.T) {
	a, b := newPair(t)
	slowSource(t, b.Root, "slow.bin")
	for _, cols := range []uint16{60, 120} {
		cmd, f, rec, done := startPty(t, cols, "--agent", a.GRPC, "copy", b.URL("slow.bin"), "slow.bin", "--mode", "passive")
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(rec.String(), "elapsed") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(rec.String(), "elapsed") {
			t.Fatalf("no progress line within 20s: %q", rec.String())
		}
		// Ctrl-C as a user types it: the terminal sends SIGINT and echoes ^C.
		if _, err := f.Write([]byte{3}); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
			t.Fatalf("exit %v, want %d; output %q", err, exitInterrupted, rec.String())
		}
		_ = cmd
		var shown []string
		for _, l := range screen(rec.String()) {
			if strings.TrimSpace(l) != "" {
				shown = append(shown, l)
			}
		}
		if len(shown) != 1 || !strings.HasPrefix(shown[0], "ferryctl: interrupted") {
			t.Errorf("%d columns: screen after Ctrl-C %q, want the one interrupted line and no leftovers", cols, shown)
		}
		t.Logf("%d columns, screen after Ctrl-C: %q", cols, shown)
	}
}

// On a narrow terminal the ls table and the success result line fit its width (issue 17);
// the result line keeps the start of the checksum.
func TestOutputFitsTerminalPty(t *testing.T) {
	a, b := newPair(t)
	long := "holiday-photos-2026-summer-trip-to-the-mountains-final-edit.tar.gz"
	sum := writeFile(t, b.Root, long, 300<<10)
	writeFile(t, a.Root, "listing/"+long, 1000)
	writeFile(t, a.Root, "listing/a.txt", 10)
	shownLines := func(out string) []string {
		var shown []string
		for _, l := range screen(out) {
			if l = strings.TrimRight(l, " "); l != "" {
				shown = append(shown, l)
			}
		}
		return shown
	}
	for _, cols := range []uint16{40, 60} {
		_, _, rec, done := startPty(t, cols, "--agent", a.GRPC, "ls", "listing/")
		if err := <-done; err != nil {
			t.Fatalf("ls: %v\n%q", err, rec.String())
		}
		shown := shownLines(rec.String())
		if len(shown) != 3 || !strings.HasPrefix(shown[0], "NAME") || !strings.HasPrefix(shown[2], "holiday") ||
			!strings.Contains(shown[2], "…") {
			t.Errorf("%d columns: ls shows %q, want the header and two rows, the long name shortened", cols, shown)
		}
		for _, l := range shown {
			if n := utf8.RuneCountInString(l); n >= int(cols) {
				t.Errorf("%d columns: an ls row of %d columns: %q", cols, n, l)
			}
		}

		dst := fmt.Sprintf("in/%d.tar.gz", cols)
		_, _, rec, done = startPty(t, cols, "--agent", a.GRPC, "copy", b.URL(long), dst, "--mode", "passive")
		if err := <-done; err != nil {
			t.Fatalf("copy: %v\n%q", err, rec.String())
		}
		shown = shownLines(rec.String())
		if len(shown) != 1 || !strings.HasPrefix(shown[0], "succeeded: 300.0 KiB") {
			t.Fatalf("%d columns: screen after the copy %q, want the result line alone", cols, shown)
		}
		if n := utf8.RuneCountInString(shown[0]); n >= int(cols) {
			t.Errorf("%d columns: result line of %d columns: %q", cols, n, shown[0])
		}
		if cols == 60 && !strings.Contains(shown[0], "sha256="+sum[:8]) {
			t.Errorf("%d columns: result line %q lacks the checksum's start %s", cols, shown[0], sum[:8])
		}
		t.Logf("%d columns: %q", cols, shown[0])
	}
	// Not a terminal: the whole line, as scripts expect.
	r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL(long), "in/pipe.tar.gz", "--mode", "passive")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "mode=passive sha256="+sum+"\n") {
		t.Errorf("piped result line is not whole: %q", r.stdout)
	}
}
