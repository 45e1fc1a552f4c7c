package render

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// TransfersTable writes ID, STATE, MODE, PROGRESS, SOURCE → DEST and AGE, one transfer a row.
func TransfersTable(w io.Writer, ts []*ferryv1.Transfer, now time.Time) error {
	return TransfersTableWidth(w, ts, now, 0)
}

// TransfersTableWidth is TransfersTable with rows of at most width columns (a terminal's): the
// SOURCE → DEST cell is shortened in the middle to the room the other columns leave. 0: no limit.
func TransfersTableWidth(w io.Writer, ts []*ferryv1.Transfer, now time.Time, width int) error {
	const gap = 2
	rows := make([][6]string, 0, len(ts)+1)
	rows = append(rows, [6]string{"ID", "STATE", "MODE", "PROGRESS", "SOURCE → DEST", "AGE"})
	for _, t := range ts {
		rows = append(rows, [6]string{cell(t.GetId()), StateName(t.GetState()), usedMode(t), progressCell(t.GetProgress()),
			cell(t.GetSource()) + " → " + cell(t.GetDestination()), age(t.GetCreatedAt(), now)})
	}
	var widths [6]int
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	if width > 0 {
		others := 5 * gap
		for i, wd := range widths {
			if i != 4 {
				others += wd
			}
		}
		room := max(width-1-others, 20)
		if widths[4] > room {
			for i := range rows {
				rows[i][4] = Fit(rows[i][4], room)
			}
		}
	}
	tw := newTable(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r[:], "\t"))
	}
	return tw.Flush()
}

func progressCell(p *ferryv1.Progress) string {
	s := Bytes(p.GetBytesDone()) + "/" + total(p) + " " + percent(p)
	if p.GetFilesTotal() > 1 {
		s += fmt.Sprintf(" files %d/%d", p.GetFilesDone(), p.GetFilesTotal())
	}
	return s
}

// FilesTable writes NAME, SIZE and MODIFIED; directories get a trailing "/".
func FilesTable(w io.Writer, entries []*ferryv1.FileEntry) error {
	return FilesTableWidth(w, entries, 0)
}

// FilesTableWidth is FilesTable with rows of at most width columns (a terminal's; 0: no
// limit): when the rows are wider, MODIFIED keeps only the date if the names would otherwise
// get fewer than 16 columns, and NAME is shortened in the middle to the room left (8 columns at
// least).
func FilesTableWidth(w io.Writer, entries []*ferryv1.FileEntry, width int) error {
	const gap, minName, dateOnly = 2, 8, 16
	rows := make([][3]string, 0, len(entries)+1)
	rows = append(rows, [3]string{"NAME", "SIZE", "MODIFIED"})
	for _, e := range entries {
		name, size := cell(e.GetName()), Bytes(e.GetSize())
		if e.GetIsDir() {
			name, size = strings.TrimSuffix(name, "/")+"/", "-"
		}
		rows = append(rows, [3]string{name, size, timestamp(e.GetModTime())})
	}
	if width > 0 {
		var widths [3]int
		for _, r := range rows {
			for i, c := range r {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
		room := width - 1 - 2*gap - widths[1] - widths[2]
		if widths[0] > room && room < dateOnly {
			for i, e := range entries {
				if ts := e.GetModTime(); ts != nil {
					rows[i+1][2] = ts.AsTime().Local().Format("2006-01-02")
				}
			}
			room += widths[2] - max(len("MODIFIED"), len("2006-01-02"))
		}
		room = max(room, minName)
		if widths[0] > room {
			for i := range rows {
				rows[i][0] = Fit(rows[i][0], room)
			}
		}
	}
	tw := newTable(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r[:], "\t"))
	}
	return tw.Flush()
}

