package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// maxHostLines bounds the per-host lines of the live view; the rest are counted.
const maxHostLines = 20

// fleetView renders a fleet job as it changes:
//   - text on a terminal (stderr): an overall bar and one line per host in flight or retrying;
//     hosts that are done fold away. Redrawn in place.
//   - text otherwise: one line on stderr per host event (started, retried, done, failed).
//   - JSON: {"event":"host","job_id":...,"host":{...}} on stdout per host change.
//
// finish prints the summary table and result line (or the JSON result) on stdout.
type fleetView struct {
	a     *app
	out   io.Writer // progress: stderr
	tty   bool
	drawn int
	start time.Time
}

func newFleetView(a *app) *fleetView {
	return &fleetView{a: a, out: a.stderr, tty: a.format == render.Text && a.stderrTTY, start: a.now()}
}

func hostKeyOf(h *ferryv1.FleetHost) string {
	return fmt.Sprintf("%d|%d|%s|%s|%s", h.GetState(), h.GetAttempt(), h.GetServedBy(), h.GetError(), h.GetTransferId())
}

// changedHosts are the hosts of j that differ from prev (all of them without prev).
func changedHosts(prev, j *ferryv1.FleetJob) []*ferryv1.FleetHost {
	old := map[string]string{}
	for _, h := range prev.GetHosts() {
		old[h.GetName()] = hostKeyOf(h)
	}
	var out []*ferryv1.FleetHost
	for _, h := range j.GetHosts() {
		if k, ok := old[h.GetName()]; !ok || k != hostKeyOf(h) {
			out = append(out, h)
		}
	}
	return out
}

func (v *fleetView) update(prev, j *ferryv1.FleetJob) error {
	switch {
	case v.a.format == render.JSON:
		for _, h := range changedHosts(prev, j) {
			if err := writeEvent(v.a.stdout, map[string]any{"event": "host", "job_id": j.GetId()}, "host", h); err != nil {
				return err
			}
		}
		return nil
	case v.tty:
		v.draw(j)
		return nil
	}
	for _, h := range changedHosts(prev, j) {
		if prev == nil && h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING && h.GetAttempt() == 0 {
			continue // the first snapshot: only what already happened
		}
		fmt.Fprintf(v.out, "%s %s\n", h.GetName(), hostEvent(h))
	}
	return nil
}

// hostEvent is one host's state in words.
func hostEvent(h *ferryv1.FleetHost) string {
	from := ""
	if h.GetServedBy() != "" && h.GetRunner() == h.GetName() {
		from = " from " + h.GetServedBy()
	}
	switch h.GetState() {
	case ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING:
		s := fmt.Sprintf("running (attempt %d%s)", h.GetAttempt(), from)
		if h.GetError() != "" && h.GetAttempt() > 1 {
			s += "; last error: " + render.OneLine(h.GetError())
		}
		return s
	case ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING:
		if h.GetError() != "" {
			return fmt.Sprintf("waits to retry (attempt %d failed: %s)", h.GetAttempt(), render.OneLine(h.GetError()))
		}
		return "pending"
	case ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED:
		s := fmt.Sprintf("succeeded%s: %s in %s", from, render.Bytes(h.GetBytesTotal()), hostDuration(h))
		if h.GetError() != "" {
			s += " (" + render.OneLine(h.GetError()) + ")"
		}
		return s
	case ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED:
		return fmt.Sprintf("FAILED after %d attempt(s): %s", h.GetAttempt(), render.OneLine(h.GetError()))
	case ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED:
		return "skipped: " + render.OneLine(h.GetError())
	}
	return hostStateName(h.GetState())
}

func hostDuration(h *ferryv1.FleetHost) string {
	if h.GetStartedAt() == nil || h.GetFinishedAt() == nil {
		return "-"
	}
	return render.Duration(h.GetFinishedAt().AsTime().Sub(h.GetStartedAt().AsTime()))
}

