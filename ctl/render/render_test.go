package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

const MiB = 1 << 20

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1024*1024 - 1, "1.0 MiB"}, // would round to 1024.0 KiB
		{52*MiB + MiB*4/10, "52.4 MiB"},
		{100 * MiB, "100.0 MiB"},
		{5 << 30, "5.0 GiB"},
		{3 << 40, "3.0 TiB"},
		{-2048, "-2.0 KiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		bps  float64
		want string
	}{
		{0, "0 B/s"},
		{-5, "0 B/s"},
		{48.1 * MiB, "48.1 MiB/s"},
		{512, "512 B/s"},
	} {
		if got := Rate(tc.bps); got != tc.want {
			t.Errorf("Rate(%v) = %q, want %q", tc.bps, got, tc.want)
		}
	}
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(time.Duration) string
		d    time.Duration
		want string
	}{
		{"Duration", Duration, 0, "0ms"},
		{"Duration", Duration, 35 * time.Millisecond, "35ms"},
		{"Duration", Duration, 100 * time.Millisecond, "0.1s"},
		{"Duration", Duration, 2100 * time.Millisecond, "2.1s"},
		{"Duration", Duration, 59 * time.Second, "59.0s"},
		{"Duration", Duration, 65 * time.Second, "1m05s"},
		{"Duration", Duration, 2*time.Hour + 3*time.Minute, "2h03m00s"},
		{"Duration", Duration, -time.Second, "0ms"},
		{"ETA", ETA, 0, "0s"},
		{"ETA", ETA, 300 * time.Millisecond, "1s"},
		{"ETA", ETA, time.Second, "1s"},
		{"ETA", ETA, 59*time.Second + time.Millisecond, "1m00s"},
		{"ETA", ETA, 125 * time.Second, "2m05s"},
		{"Age", Age, 5 * time.Second, "5s"},
		{"Age", Age, 3 * time.Minute, "3m"},
		{"Age", Age, 2 * time.Hour, "2h"},
		{"Age", Age, 100 * time.Hour, "4d"},
	} {
		if got := tc.fn(tc.d); got != tc.want {
			t.Errorf("%s(%v) = %q, want %q", tc.name, tc.d, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("a\n\n  b \r\nc"); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
}

var t0 = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)

func snap(state ferryv1.TransferState, done, total int64) *ferryv1.Transfer {
	return &ferryv1.Transfer{
		Id:          "tr-1",
		Source:      "agent://127.0.0.1:17071/big.bin",
		Destination: "in/big.bin",
		Direction:   ferryv1.Direction_DIRECTION_DOWNLOAD,
		Mode:        ferryv1.TransferMode_TRANSFER_MODE_PASSIVE,
		State:       state,
		CreatedAt:   timestamppb.New(t0),
		StartedAt:   timestamppb.New(t0),
		Progress: &ferryv1.Progress{
			BytesDone: done, BytesTotal: total, FilesTotal: 1,
			BytesPerSecond: 48.1 * MiB, Eta: durationpb.New(time.Second),
		},
	}
}

func succeeded() *ferryv1.Transfer {
	t := snap(ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED, 100*MiB, 100*MiB)
	t.Progress.FilesDone = 1
	t.FinishedAt = timestamppb.New(t0.Add(2100 * time.Millisecond))
	t.Sha256 = strings.Repeat("ab", 32)
	return t
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		t    *ferryv1.Transfer
		want string
	}{
		{snap(ferryv1.TransferState_TRANSFER_STATE_RUNNING, 52*MiB+MiB*4/10, 100*MiB),
			"running  52.4 MiB / 100.0 MiB  52%  48.1 MiB/s  eta 1s  files 0/1"},
		{&ferryv1.Transfer{State: ferryv1.TransferState_TRANSFER_STATE_QUEUED},
			"queued  0 B / ?  --%  0 B/s  eta ?  files 0/0"},
	} {
		if got := ProgressLine(tc.t); got != tc.want {
			t.Errorf("ProgressLine =\n%q, want\n%q", got, tc.want)
		}
	}
}

