package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// PlainInterval is the least time between two plain progress lines of the same state.
const PlainInterval = time.Second

// Watcher renders the snapshots of one transfer as they arrive, then its result.
//
//   - Text on a terminal: a live progress bar on the progress writer, then the result line.
//   - Text otherwise: plain lines, at most one per PlainInterval plus one per state change,
//     then the result line.
//   - JSON: {"event":"update","transfer":{...}} per snapshot, then
//     {"event":"result","ok":...,"transfer":{...},"error":"..."}.
//
// A Watcher is used from one goroutine.
type Watcher struct {
	w        io.Writer
	barOut   io.Writer
	format   Format
	tty      bool
	now      func() time.Time
	err      error // first write error
	last     *ferryv1.Transfer
	printed  bool
	lastLine time.Time
	live     *LiveLine
	width    func() int // terminal columns (the live line is cut to them)
	verbose  bool       // -v: mode story, per-file and retry lines
	quiet    bool       // -q: text output only for errors
	finished bool
	// resultWidth: the columns the result line must fit (0: no limit; stdout is no terminal).
	resultWidth func() int
	// failAsError: a text result that is no success is not written; the caller reports the
	// returned FinalError as its one error line on stderr.
	failAsError bool
}

// WithFailureAsError leaves a failed or cancelled transfer's text result to the caller, who
// prints it as an error ("ferryctl: failed: <cause>" on stderr) instead of on stdout.
func WithFailureAsError() WatcherOption {
	return func(wt *Watcher) { wt.failAsError = true }
}

// WatcherOption adjusts a Watcher.
type WatcherOption func(*Watcher)

// WithProgressOutput sends the live bar (text on a terminal) to w instead of the main writer;
// the result line still goes to the main writer.
func WithProgressOutput(w io.Writer) WatcherOption {
	return func(wt *Watcher) { wt.barOut = w }
}

// WithClock replaces time.Now, for tests of the plain-line rate limit.
func WithClock(now func() time.Time) WatcherOption {
	return func(wt *Watcher) { wt.now = now }
}

// WithWidth gives the terminal's width in columns (asked again at each redraw: a resized
// terminal is followed).
func WithWidth(width func() int) WatcherOption {
	return func(wt *Watcher) { wt.width = width }
}

// WithResultWidth gives the width in columns the success result line must fit when the main
// writer is a terminal (0: it is not; the line stays whole for scripts). See ResultLineWidth.
func WithResultWidth(width func() int) WatcherOption {
	return func(wt *Watcher) { wt.resultWidth = width }
}

// WithVerbosity sets -q (text: nothing but errors) and -v (the mode story, a line per file and
// per retry).
func WithVerbosity(quiet, verbose bool) WatcherOption {
	return func(wt *Watcher) { wt.quiet, wt.verbose = quiet, verbose && !quiet }
}

// NewWatcher returns a Watcher writing to w. tty selects the live bar for the Text format.
func NewWatcher(w io.Writer, format Format, tty bool, opts ...WatcherOption) *Watcher {
	wt := &Watcher{w: w, barOut: w, format: format, tty: tty, now: time.Now}
	for _, o := range opts {
		o(wt)
	}
	return wt
}

// Update renders one non-final snapshot.
func (wt *Watcher) Update(t *ferryv1.Transfer) {
	if t == nil || wt.finished {
		return
	}
	defer func() { wt.last = t }()
	switch {
	case wt.format == JSON:
		wt.writeEvent(jsonEvent{Event: "update"}, t)
	case wt.quiet:
	case wt.tty:
		wt.updateBar(t)
	default:
		now := wt.now()
		if wt.verbose {
			for _, l := range wt.verboseLines(t) {
				wt.writeTo(wt.barOut, l+"\n")
			}
		}
		if wt.printed && t.GetState() == wt.last.GetState() && now.Sub(wt.lastLine) < PlainInterval {
			return
		}
		wt.printed, wt.lastLine = true, now
		wt.write(ProgressLine(t) + "\n")
	}
}

