package render

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// LiveLine is the one-line progress display on a terminal: redrawn in place a few times a
// second ("\r", the line cut to the terminal's width, erase to the end of the line), so it never
// wraps, and erased when the transfer ends or the user interrupts, leaving nothing behind.
//
//	verifying  big.iso  100.0 MiB / 100.0 MiB  100%  0 B/s  elapsed 2.3s  files 0/1
type LiveLine struct {
	out   io.Writer
	width func() int
	now   func() time.Time

	mu      sync.Mutex
	t       *ferryv1.Transfer
	drawn   bool
	stopped bool
	quit    chan struct{}
	done    chan struct{}
}

// liveRefresh is how often the line is redrawn (elapsed time moves between snapshots).
const liveRefresh = 200 * time.Millisecond

func newLiveLine(out io.Writer, width func() int, now func() time.Time) *LiveLine {
	l := &LiveLine{out: out, width: width, now: now, quit: make(chan struct{}), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *LiveLine) loop() {
	defer close(l.done)
	tk := time.NewTicker(liveRefresh)
	defer tk.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tk.C:
			l.mu.Lock()
			l.drawLocked()
			l.mu.Unlock()
		}
	}
}

// Set shows snapshot t (drawn at once).
func (l *LiveLine) Set(t *ferryv1.Transfer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t = t
	l.drawLocked()
}

// Above prints a whole line above the live one (verbose output), then redraws it.
func (l *LiveLine) Above(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	w := max(l.width(), 20)
	io.WriteString(l.out, "\r\x1b[K"+Fit(line, w-1)+"\n")
	l.drawn = false
	l.drawLocked()
}

func (l *LiveLine) drawLocked() {
	if l.stopped || l.t == nil {
		return
	}
	w := max(l.width(), 20)
	io.WriteString(l.out, "\r"+StatusLine(l.t, l.now(), w-1)+"\x1b[K")
	l.drawn = true
}

// Stop erases the line and stops redrawing; safe to call twice.
func (l *LiveLine) Stop() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	if l.drawn {
		io.WriteString(l.out, "\r\x1b[K")
	}
	l.mu.Unlock()
	close(l.quit)
	<-l.done
}

// StatusLine is the live progress of t in at most width columns: state (or phase), the current
// file, bytes, percent, rate, elapsed time, ETA, files and the retry with its cause. What does
// not fit is dropped from the end, least useful first; the file name is shortened in the middle.
func StatusLine(t *ferryv1.Transfer, now time.Time, width int) string {
	p := t.GetProgress()
	state := StateName(t.GetState())
	if ph := p.GetPhase(); ph == "verifying" || ph == "listing" || ph == "deleting" {
		state = ph
	}
	elapsed := time.Duration(0)
	if s := t.GetStartedAt(); s != nil {
		elapsed = now.Sub(s.AsTime())
	}
	head := fmt.Sprintf("%-9s", state)
	type seg struct {
		text string
		keep int // lower is dropped later
	}
	segs := []seg{
		{Bytes(p.GetBytesDone()) + " / " + total(p), 1},
		{percent(p), 0},
		{Rate(p.GetBytesPerSecond()), 3},
		{"elapsed " + Duration(elapsed), 0},
		{"eta " + eta(p), 4},
	}
	if p.GetFilesTotal() > 1 || t.GetFilesSkipped() > 0 {
		segs = append(segs, seg{fmt.Sprintf("files %d/%d", p.GetFilesDone(), p.GetFilesTotal()), 2})
	}
	if t.GetAttempt() > 1 {
		r := fmt.Sprintf("retry %d", t.GetAttempt()-1)
		if c := UserNames(t.GetLastError()); c != "" {
			r += ": " + c
		}
		segs = append(segs, seg{r, 5})
	}
	file := UserNames(p.GetCurrentFile())
	build := func(drop int, fileW int) string {
		parts := []string{head}
		if file != "" && fileW > 0 {
			parts = append(parts, Fit(file, fileW))
		}
		for _, s := range segs {
			if s.keep < drop {
				parts = append(parts, s.text)
			}
		}
		return strings.Join(parts, "  ")
	}
	// Widest first: everything with the whole file name; else the name shortened (in the
	// middle) to the room left, down to 12 columns; else drop segments, least useful first.
	for drop := 6; drop >= 0; drop-- {
		line := build(drop, utf8.RuneCountInString(file))
		if utf8.RuneCountInString(line) <= width {
			return line
		}
		if file == "" {
			continue
		}
		room := width - utf8.RuneCountInString(build(drop, 0)) - 2
		if room >= 12 {
			return build(drop, room)
		}
	}
	return Fit(build(0, 12), width)
}

// Fit cuts s to at most width runes, marking a cut with "…" in the middle (names keep their
// beginning and their extension).
func Fit(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	if width <= 1 {
		return string(r[:max(width, 0)])
	}
	left := (width - 1) / 2
	right := width - 1 - left
	return string(r[:left]) + "…" + string(r[len(r)-right:])
}