func TestResultLine(t *testing.T) {
	failed := snap(ferryv1.TransferState_TRANSFER_STATE_FAILED, 0, 0)
	failed.Error = "connect to 127.0.0.1:2121:\nconnection refused"
	cancelled := snap(ferryv1.TransferState_TRANSFER_STATE_CANCELLED, 0, 0)
	tree := succeeded()
	tree.Sha256, tree.Progress.FilesDone, tree.Progress.FilesTotal = "", 12, 12
	for _, tc := range []struct {
		t    *ferryv1.Transfer
		want string
	}{
		{succeeded(), "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=" + strings.Repeat("ab", 32)},
		{tree, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive files=12"},
		{failed, "failed: connect to 127.0.0.1:2121: connection refused"},
		{cancelled, "cancelled: no cause given by the agent"},
	} {
		if got := ResultLine(tc.t, t0.Add(time.Hour)); got != tc.want {
			t.Errorf("ResultLine =\n%q, want\n%q", got, tc.want)
		}
	}
}

// fakeClock is advanced by the test.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestPlainRateLimit(t *testing.T) {
	running := ferryv1.TransferState_TRANSFER_STATE_RUNNING
	queued := ferryv1.TransferState_TRANSFER_STATE_QUEUED
	steps := []struct {
		at    time.Duration
		state ferryv1.TransferState
		print bool
	}{
		{0, queued, true},                         // first snapshot
		{100 * time.Millisecond, running, true},   // state change
		{400 * time.Millisecond, running, false},  // too soon
		{1099 * time.Millisecond, running, false}, // still too soon after the 100ms line
		{1100 * time.Millisecond, running, true},  // one second later
		{1500 * time.Millisecond, running, false}, //
		{2000 * time.Millisecond, running, false}, //
		{2200 * time.Millisecond, running, true},  //
		{2300 * time.Millisecond, queued, true},   // state change again (re-queued)
		{2400 * time.Millisecond, running, true},  // and back
		{10 * time.Second, running, true},         // long silence
		{10*time.Second + time.Millisecond, running, false},
	}
	clock := &fakeClock{now: t0}
	var out bytes.Buffer
	w := NewWatcher(&out, Text, false, WithClock(clock.Now))
	want := 0
	for i, s := range steps {
		clock.now = t0.Add(s.at)
		before := strings.Count(out.String(), "\n")
		w.Update(snap(s.state, int64(i)*MiB, 100*MiB))
		printed := strings.Count(out.String(), "\n") > before
		if printed != s.print {
			t.Errorf("step %d (%v %v): printed=%v, want %v", i, s.at, s.state, printed, s.print)
		}
		if s.print {
			want++
		}
	}
	if err := w.Finish(succeeded()); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != want+1 {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), want+1, out.String())
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "succeeded: 100.0 MiB in 2.1s") {
		t.Errorf("last line %q", last)
	}
}

type event struct {
	Event    string          `json:"event"`
	OK       *bool           `json:"ok"`
	Error    *string         `json:"error"`
	Transfer json.RawMessage `json:"transfer"`
}

// parseEvents checks that every line is one JSON event whose transfer parses with protojson.
func parseEvents(t *testing.T, out string) ([]event, []*ferryv1.Transfer) {
	t.Helper()
	var evs []event
	var ts []*ferryv1.Transfer
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		var tr *ferryv1.Transfer
		if string(ev.Transfer) != "null" {
			tr = &ferryv1.Transfer{}
			if err := protojson.Unmarshal(ev.Transfer, tr); err != nil {
				t.Fatalf("line %d transfer: %v", i, err)
			}
			var fields map[string]any
			if err := json.Unmarshal(ev.Transfer, &fields); err != nil {
				t.Fatal(err)
			}
			// Proto names, every field present, enums by name.
			for _, k := range []string{"id", "source", "destination", "state", "mode", "requested_mode",
				"progress", "error", "created_at", "finished_at", "sha256", "verified", "mode_reason"} {
				if _, ok := fields[k]; !ok {
					t.Errorf("line %d: transfer lacks %q: %s", i, k, ev.Transfer)
				}
			}
			if s, _ := fields["state"].(string); !strings.HasPrefix(s, "TRANSFER_STATE_") {
				t.Errorf("line %d: state %v is not an enum name", i, fields["state"])
			}
		}
		evs = append(evs, ev)
		ts = append(ts, tr)
	}
	return evs, ts
}

func TestJSONEvents(t *testing.T) {
	failed := snap(ferryv1.TransferState_TRANSFER_STATE_FAILED, 3*MiB, 100*MiB)
	failed.Error = "peer closed\nthe connection"
	for _, tc := range []struct {
		name    string
		final   *ferryv1.Transfer
		ok      bool
		errText string
	}{
		{"succeeded", succeeded(), true, ""},
		{"failed", failed, false, "peer closed the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			// tty is ignored for JSON: no bar.
			w := NewWatcher(&out, JSON, true)
			for i := range 5 {
				w.Update(snap(ferryv1.TransferState_TRANSFER_STATE_RUNNING, int64(i)*MiB, 100*MiB))
			}
			err := w.Finish(tc.final)
			var fe *FinalError
			if tc.ok != (err == nil) || (!tc.ok && !errors.As(err, &fe)) {
				t.Fatalf("Finish: %v", err)
			}
			evs, ts := parseEvents(t, out.String())
			if len(evs) != 6 {
				t.Fatalf("%d events, want 6 (5 updates, 1 result)", len(evs))
			}
			for i, ev := range evs[:5] {
				if ev.Event != "update" || ev.OK != nil || ev.Error != nil || ts[i].GetProgress().GetBytesDone() != int64(i)*MiB {
					t.Errorf("update %d: %+v %v", i, ev, ts[i])
				}
			}
			res := evs[5]
			if res.Event != "result" || res.OK == nil || *res.OK != tc.ok || res.Error == nil || *res.Error != tc.errText {
				t.Errorf("result: %+v", res)
			}
			if ts[5].GetState() != tc.final.GetState() || ts[5].GetSha256() != tc.final.GetSha256() {
				t.Errorf("result transfer %v", ts[5])
			}
		})
	}
}