// TransferDetails writes one transfer as key: value lines (keys are the JSON field names).
func TransferDetails(w io.Writer, t *ferryv1.Transfer, now time.Time) error {
	p := t.GetProgress()
	kv := [][2]string{
		{"id", t.GetId()},
		{"state", StateName(t.GetState())},
		{"source", t.GetSource()},
		{"destination", t.GetDestination()},
		{"direction", shortEnum(t.GetDirection().String(), "DIRECTION_")},
		{"requested_mode", ModeName(t.GetRequestedMode())},
		{"mode", ModeName(t.GetMode())},
		{"mode_reason", t.GetModeReason()},
		{"progress", fmt.Sprintf("%s / %s  %s  %s  eta %s  files %d/%d", Bytes(p.GetBytesDone()), total(p),
			percent(p), Rate(p.GetBytesPerSecond()), eta(p), p.GetFilesDone(), p.GetFilesTotal())},
		{"current_file", p.GetCurrentFile()},
		{"error", OneLine(t.GetError())},
		{"created_at", timestampAge(t.GetCreatedAt(), now)},
		{"started_at", timestampAge(t.GetStartedAt(), now)},
		{"finished_at", timestampAge(t.GetFinishedAt(), now)},
		{"sha256", t.GetSha256()},
		{"verified", fmt.Sprint(t.GetVerified())},
		{"limit_rate", rateLimit(t.GetLimitRate())},
		{"tcp_congestion", t.GetTcpCongestion()},
	}
	return keyValues(w, kv)
}

// AgentInfo writes GetAgentInfo as key: value lines (keys are the JSON field names).
func AgentInfo(w io.Writer, info *ferryv1.GetAgentInfoResponse, now time.Time) error {
	ports := ""
	if pr := info.GetPassivePorts(); pr != nil && (pr.GetLow() != 0 || pr.GetHigh() != 0) {
		ports = fmt.Sprintf("%d-%d", pr.GetLow(), pr.GetHigh())
	}
	started := timestamp(info.GetStartedAt())
	if info.GetStartedAt() != nil {
		started += " (up " + Age(now.Sub(info.GetStartedAt().AsTime())) + ")"
	}
	kv := [][2]string{
		{"version", info.GetVersion()},
		{"hostname", info.GetHostname()},
		{"grpc_address", info.GetGrpcAddress()},
		{"ftp_address", info.GetFtpAddress()},
		{"root", info.GetRoot()},
		{"passive_ports", ports},
		{"public_host", info.GetPublicHost()},
		{"started_at", started},
		{"tcp_congestion", info.GetTcpCongestion()},
		{"limit_rate", rateLimit(info.GetLimitRate())},
	}
	for _, p := range info.GetPlugins() {
		v := fmt.Sprintf("%s (%s) %s, restarts %d, pid %d, path %s", p.GetName(), strings.Join(p.GetKinds(), ","),
			p.GetState(), p.GetRestarts(), p.GetPid(), p.GetPath())
		if n := p.GetDroppedEvents(); n > 0 {
			v += fmt.Sprintf(", %d events dropped", n)
		}
		if e := p.GetLastError(); e != "" {
			v += ", last error: " + e
		}
		kv = append(kv, [2]string{"plugin", v})
	}
	return keyValues(w, kv)
}

func keyValues(w io.Writer, kv [][2]string) error {
	var b strings.Builder
	for _, p := range kv {
		v := OneLine(p[1])
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(&b, "%s: %s\n", p[0], v)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell keeps a table cell on one line and free of tabs.
func cell(s string) string {
	return strings.ReplaceAll(OneLine(s), "\t", " ")
}

func timestamp(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format("2006-01-02 15:04:05")
}

func timestampAge(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return ""
	}
	return timestamp(ts) + " (" + Age(now.Sub(ts.AsTime())) + " ago)"
}

func age(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return "-"
	}
	return Age(now.Sub(ts.AsTime()))
}

// rateLimit shows a bandwidth limit in bytes per second ("none" for 0).
func rateLimit(bps int64) string {
	if bps <= 0 {
		return "none"
	}
	return Rate(float64(bps))
}
