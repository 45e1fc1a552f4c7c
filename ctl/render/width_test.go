package render

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// issue 17: "fits the terminal width on every line", "tables fit the terminal".

func TestResultLineWidth(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	big := succeeded() // 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=<64 hex>
	big.Sha256 = sum
	retried := succeeded()
	retried.Sha256, retried.Attempt, retried.BytesResumed = sum, 3, 40*MiB
	unverified := succeeded()
	unverified.Sha256, unverified.VerifyNote = sum, "not verified (server has no HASH)"
	tree := succeeded()
	tree.Sha256, tree.Progress.FilesDone, tree.Progress.FilesTotal, tree.FilesSkipped, tree.FilesDeleted = "", 2, 2, 40, 1
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		t     *ferryv1.Transfer
		width int
		want  string
	}{
		{"whole for a pipe", big, 0, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=" + sum},
		{"fits 120 whole", tree, 120, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive files=2 skipped=40 deleted=1"},
		{"120 short sha", big, 120, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=0123456789abcdef…"},
		{"60 drops mode and rate", big, 60, "succeeded: 100.0 MiB in 2.1s sha256=0123456789abcdef…"},
		{"60 drops retries", retried, 60, "succeeded: 100.0 MiB in 2.1s sha256=0123456789abcdef…"},
		{"120 keeps retries", retried, 120, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=0123456789abcdef… attempts=3 resumed=40.0 MiB"},
		{"40 drops sha", big, 40, "succeeded: 100.0 MiB in 2.1s"},
		{"60 keeps not verified", unverified, 60, "succeeded: 100.0 MiB in 2.1s sha256=01234567…, not verified"},
		{"40 keeps not verified", unverified, 40, "succeeded: 100.0 MiB, not verified"},
		{"40 tree counts", tree, 40, "succeeded: 100.0 MiB files=2 skipped=4…"},
	} {
		got := ResultLineWidth(tc.t, now, tc.width)
		if got != tc.want {
			t.Errorf("%s: ResultLineWidth(%d) =\n%q, want\n%q", tc.name, tc.width, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); tc.width > 0 && n >= tc.width {
			t.Errorf("%s: %d runes on a %d-column terminal: %q", tc.name, n, tc.width, got)
		}
	}
	// A failure keeps its whole cause (it is the error line), however narrow the terminal.
	failed := snap(ferryv1.TransferState_TRANSFER_STATE_FAILED, 0, 0)
	failed.Error = "550 in/some/rather/long/path/to/a/file.bin: permission denied"
	if got := ResultLineWidth(failed, now, 40); got != "failed: "+failed.Error {
		t.Errorf("failure line changed: %q", got)
	}
}

func TestWatcherResultWidth(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		width  int
		format Format
		want   string
	}{
		{60, Text, "succeeded: 100.0 MiB in 2.1s sha256=abababababababab…\n"},
		{90, Text, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=abababababababab…\n"},
		{0, Text, "succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=" + sum + "\n"},
	} {
		var out bytes.Buffer
		w := NewWatcher(&out, tc.format, false, WithClock(func() time.Time { return t0.Add(time.Hour) }),
			WithResultWidth(func() int { return tc.width }))
		if err := w.Finish(succeeded()); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("width %d: %q, want %q", tc.width, out.String(), tc.want)
		}
	}
	// JSON never changes: the whole checksum, whatever the width.
	var out bytes.Buffer
	w := NewWatcher(&out, JSON, false, WithResultWidth(func() int { return 40 }))
	if err := w.Finish(succeeded()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"sha256":"`+sum+`"`) {
		t.Errorf("JSON result lost the checksum: %s", out.String())
	}
}

func TestFilesTableWidth(t *testing.T) {
	long := "holiday-photos-2026-summer-trip-to-the-mountains-and-lakes-final-edit.tar.gz"
	entries := []*ferryv1.FileEntry{
		{Name: long, Size: 320 * MiB, ModTime: timestamppb.New(t0)},
		{Name: "a.txt", Size: 12, ModTime: timestamppb.New(t0)},
		{Name: "sub", IsDir: true, ModTime: timestamppb.New(t0)},
	}
	full := t0.Local().Format("2006-01-02 15:04:05")
	day := t0.Local().Format("2006-01-02")
	for _, tc := range []struct {
		width                int
		wholeName, wholeTime bool
	}{
		{0, true, true},
		{120, true, true},
		{60, false, true},
		{40, false, false},
	} {
		var out bytes.Buffer
		if err := FilesTableWidth(&out, entries, tc.width); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("width %d: %d lines:\n%s", tc.width, len(lines), out.String())
		}
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); tc.width > 0 && n >= tc.width {
				t.Errorf("width %d: a row of %d columns: %q", tc.width, n, l)
			}
		}
		row := lines[1]
		if got := strings.Contains(row, long); got != tc.wholeName {
			t.Errorf("width %d: whole name shown = %v, want %v: %q", tc.width, got, tc.wholeName, row)
		}
		if !tc.wholeName && (!strings.HasPrefix(row, "holiday") || !strings.Contains(row, "…") || !strings.Contains(row, "320.0 MiB")) {
			t.Errorf("width %d: shortened row lacks the name's start, the cut mark or the size: %q", tc.width, row)
		}
		if got := strings.Contains(row, full); got != tc.wholeTime {
			t.Errorf("width %d: time of day shown = %v, want %v: %q", tc.width, got, tc.wholeTime, row)
		}
		if !strings.Contains(row, day) || !strings.HasPrefix(lines[3], "sub/ ") || !strings.HasPrefix(lines[2], "a.txt ") {
			t.Errorf("width %d: table lost the date or the short names:\n%s", tc.width, out.String())
		}
	}
}