// Finish renders the final snapshot. It returns a *FinalError when the transfer did not
// succeed (its result line is already written), or the first write error.
func (wt *Watcher) Finish(t *ferryv1.Transfer) error {
	if wt.finished {
		return wt.err
	}
	wt.finished = true
	ok := t.GetState() == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	wt.stopBar(t, ok)
	if wt.verbose && wt.format == Text {
		// The mode story (and a last retry) if no snapshot on the way told it.
		for _, l := range wt.verboseLines(t) {
			wt.writeTo(wt.barOut, l+"\n")
		}
	}
	if wt.format == JSON {
		wt.writeEvent(jsonEvent{Event: "result", OK: &ok, Error: new(oneLineCause(t, ok))}, t)
	} else if ok && wt.quiet {
		// -q: a success prints nothing.
	} else if !ok && wt.failAsError {
		// A failure is an error: the caller prints the one stderr line (FinalError's text),
		// nothing goes to stdout.
	} else {
		if ok && t.GetOptions().GetDryRun() {
			for _, a := range t.GetPlanned() {
				wt.write(PlanLine(a) + "\n")
			}
		}
		width := 0
		if wt.resultWidth != nil {
			width = wt.resultWidth()
		}
		wt.write(ResultLineWidth(t, wt.now(), width) + "\n")
	}
	if wt.err != nil {
		return wt.err
	}
	if !ok {
		return &FinalError{Transfer: t}
	}
	return nil
}

// Fail ends the rendering when no final snapshot could be had (the stream broke, or the user
// interrupted). JSON gets a result event with ok false, the last snapshot seen and cause; text
// only stops the bar, the caller reports cause.
func (wt *Watcher) Fail(cause error) {
	if wt.finished {
		return
	}
	wt.finished = true
	wt.stopBar(nil, false)
	if wt.format == JSON {
		msg := ""
		if cause != nil {
			msg = OneLine(cause.Error())
		}
		wt.writeEvent(jsonEvent{Event: "result", OK: new(false), Error: &msg}, wt.last)
	}
}

// Last is the last snapshot given to Update, or nil.
func (wt *Watcher) Last() *ferryv1.Transfer { return wt.last }

// FinalError is a transfer that ended FAILED or CANCELLED.
type FinalError struct{ Transfer *ferryv1.Transfer }

func (e *FinalError) Error() string {
	return StateName(e.Transfer.GetState()) + ": " + oneLineCause(e.Transfer, false)
}

type jsonEvent struct {
	Event    string          `json:"event"`
	OK       *bool           `json:"ok,omitempty"`
	Transfer json.RawMessage `json:"transfer"`
	Error    *string         `json:"error,omitempty"`
}

func (wt *Watcher) writeEvent(ev jsonEvent, t *ferryv1.Transfer) {
	ev.Transfer = json.RawMessage("null")
	if t != nil {
		raw, err := MarshalJSON(t)
		if err != nil {
			wt.setErr(err)
			return
		}
		ev.Transfer = raw
	}
	b, err := json.Marshal(ev)
	if err != nil {
		wt.setErr(err)
		return
	}
	wt.write(string(b) + "\n")
}

func (wt *Watcher) write(s string) {
	if wt.err != nil {
		return
	}
	if _, err := io.WriteString(wt.w, s); err != nil {
		wt.setErr(err)
	}
}

func (wt *Watcher) writeTo(w io.Writer, s string) {
	if wt.err != nil {
		return
	}
	if _, err := io.WriteString(w, s); err != nil {
		wt.setErr(err)
	}
}

func (wt *Watcher) setErr(err error) {
	if wt.err == nil {
		wt.err = err
	}
}

// ProgressLine is the plain progress line of a snapshot:
// "running  52.4 MiB / 100.0 MiB  52%  48.1 MiB/s  eta 1s  files 0/1".
func ProgressLine(t *ferryv1.Transfer) string {
	p := t.GetProgress()
	line := fmt.Sprintf("%s  %s / %s  %s  %s  eta %s  files %d/%d",
		StateName(t.GetState()), Bytes(p.GetBytesDone()), total(p), percent(p),
		Rate(p.GetBytesPerSecond()), eta(p), p.GetFilesDone(), p.GetFilesTotal())
	if t.GetAttempt() > 1 || t.GetLastError() != "" {
		line += fmt.Sprintf("  attempt %d", max(t.GetAttempt(), 1))
		if t.GetLastError() != "" {
			line += " (last error: " + t.GetLastError() + ")"
		}
	}
	return line
}