// draw repaints the live view in place.
func (v *fleetView) draw(j *ferryv1.FleetJob) {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", v.drawn)
	}
	total, done := int(j.GetHostsTotal()), int(j.GetHostsSucceeded()+j.GetHostsFailed())
	var bytesDone, bytesTotal int64
	for _, h := range j.GetHosts() {
		bytesDone += h.GetBytesDone()
		bytesTotal += max(h.GetBytesTotal(), h.GetBytesDone())
	}
	const width = 30
	fill := 0
	if total > 0 {
		fill = width * done / total
	}
	lines := 1
	fmt.Fprintf(&b, "[%s%s] %d/%d hosts  ok %d  failed %d  running %d  %s  %s\n", strings.Repeat("=", fill),
		strings.Repeat(" ", width-fill), done, total, j.GetHostsSucceeded(), j.GetHostsFailed(), j.GetHostsRunning(),
		render.Bytes(bytesDone), render.Duration(v.a.now().Sub(v.start)))
	shown, more := 0, 0
	for _, h := range j.GetHosts() {
		busy := h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING ||
			(h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_PENDING && h.GetAttempt() > 0) ||
			h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED
		if !busy {
			continue
		}
		if shown == maxHostLines {
			more++
			continue
		}
		shown++
		pct := ""
		if h.GetBytesTotal() > 0 && h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING {
			pct = fmt.Sprintf(" %3.0f%%", 100*float64(h.GetBytesDone())/float64(h.GetBytesTotal()))
		}
		line := fmt.Sprintf("  %-16s%s %s", h.GetName(), pct, hostEvent(h))
		if len(line) > 160 {
			line = line[:157] + "..."
		}
		b.WriteString(line + "\n")
		lines++
	}
	if more > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", more)
		lines++
	}
	v.drawn = lines
	io.WriteString(v.out, b.String())
}

// clear erases the live view.
func (v *fleetView) clear() {
	if v.tty && v.drawn > 0 {
		fmt.Fprintf(v.out, "\x1b[%dA\x1b[J", v.drawn)
		v.drawn = 0
	}
}

// finish prints the end of a job: the table of hosts and the result line (text) or the result
// event (JSON); a job that did not succeed is an exit error naming the failed hosts.
func (v *fleetView) finish(j *ferryv1.FleetJob, asJSON bool) error {
	var failed []string
	for _, h := range j.GetHosts() {
		if h.GetState() == ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED {
			failed = append(failed, h.GetName())
		}
	}
	ok := j.GetState() == ferryv1.FleetJobState_FLEET_JOB_STATE_SUCCEEDED
	running := j.GetState() == ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING
	if asJSON {
		head := map[string]any{"event": "result", "ok": ok}
		if !ok && !running {
			head["error"] = j.GetError()
			head["failed_hosts"] = failed
		}
		if err := writeEvent(v.a.stdout, head, "job", j); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(v.a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tSTATE\tATTEMPTS\tFROM\tBYTES\tTIME\tNOTE")
		for _, h := range j.GetHosts() {
			from := h.GetServedBy()
			if h.GetRunner() != h.GetName() && h.GetRunner() != "" {
				from = "-> " + h.GetRunner()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", h.GetName(), hostStateName(h.GetState()), h.GetAttempt(),
				orDash(from), render.Bytes(h.GetBytesDone()), hostDuration(h), orDash(render.OneLine(h.GetError())))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		elapsed := "-"
		if j.GetFinishedAt() != nil {
			elapsed = render.Duration(j.GetFinishedAt().AsTime().Sub(j.GetCreatedAt().AsTime()))
		}
		switch {
		case ok:
			extra := ""
			if j.GetKind() == ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY {
				extra = fmt.Sprintf("; the source served %d deliveries (%s)", j.GetSourceCopies(),
					strings.ToLower(strings.TrimPrefix(j.GetStrategy().String(), "FLEET_STRATEGY_")))
				if j.GetSha256() != "" {
					extra += " sha256=" + j.GetSha256()
				}
			}
			fmt.Fprintf(v.a.stdout, "succeeded: %d hosts in %s%s\n", j.GetHostsTotal(), elapsed, extra)
		case running:
			fmt.Fprintf(v.a.stdout, "running: %d of %d hosts done\n", j.GetHostsSucceeded()+j.GetHostsFailed(), j.GetHostsTotal())
		default:
			fmt.Fprintf(v.a.stdout, "%s: %s\n", fleetStateName(j.GetState()), j.GetError())
		}
	}
	if ok || running {
		return nil
	}
	msg := fmt.Sprintf("fleet job %s %s: %s", j.GetId(), fleetStateName(j.GetState()), j.GetError())
	if len(failed) > 0 && !strings.Contains(j.GetError(), failed[0]) {
		msg += "; failed hosts: " + strings.Join(failed, ", ")
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("%s", msg)}
}

// writeEvent writes head with m (protojson) under key, as one JSON line.
func writeEvent(w io.Writer, head map[string]any, key string, m proto.Message) error {
	b, err := render.MarshalJSON(m)
	if err != nil {
		return err
	}
	head[key] = json.RawMessage(b)
	line, err := json.Marshal(head)
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	return err
}
