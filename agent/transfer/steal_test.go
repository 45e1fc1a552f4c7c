package transfer

import (
	"testing"
	"time"
)

// movingSeg is a range whose current move began at since, got its first bytes setup later, and
// has moved got bytes (from start) at now.
func movingSeg(start, end, got int64, since time.Time, setup time.Duration) *liveSeg {
	ls := &liveSeg{start: start, end: end, claimed: got, since: since}
	ls.done.Store(got)
	ls.first.Store(since.Add(setup).UnixNano())
	return ls
}

// TestSteal: an idle stream takes part of the range that would take longest at its rate, sized
// so both end together after the newcomer's set-up; nothing when the rest is shorter than a
// set-up, or when no range has moved long enough to tell its rate.
func TestSteal(t *testing.T) {
	now := time.Now()
	since := now.Add(-2500 * time.Millisecond)
	setup := 500 * time.Millisecond
	// 2 s of data at 2 MiB/s: 4 MiB moved; the slow one at 1 MiB/s: 2 MiB moved.
	fast := movingSeg(0, 8<<20, 4<<20, since, setup)
	slow := movingSeg(8<<20, 16<<20, 2<<20, since, setup)
	live := []*liveSeg{fast, slow}

	got := steal(live, now)
	if got == nil {
		t.Fatal("no steal from a range 6 s from its end")
	}
	// slow: 6 MiB left at 1 MiB/s = 6 s; after the 0.5 s set-up 5.5 s, half of it: 2.75 MiB.
	wantShare := int64(2.75 * (1 << 20))
	if share := got.end - got.start; share < wantShare-(64<<10) || share > wantShare+(64<<10) {
		t.Errorf("stolen %d bytes, want about %d", share, wantShare)
	}
	if got.end != 16<<20 || slow.end != got.start || fast.end != 8<<20 {
		t.Errorf("split: slow [%d,%d) new [%d,%d), fast end %d", slow.start, slow.end, got.start, got.end, fast.end)
	}

	// Under a set-up's worth left everywhere: not worth a new stream.
	nearly := movingSeg(0, 4<<20+1100<<10, 4<<20, since, setup) // 1.1 MiB left at 2 MiB/s: 0.55 s
	if s := steal([]*liveSeg{nearly}, now); s != nil {
		t.Errorf("stole [%d,%d) from a range about to end", s.start, s.end)
	}

	// No first bytes yet: the rate is unknown, nothing is split.
	fresh := &liveSeg{start: 0, end: 64 << 20, since: now}
	if s := steal([]*liveSeg{fresh}, now); s != nil || fresh.end != 64<<20 {
		t.Errorf("split a range that has not started moving: %v", s)
	}
}

// TestTiles: a checkpoint's ranges, once sorted by start, are resumed only when they cover the
// file exactly (ranges split for idle streams are appended out of order).
func TestTiles(t *testing.T) {
	for _, tc := range []struct {
		segs []segment
		size int64
		want bool
	}{
		{[]segment{{Start: 0, End: 10, Done: 10}, {Start: 10, End: 20, Done: 3}}, 20, true},
		{[]segment{{Start: 0, End: 10}, {Start: 10, End: 15}, {Start: 15, End: 20}}, 20, true},
		{[]segment{{Start: 0, End: 10}, {Start: 12, End: 20}}, 20, false},           // a gap
		{[]segment{{Start: 0, End: 12}, {Start: 10, End: 20}}, 20, false},           // an overlap
		{[]segment{{Start: 0, End: 10}, {Start: 10, End: 20}}, 30, false},           // short of the size
		{[]segment{{Start: 0, End: 10, Done: 11}, {Start: 10, End: 20}}, 20, false}, // more done than held
		{nil, 0, true},
	} {
		if got := tiles(tc.segs, tc.size); got != tc.want {
			t.Errorf("tiles(%v, %d) = %v, want %v", tc.segs, tc.size, got, tc.want)
		}
	}
}