// ResultLine is the one line that ends a watched transfer:
// "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=<hex>",
// "failed: <cause>" or "cancelled: <cause>". now stands in for a missing finish time.
func ResultLine(t *ferryv1.Transfer, now time.Time) string {
	return ResultLineWidth(t, now, 0)
}

// ResultLineWidth is ResultLine for a terminal of width columns (0: no limit, as for a pipe,
// whose line scripts parse): a success line longer than width-1 columns is shortened step by
// step until it fits: sha256 to its first 16 hex digits and "…"; then without mode=, attempts=
// and resumed=; then without the rate; then sha256 to 8 hex digits and the verify note to
// ", not verified"; then without sha256; then without the elapsed time; at last cut at the end
// with "…". Failure and dry-run lines are left whole.
func ResultLineWidth(t *ferryv1.Transfer, now time.Time, width int) string {
	if t.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		return StateName(t.GetState()) + ": " + oneLineCause(t, false)
	}
	if t.GetOptions().GetDryRun() {
		return DryRunLine(t)
	}
	const last = 6
	for level := 0; ; level++ {
		line := successLine(t, now, level)
		if width <= 0 || utf8.RuneCountInString(line) <= width-1 {
			return line
		}
		if level == last {
			r := []rune(line)
			return string(r[:max(width-2, 0)]) + "…"
		}
	}
}

// successLine is the success result line at shortening level 0 (whole) to 6 (see
// ResultLineWidth).
func successLine(t *ferryv1.Transfer, now time.Time, level int) string {
	p := t.GetProgress()
	var start, end time.Time
	switch {
	case t.GetStartedAt() != nil:
		start = t.GetStartedAt().AsTime()
	case t.GetCreatedAt() != nil:
		start = t.GetCreatedAt().AsTime()
	default:
		start = now
	}
	end = now
	if t.GetFinishedAt() != nil {
		end = t.GetFinishedAt().AsTime()
	}
	elapsed := max(end.Sub(start), 0)
	rate := float64(p.GetBytesDone()) / max(elapsed.Seconds(), 0.001)
	var b strings.Builder
	fmt.Fprintf(&b, "succeeded: %s", Bytes(p.GetBytesDone()))
	if level < 6 {
		fmt.Fprintf(&b, " in %s", Duration(elapsed))
	}
	if level < 3 {
		fmt.Fprintf(&b, " (%s)", Rate(rate))
	}
	if level < 2 {
		fmt.Fprintf(&b, " mode=%s", usedMode(t))
	}
	if p.GetFilesTotal() > 1 || t.GetFilesSkipped() > 0 || t.GetFilesDeleted() > 0 {
		fmt.Fprintf(&b, " files=%d", p.GetFilesDone())
	}
	if n := t.GetFilesSkipped(); n > 0 {
		fmt.Fprintf(&b, " skipped=%d", n)
	}
	if n := t.GetFilesDeleted(); n > 0 {
		fmt.Fprintf(&b, " deleted=%d", n)
	}
	if sum := t.GetSha256(); sum != "" && level < 5 {
		switch {
		case level >= 4:
			sum = shortHex(sum, 8)
		case level >= 1:
			sum = shortHex(sum, 16)
		}
		fmt.Fprintf(&b, " sha256=%s", sum)
	}
	if t.GetAttempt() > 1 && level < 2 {
		fmt.Fprintf(&b, " attempts=%d", t.GetAttempt())
	}
	if r := t.GetBytesResumed(); r > 0 && level < 2 {
		fmt.Fprintf(&b, " resumed=%s", Bytes(r))
	}
	if n := t.GetVerifyNote(); n != "" {
		if level >= 4 {
			// "not verified (server has no HASH)" keeps its first words: the honest part.
			if i := strings.Index(n, " ("); i > 0 {
				n = n[:i]
			}
		}
		b.WriteString(", " + n)
	}
	return b.String()
}

