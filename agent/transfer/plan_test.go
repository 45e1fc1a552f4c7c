package transfer

import (
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/storage"
)

func TestUserNames(t *testing.T) {
	part := storage.PartName("in/dir/report 2026.csv", "k")
	msg := "store in/dir/report 2026.csv: 553 could not create " + part + ": permission denied"
	got := userNames(msg)
	if want := "store in/dir/report 2026.csv: 553 could not create in/dir/report 2026.csv: permission denied"; got != want {
		t.Errorf("userNames:\n got %q\nwant %q", got, want)
	}
}

func TestMatchAny(t *testing.T) {
	for _, tc := range []struct {
		pats []string
		rel  string
		want bool
	}{
		{[]string{"*.jpg"}, "a.jpg", true},
		{[]string{"*.jpg"}, "sub/deep/a.jpg", true},
		{[]string{"*.jpg"}, "a.png", false},
		{[]string{".git"}, ".git/config", true},
		{[]string{"logs/*.gz"}, "logs/a.gz", true},
		{[]string{"logs/*.gz"}, "x/logs/a.gz", false},
		{[]string{"sub/deep"}, "sub/deep/d.jpg", true},
	} {
		if got := matchAny(tc.pats, tc.rel); got != tc.want {
			t.Errorf("matchAny(%q, %q) = %v, want %v", tc.pats, tc.rel, got, tc.want)
		}
	}
}

func TestNewerAtCoarsestPrecision(t *testing.T) {
	base := time.Date(2026, 12, 1, 21, 42, 0, 0, time.UTC) // as LIST shows a recent file
	if newer(base.Add(30*time.Second), base) {
		t.Error("a source 30 s into the minute LIST shows is not newer than that minute")
	}
	if !newer(base.Add(61*time.Second), base) {
		t.Error("a source a minute later is newer")
	}
	if !newer(base.Add(1500*time.Millisecond+3*time.Second), base.Add(3*time.Second+100*time.Millisecond)) {
		t.Error("with seconds on both sides, a second later is newer")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o     Options
		field string
	}{
		{Options{Delete: true}, "options.delete"},
		{Options{Checksum: true}, "options.checksum"},
		{Options{NoClobber: true, Update: true}, "options.update"},
		{Options{Include: []string{"[a-"}}, "options.include"},
	} {
		err := tc.o.validate()
		inv, ok := err.(*InvalidError)
		if !ok || inv.Field != tc.field {
			t.Errorf("%+v: error %v, want one naming %s", tc.o, err, tc.field)
		}
	}
}