func TestJSONFail(t *testing.T) {
	var out bytes.Buffer
	w := NewWatcher(&out, JSON, false)
	w.Fail(errors.New("lost the agent"))
	w.Fail(errors.New("twice")) // no second result
	evs, ts := parseEvents(t, out.String())
	if len(evs) != 1 || evs[0].Event != "result" || *evs[0].OK || *evs[0].Error != "lost the agent" || ts[0] != nil {
		t.Fatalf("got %s", out.String())
	}

	out.Reset()
	w = NewWatcher(&out, JSON, false)
	w.Update(snap(ferryv1.TransferState_TRANSFER_STATE_RUNNING, MiB, 2*MiB))
	w.Fail(errors.New("interrupted"))
	evs, ts = parseEvents(t, out.String())
	if len(evs) != 2 || ts[1].GetProgress().GetBytesDone() != MiB {
		t.Fatalf("result should carry the last snapshot: %s", out.String())
	}
}

func TestBar(t *testing.T) {
	for _, ok := range []bool{true, false} {
		var out, bar bytes.Buffer
		// Not a terminal: the live line draws anyway, at a fixed width.
		w := NewWatcher(&out, Text, true, WithProgressOutput(&bar), WithWidth(func() int { return 120 }))
		w.Update(snap(ferryv1.TransferState_TRANSFER_STATE_QUEUED, 0, 0))
		w.Update(snap(ferryv1.TransferState_TRANSFER_STATE_RUNNING, 50*MiB, 100*MiB))
		final := succeeded()
		if !ok {
			final = snap(ferryv1.TransferState_TRANSFER_STATE_FAILED, 50*MiB, 100*MiB)
			final.Error = "boom"
		}
		done := make(chan error, 1)
		go func() { done <- w.Finish(final) }()
		select {
		case err := <-done:
			if (err == nil) != ok {
				t.Errorf("Finish: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Finish hangs")
		}
		if want := map[bool]string{true: "succeeded: ", false: "failed: boom"}[ok]; !strings.HasPrefix(out.String(), want) {
			t.Errorf("stdout %q, want %q first", out.String(), want)
		}
		if strings.Count(out.String(), "\n") != 1 {
			t.Errorf("stdout should be the result line only: %q", out.String())
		}
		if !strings.Contains(bar.String(), "100.0 MiB") {
			t.Errorf("bar output lacks the total: %q", bar.String())
		}
		if !strings.HasSuffix(bar.String(), "\r\x1b[K") {
			t.Errorf("the live line is not erased at the end: %q", bar.String())
		}
	}
}

func TestTables(t *testing.T) {
	var out bytes.Buffer
	running := snap(ferryv1.TransferState_TRANSFER_STATE_RUNNING, 52*MiB+MiB*4/10, 100*MiB)
	if err := TransfersTable(&out, []*ferryv1.Transfer{running, succeeded()}, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for _, f := range []string{"ID", "STATE", "MODE", "PROGRESS", "SOURCE → DEST", "AGE"} {
		if !strings.Contains(lines[0], f) {
			t.Errorf("header lacks %q: %q", f, lines[0])
		}
	}
	for _, f := range []string{"tr-1", "running", "passive", "52.4 MiB/100.0 MiB 52%",
		"agent://127.0.0.1:17071/big.bin → in/big.bin", "3m"} {
		if !strings.Contains(lines[1], f) {
			t.Errorf("row lacks %q: %q", f, lines[1])
		}
	}
	// Columns line up: STATE starts at the same offset in every line.
	col := strings.Index(lines[0], "STATE")
	if strings.Index(lines[1], "running") != col || strings.Index(lines[2], "succeeded") != col {
		t.Errorf("columns not aligned:\n%s", out.String())
	}

	out.Reset()
	err := FilesTable(&out, []*ferryv1.FileEntry{
		{Name: "big.bin", Size: 3 * MiB, ModTime: timestamppb.New(t0)},
		{Name: "sub", IsDir: true, ModTime: timestamppb.New(t0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "3.0 MiB") ||
		!strings.HasPrefix(lines[2], "sub/ ") {
		t.Errorf("files table:\n%s", out.String())
	}

	out.Reset()
	info := &ferryv1.GetAgentInfoResponse{Version: "dev", GrpcAddress: "127.0.0.1:7070",
		PassivePorts: &ferryv1.PortRange{Low: 30000, High: 30100}, StartedAt: timestamppb.New(t0),
		Plugins: []*ferryv1.PluginInfo{{Name: "auth-ldap", Path: "/p/auth-ldap", Kinds: []string{"auth"}, State: "restarting",
			Restarts: 2, Pid: 42, LastError: "process exited"}}}
	if err := AgentInfo(&out, info, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version: dev\n", "grpc_address: 127.0.0.1:7070\n", "passive_ports: 30000-30100\n",
		"public_host: -\n", "(up 5m)",
		"plugin: auth-ldap (auth) restarting, restarts 2, pid 42, path /p/auth-ldap, last error: process exited\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("agent info lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"text": Text, "json": JSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("yaml accepted")
	}
}