// shortHex is the first n digits of a checksum and "…" (the whole checksum when not longer).
func shortHex(sum string, n int) string {
	if len(sum) <= n {
		return sum
	}
	return sum[:n] + "…"
}

// PlanLine is one planned action of a dry run: "copy    photos/a.jpg  1.0 MiB  (new)".
func PlanLine(a *ferryv1.PlannedAction) string {
	return fmt.Sprintf("%-6s  %s  %s  (%s)", a.GetAction(), a.GetPath(), Bytes(a.GetSize()), a.GetReason())
}

// DryRunLine ends a dry run: "dry run: 3 to copy (2.0 MiB), 40 to skip, 1 to delete; nothing changed".
func DryRunLine(t *ferryv1.Transfer) string {
	var copies int64
	var size int64
	for _, a := range t.GetPlanned() {
		if a.GetAction() == "copy" {
			copies++
			size += a.GetSize()
		}
	}
	line := fmt.Sprintf("dry run: %d to copy (%s), %d to skip, %d to delete; nothing changed",
		copies, Bytes(size), t.GetFilesSkipped(), t.GetFilesDeleted())
	if n := t.GetPlannedOmitted(); n > 0 {
		line += fmt.Sprintf(" (%d more actions not listed; counts cover the listed ones)", n)
	}
	return line
}

// usedMode is the data-connection mode used, or the one asked for when not yet known.
func usedMode(t *ferryv1.Transfer) string {
	if t.GetMode() != ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED {
		return ModeName(t.GetMode())
	}
	if t.GetRequestedMode() != ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED {
		return ModeName(t.GetRequestedMode())
	}
	return "auto"
}

func oneLineCause(t *ferryv1.Transfer, ok bool) string {
	if ok {
		return ""
	}
	if c := UserNames(OneLine(t.GetError())); c != "" {
		return c
	}
	return "no cause given by the agent"
}

func total(p *ferryv1.Progress) string {
	if p.GetBytesTotal() <= 0 && p.GetFilesTotal() == 0 {
		return "?"
	}
	return Bytes(p.GetBytesTotal())
}

func percent(p *ferryv1.Progress) string {
	if p.GetBytesTotal() <= 0 {
		return "--%"
	}
	return fmt.Sprintf("%d%%", min(p.GetBytesDone()*100/p.GetBytesTotal(), 100))
}

func eta(p *ferryv1.Progress) string {
	if p.GetEta() == nil {
		return "?"
	}
	return ETA(p.GetEta().AsDuration())
}

// The live line (a terminal): LiveLine redraws it; the Watcher hands it snapshots.

func (wt *Watcher) updateBar(t *ferryv1.Transfer) {
	if wt.live == nil {
		width := wt.width
		if width == nil {
			width = func() int { return 80 }
		}
		wt.live = newLiveLine(wt.barOut, width, wt.now)
	}
	if wt.verbose {
		for _, l := range wt.verboseLines(t) {
			wt.live.Above(l)
		}
	}
	wt.live.Set(t)
}

func (wt *Watcher) stopBar(*ferryv1.Transfer, bool) {
	if wt.live != nil {
		wt.live.Stop()
	}
}

// verboseLines are -v's lines for snapshot t: the mode story when it changes, a line per file
// as it starts, and each retry with its cause.
func (wt *Watcher) verboseLines(t *ferryv1.Transfer) []string {
	var out []string
	last := wt.last
	if r := t.GetModeReason(); r != "" && r != last.GetModeReason() {
		out = append(out, "mode: "+ModeName(t.GetMode())+" ("+r+")")
	}
	if f := t.GetProgress().GetCurrentFile(); f != "" && f != last.GetProgress().GetCurrentFile() {
		out = append(out, "file: "+UserNames(f))
	}
	if t.GetAttempt() > 1 && t.GetAttempt() != last.GetAttempt() {
		out = append(out, fmt.Sprintf("retry %d: %s", t.GetAttempt()-1, UserNames(t.GetLastError())))
	}
	return out
}
