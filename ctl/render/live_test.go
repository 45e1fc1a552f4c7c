package render

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func TestStatusLineFits(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	tr := &ferryv1.Transfer{
		State:     ferryv1.TransferState_TRANSFER_STATE_RUNNING,
		StartedAt: timestamppb.New(now.Add(-65 * time.Second)),
		Attempt:   2, LastError: "ftp 127.0.0.1:2121: connection reset by peer",
		Progress: &ferryv1.Progress{BytesDone: 50 << 20, BytesTotal: 100 << 20, BytesPerSecond: 10 << 20,
			FilesDone: 3, FilesTotal: 10, Phase: "verifying",
			CurrentFile: "a/rather/long/directory/name/holding/the-file-being-moved-now.tar.gz"},
	}
	for _, w := range []int{20, 40, 59, 79, 119, 200} {
		line := StatusLine(tr, now, w)
		if n := utf8.RuneCountInString(line); n > w {
			t.Errorf("width %d: %d runes: %q", w, n, line)
		}
		if w < 50 {
			continue // only the width is promised
		}
		for _, want := range []string{"verifying", ".tar.gz", "elapsed 1m05s", "50%"} {
			if !strings.Contains(line, want) {
				t.Errorf("width %d: %q lacks %q", w, line, want)
			}
		}
		if strings.ContainsAny(line, "\n\r") {
			t.Errorf("width %d: line breaks in %q", w, line)
		}
	}
	if line := StatusLine(tr, now, 200); !strings.Contains(line, "retry 1: ftp 127.0.0.1:2121: connection reset by peer") {
		t.Errorf("a wide line should show the retry and its cause: %q", line)
	}
}

func TestTransfersTableFitsWidth(t *testing.T) {
	now := time.Now()
	long := &ferryv1.Transfer{Id: "0123456789abcdef", State: ferryv1.TransferState_TRANSFER_STATE_RUNNING,
		Source:      "agent://storage-node-17.example.internal:7070/exports/2026/12/01/nightly/database-dump.tar.zst",
		Destination: "incoming/backups/from-storage-node-17/2026/12/01/nightly/database-dump.tar.zst",
		CreatedAt:   timestamppb.New(now.Add(-time.Minute)), Progress: &ferryv1.Progress{BytesDone: 1, BytesTotal: 2}}
	for _, w := range []int{80, 120} {
		var out strings.Builder
		if err := TransfersTableWidth(&out, []*ferryv1.Transfer{long}, now, w); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			if n := utf8.RuneCountInString(line); n >= w {
				t.Errorf("width %d: a row of %d columns: %q", w, n, line)
			}
		}
		if !strings.Contains(out.String(), "dump.tar.zst") {
			t.Errorf("width %d: the cut lost the file name: %q", w, out.String())
		}
	}
}
