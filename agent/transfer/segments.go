package transfer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/netcheck"
)

// Parallel segmented streams: one large file moves as N byte ranges over N FTP sessions at once
// (REST + RETR into a preallocated part file for downloads; REST + STOR into the remote part
// file for uploads), then the whole file's SHA-256 is checked before it takes its final name.
// On a long lossy link one TCP stream is held back by its congestion window; N streams share
// the loss and fill the pipe.

const (
	// MaxStreams bounds Spec.Streams.
	MaxStreams = 16
	// autoStreams is the most streams the automatic choice takes (long links).
	autoStreams = 8
	// autoMinSegment: the automatic choice gives no stream less than this.
	autoMinSegment = 8 << 20
	// minSegment: an explicit --streams gives no stream less than this.
	minSegment = 1 << 20
	// segmentSave is how often the ranges' progress is checkpointed while they move.
	segmentSave = 2 * time.Second
)

// segment is one byte range [Start, End) of a file moving over parallel streams, and how many
// of its bytes (from Start) are already at the destination.
type segment struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Done  int64 `json:"done"`
}

func (s segment) left() int64 { return s.End - s.Start - s.Done }

// checkStreams validates Spec.Streams.
func checkStreams(n int) error {
	if n < 0 || n > MaxStreams {
		return invalid("streams", fmt.Sprintf("%d; want 0 (automatic) to %d", n, MaxStreams))
	}
	return nil
}

// splitSegments cuts size bytes into n ranges of nearly equal length.
func splitSegments(size int64, n int) []segment {
	segs := make([]segment, n)
	for i := range n {
		segs[i] = segment{Start: size * int64(i) / int64(n), End: size * int64(i+1) / int64(n)}
	}
	return segs
}

// streams decides how many parallel streams a single file of size moves over (plannedStreams),
// and shows it in the snapshot. The round trip is the kernel's for the control connection c
// (sessionRTT), else the time the job's grant took (a peer agent), else that of a SIZE command
// on c. Sessions opened early for more streams than this (early.go) are closed at the end of
// the attempt, unused.
func (j *job) streams(c Session, remote string, size int64) int {
	n := j.plannedStreams(size, func() time.Duration {
		if rtt := sessionRTT(c); rtt > 0 {
			return rtt
		}
		if g := j.attemptGrant(); g != nil && g.Took > 0 {
			return g.Took
		}
		return j.roundTrip(c, remote)
	})
	j.update(func(s *Snapshot) { s.Streams = n })
	return n
}

// plannedStreams is how many parallel streams a single file of size moves over. Asked for
// (Spec.Streams > 0), it is that many, none smaller than minSegment. Automatic: 1 for files
// under 16 MiB or a round trip (rtt, asked only for larger files) under 5 ms (one stream fills
// a LAN), 4 under 20 ms, else 8, none smaller than 8 MiB. Uploads are segmented to Ferry agents
// only. A checkpoint of ranges an earlier attempt left keeps the file segmented, and one of a
// single stream keeps it single, so its part file is resumed, not restarted.
func (j *job) plannedStreams(size int64, rtt func() time.Duration) int {
	n, seg := j.spec.Streams, int64(minSegment)
	if n == 0 {
		n, seg = 1, autoMinSegment
		if size >= 2*autoMinSegment {
			rtt := rtt()
			switch {
			case rtt >= 20*time.Millisecond:
				n = autoStreams
			case rtt >= 5*time.Millisecond:
				n = 4
			}
			j.m.log.Debug("parallel streams", "id", j.id(), "rtt", rtt, "streams", n)
		}
	}
	j.mu.Lock()
	resumable := len(j.check.Segments) > 1 && j.check.SrcSize == size
	// An earlier attempt moved this file as one stream (its checkpoint has the source's size
	// and no ranges): its part file is resumed as one stream, not restarted in ranges.
	single := len(j.check.Segments) == 0 && j.check.SrcSize == size && size > 0
	j.mu.Unlock()
	switch {
	case j.fresh():
	case resumable:
		n = max(n, 2)
	case single:
		n = 1
	}
	if size < 0 || (j.plan.dir == Upload && j.plan.remote().Kind != KindAgent) {
		// Uploads go segmented to Ferry agents only: what another server does with REST + STOR
		// (truncate? append?) varies.
		n = 1
	}
	return max(1, min(n, int(size/seg)))
}

// sessionRTT is the kernel's round-trip time of s's control connection (no round trip of its
// own; 0 when unknown). It is preferred to the grant's duration, which on a new gRPC connection
// spans about three round trips and the peer's work, and would take a LAN for a long link.
func sessionRTT(s Session) time.Duration {
	if r, ok := unheld(s).(interface{ RTT() time.Duration }); ok {
		return r.RTT()
	}
	return 0
}

// sessionUsable reports whether s may be sent a command now (ftpclient.Client.Usable); false
// for a session that cannot tell.
func sessionUsable(s Session) bool {
	u, ok := unheld(s).(interface{ Usable() bool })
	return ok && u.Usable()
}

// roundTrip times one command on the control connection (SIZE: a stat on the server).
func (j *job) roundTrip(c Session, p string) time.Duration {
	start := time.Now()
	_, _ = c.Size(j.ctx, p)
	return time.Since(start)
}

// segmentsFor returns the ranges a file of size moves as: those of the checkpoint when an
// earlier attempt left them for the same source (valid reports it: the part file still holds
// what they say), else n fresh ones. The checkpoint records the choice.
func (j *job) segmentsFor(size int64, mtime time.Time, n int, valid func() bool) (segs []segment, resumed bool) {
	j.mu.Lock()
	old := append([]segment(nil), j.check.Segments...)
	same := j.check.SrcSize == size && (mtime.IsZero() || j.check.SrcModTime.Equal(mtime))
	j.mu.Unlock()
	// Ranges split for idle streams (steal) were appended after the one they came from: in
	// order of their starts they must still tile the file exactly.
	slices.SortFunc(old, func(a, b segment) int { return cmp.Compare(a.Start, b.Start) })
	if len(old) > 0 && same && !j.fresh() && tiles(old, size) && valid() {
		segs, resumed = old, true
	} else {
		segs = splitSegments(size, n)
	}
	j.checkpoint(func(c *checkpoint) {
		c.SrcSize, c.SrcModTime = size, mtime
		c.Segments = append([]segment(nil), segs...)
	})
	return segs, resumed
}

// tiles reports whether segs, in order of their starts, cover [0, size) exactly, each with no
// more done than it holds.
func tiles(segs []segment, size int64) bool {
	var at int64
	for _, s := range segs {
		if s.Start != at || s.End < s.Start || s.Done < 0 || s.Done > s.End-s.Start {
			return false
		}
		at = s.End
	}
	return at == size
}

// getSegmented downloads remote (size bytes) over n parallel streams into final's part file,
// preallocated, then checks the whole file's SHA-256 against the server's and renames the part.
// c is the job's session: it moves the last range (which ends at EOF, so its RETR completes
// and c stays usable for HASH) and the others get sessions of their own.
func (j *job) getSegmented(c Session, remote, final string, size int64, mtime time.Time, n int, label string) (sum string, verified bool, err error) {
	j.update(func(s *Snapshot) { s.CurrentFile = label })
	if dir := path.Dir(final); dir != "." {
		if err := j.m.root.MkdirAll(dir, 0o755); err != nil {
			return "", false, fmt.Errorf("destination: %w", err)
		}
	}
	tmp := j.partName(final)
	f, err := j.m.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", false, fmt.Errorf("destination: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if errors.Is(err, ErrChecksum) {
			_ = j.m.root.Remove(tmp) // the clean retry starts from nothing
			j.checkpoint(func(c *checkpoint) { c.Segments = nil })
		}
	}()
	wa, ok := f.(io.WriterAt)
	if !ok {
		return "", false, fmt.Errorf("destination: storage cannot write at an offset; use one stream")
	}
	segs, resumed := j.segmentsFor(size, mtime, n, func() bool {
		fi, err := f.Stat()
		return err == nil && fi.Size() == size
	})
	if !resumed {
		// Preallocated (sparse): every range writes at its place from the start.
		if err := f.Truncate(0); err != nil {
			return "", false, fmt.Errorf("destination: %w", err)
		}
		if err := f.Truncate(size); err != nil {
			return "", false, fmt.Errorf("destination: %w", err)
		}
	}
	// The server's digest of the source does not depend on the transfer: the first session
	// done with its ranges asks for it while the others still move theirs (runSegments' idle
	// work), so it is there when the last byte lands. The local digest is computed once every
	// range is in, while the part file is flushed to disk (the checkpoint's sync).
	type res struct {
		sum string
		err error
	}
	local, server := make(chan res, 1), make(chan res, 1)
	var localOn, serverLate bool // the local digest started; the server's asked on c at the end
	hctx, stopHash := context.WithCancel(j.ctx)
	defer stopHash()
	localDigest := func() {
		localOn = true
		go func() {
			h := sha256.New()
			_, err := datapath.HashFile(h, ctxReaderAt{hctx, f}, 0, size)
			local <- res{hex.EncodeToString(h.Sum(nil)), err}
		}()
	}
	serverDigest := func(ctx context.Context, s Session) {
		got, err := s.HashSize(ctx, remote, size)
		server <- res{got, err}
	}
	defer func() {
		if err != nil {
			stopHash()
			if localOn {
				<-local // f stays open until the digest is done
			}
			if serverLate {
				<-server // c stays open until HASH is answered
			}
		}
	}()
	idle := &idleWork{do: serverDigest}
	last := len(segs) - 1
	err = j.runSegments(c, segs, n, last, false, func() error { return f.Sync() }, localDigest, idle,
		func(ctx context.Context, s Session, ls *liveSeg, mu *sync.Mutex, keep func() bool, _ func()) error {
			mu.Lock()
			at := ls.start + ls.claimed
			mu.Unlock()
			r, err := s.Retr(ctx, remote, at)
			if err != nil {
				return fmt.Errorf("retrieve %s at %d: %w", remote, at, err)
			}
			cp := datapath.Copier{Grant: j.thr.grantFunc(ctx)} // segWriter counts the progress
			_, err = cp.Copy(&segWriter{w: wa, ls: ls, mu: mu, j: j}, r)
			mu.Lock()
			end, got := ls.end, ls.start+ls.done.Load()
			mu.Unlock()
			switch {
			case err != nil && !errors.Is(err, errRangeEnd):
				r.Close()
				return fmt.Errorf("retrieve %s at %d: %w", remote, at, err)
			case got != end:
				r.Close()
				return fmt.Errorf("retrieve %s at %d: the data ends at %d, want %d (the source changed?)", remote, at, got, end)
			case err == nil:
				// Read to EOF: the transfer completes and the session stays usable.
				if err := r.Close(); err != nil {
					return fmt.Errorf("retrieve %s at %d: %w", remote, at, err)
				}
			case keep():
				// ABOR: this session may move another range next. The abort of a transfer cut
				// short returns the server's 426; only a session it left unusable stops here (the
				// range is still whole).
				if err := r.Close(); err != nil && s != c && !sessionUsable(s) {
					return errSessionSpent
				}
			default:
				// The session is closed next: closing its data and control connections ends the
				// transfer, without an ABOR's round trip (or its reply's).
			}
			return nil
		})
	if err != nil {
		return "", false, err
	}
	if !localOn {
		localDigest() // nothing was left to move (a resumed part already whole)
	}
	if idle.take(c) {
		serverLate = true // no session was idle before the end
		go serverDigest(j.ctx, c)
	}
	if err := f.Sync(); err != nil {
		return "", false, fmt.Errorf("destination: %w", err)
	}
	l, srv := <-local, <-server
	localOn, serverLate = false, false
	if srv.err != nil && !errors.Is(srv.err, ftpclient.ErrUnsupported) && j.ctx.Err() == nil && idle.on != c {
		// Asked early on a stream's session, which failed meanwhile: the job's session asks again.
		j.m.log.Debug("early HASH failed; asking again", "path", remote, "err", srv.err)
		serverDigest(j.ctx, c)
		srv = <-server
	}
	got, herr := srv.sum, srv.err
	if l.err != nil {
		return "", false, fmt.Errorf("destination: read part file: %w", l.err)
	}
	sum = l.sum
	verified, err = j.hashResult(remote, sum, got, herr)
	if err != nil {
		return "", false, err
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return "", false, fmt.Errorf("destination: %w", cerr)
	}
	if err := j.beforePublish(final); err != nil {
		return "", false, err
	}
	if err := j.m.root.Rename(tmp, final); err != nil {
		return "", false, fmt.Errorf("destination: %w", err)
	}
	return sum, verified, nil
}

// putSegmented uploads local to the remote final path over n parallel streams, into the
// remote part file (REST + STOR writes at the offset: Ferry agents and ftpserverlib do not
// truncate on a restarted STOR), then checks the server's SHA-256 of the whole part and
// renames it. The first range goes first on c: its STOR from offset 0 truncates the part, so
// the other ranges start only once it has opened the file, and when the first range has to
// start over, so do all.
func (j *job) putSegmented(c Session, local, final string, n int, label string) (sum string, verified bool, err error) {
	f, fi, tmp, err := j.openUpload(local, final, label)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	size := fi.Size()
	defer func() {
		if errors.Is(err, ErrChecksum) {
			j.deleteRemote(c, tmp)
			j.checkpoint(func(c *checkpoint) { c.Segments = nil })
		}
	}()
	segs, _ := j.segmentsFor(size, fi.ModTime(), n, func() bool {
		have, err := c.Size(j.ctx, tmp)
		return err == nil && have <= size
	})
	// The checkpoint counts bytes sent; what the server holds of each range is proven by its
	// hash of that range (Ferry agents answer range hashes), else the range starts over.
	for i := range segs {
		if segs[i].Done > 0 {
			segs[i].Done = j.heldPrefix(c, f, tmp, segs[i])
		}
	}
	if segs[0].Done == 0 {
		for i := range segs {
			segs[i].Done = 0
		}
	}
	// The local digest is computed while the ranges move (the source is read again from the
	// page cache), so the server's HASH is the only wait once they are in.
	type res struct {
		sum string
		err error
	}
	digest := make(chan res, 1)
	hctx, stopHash := context.WithCancel(j.ctx)
	defer stopHash()
	go func() {
		h := sha256.New()
		_, err := datapath.HashFile(h, ctxReaderAt{hctx, f}, 0, size)
		digest <- res{hex.EncodeToString(h.Sum(nil)), err}
	}()
	hashed := false
	defer func() {
		if err != nil && !hashed {
			stopHash()
			<-digest // f stays open until the digest stops
		}
	}()
	err = j.runSegments(c, segs, n, 0, true, nil, nil, nil,
		func(ctx context.Context, s Session, ls *liveSeg, mu *sync.Mutex, _ func() bool, opened func()) error {
			// Done counts bytes sent; a resume checks them against the server's range hash
			// (heldPrefix). An idle stream may take the end of what is left (steal): this
			// one then stops sending there and closes its data connection (no ABOR).
			mu.Lock()
			start, at := ls.start, ls.start+ls.claimed
			mu.Unlock()
			w, err := s.Stor(ctx, tmp, at)
			if err != nil {
				return fmt.Errorf("store %s at %d: %w", final, at, err)
			}
			if start == 0 {
				opened()
			}
			// The range counts as done once the server confirmed it (Close reads the 226).
			cp := datapath.Copier{Grant: j.thr.grantFunc(ctx)} // sentWriter counts the progress
			_, err = cp.Copy(&sentWriter{w: w, ls: ls, j: j}, &rangeReader{r: f, ls: ls, mu: mu})
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("store %s at %d: %w", final, at, err)
			}
			mu.Lock()
			ls.done.Store(ls.end - ls.start)
			mu.Unlock()
			return nil
		})
	if err != nil {
		return "", false, err
	}
	l := <-digest
	hashed = true // a failed check below must not wait for the digest again
	if l.err != nil {
		return "", false, fmt.Errorf("source: %w", l.err)
	}
	sum = l.sum
	verified, err = j.verify(c, tmp, sum, size)
	if err != nil {
		return "", false, err
	}
	if !verified {
		// A longer part (an old one, written over) must not pass as the file. (A digest of the
		// whole part that matches already proves its length.)
		if got, err := c.Size(j.ctx, tmp); err == nil && got != size {
			return "", false, fmt.Errorf("store %s: the server holds %d bytes, want %d", final, got, size)
		}
	}
	if err := c.Rename(j.ctx, tmp, final); err != nil {
		return "", false, fmt.Errorf("rename %s to %s: %w", tmp, final, err)
	}
	j.mu.Lock()
	j.remotePart = ""
	j.mu.Unlock()
	return sum, verified, nil
}

// rangeReader reads an upload range's bytes from the source, up to the range's current end (a
// split may move it down meanwhile), then io.EOF.
type rangeReader struct {
	r  io.ReaderAt
	ls *liveSeg
	mu *sync.Mutex
}

func (rr *rangeReader) Read(p []byte) (int, error) {
	rr.mu.Lock()
	pos := rr.ls.start + rr.ls.claimed
	n := int(min(int64(len(p)), rr.ls.end-pos))
	if n > 0 {
		rr.ls.claimed += int64(n)
	}
	rr.mu.Unlock()
	if n <= 0 {
		return 0, io.EOF
	}
	m, err := rr.r.ReadAt(p[:n], pos)
	switch {
	case m == n:
		err = nil
	case err == nil || err == io.EOF:
		err = fmt.Errorf("source: %d bytes at %d: %w (the file changed?)", n, pos, io.ErrUnexpectedEOF)
	}
	return m, err
}

// ctxReaderAt stops reading once ctx ends (a digest of a large file must not outlive its job).
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(p, off)
}

// sentWriter counts the bytes of an upload range the data connection took.
type sentWriter struct {
	w  io.Writer
	ls *liveSeg
	j  *job
}

func (s *sentWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.ls.moved(n)
	s.j.add(n)
	return n, err
}

// heldPrefix returns how many of seg's first Done bytes the remote part tmp holds as the local
// file f has them, proven by the server's SHA-256 of the range: Done itself, else (bytes sent
// may have died in socket buffers) the longest matching prefix, found by bisection to 64 KiB;
// 0 if none matches.
func (j *job) heldPrefix(c Session, f io.ReaderAt, tmp string, seg segment) int64 {
	match := func(n int64) bool {
		h := sha256.New()
		if _, err := datapath.HashFile(h, f, seg.Start, seg.Start+n); err != nil {
			return false
		}
		got, err := c.HashRange(j.ctx, tmp, seg.Start, seg.Start+n)
		return err == nil && got == hex.EncodeToString(h.Sum(nil))
	}
	if match(seg.Done) {
		return seg.Done
	}
	const unit = 64 << 10
	lo, hi := int64(0), seg.Done/unit // the answer, in units, is in [lo, hi)
	for lo+1 < hi && j.ctx.Err() == nil {
		mid := (lo + hi) / 2
		if match(mid * unit) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo * unit
}

// hashResult is verify's verdict on a server digest already fetched.
func (j *job) hashResult(remote, sum, got string, err error) (bool, error) {
	switch {
	case err == nil && got == sum:
		return true, nil
	case err == nil:
		return false, fmt.Errorf("%w for %s: local sha256 %s, server %s", ErrChecksum, remote, sum, got)
	case j.ctx.Err() != nil:
		return false, j.ctx.Err()
	default:
		j.m.log.Debug("HASH failed; file not verified", "path", remote, "err", err)
		return false, nil
	}
}

// minSteal: no range split for an idle stream (steal) leaves a piece under this. Small: on
// a long link the last ranges' streams do not speed up when the others end (their congestion
// windows grow slowly), so the idle streams take over what is left.
const minSteal = 512 << 10

// liveSeg is a range while it moves. Its end may move down while it does: a stream done with its
// own range takes part of the range that would take longest (steal), so one slow
// stream does not hold up the file. Positions are claimed under runSegments' lock before the
// bytes are written, so a split never hands out bytes already under way.
type liveSeg struct {
	start   int64
	end     int64 // guarded by the lock of runSegments (mu)
	claimed int64 // bytes from start handed to the writer (read from the source, uploads); guarded by mu
	done    atomic.Int64
	// The current move: when it began and done then (guarded by mu), and when its first bytes
	// came (unix ns, 0 before): its rate, and how long a move takes to get going.
	since time.Time
	base  int64
	first atomic.Int64
}

// moved counts n more bytes of the range, noting when the first came.
func (ls *liveSeg) moved(n int) {
	ls.done.Add(int64(n))
	if n > 0 && ls.first.Load() == 0 {
		ls.first.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// steal splits the range that would take longest to finish at its current rate, for an idle
// session, and returns the new range (nil when none is worth it). The idle session needs setup
// (how long a move takes to get its first bytes, on average) before its data flows, so it takes
// a range only when the victim has more than that left to go, and half of what the victim would
// move after that time: the victim ends earlier, and the new stream, even at half the victim's
// rate while it starts, no later than the victim would have. Called with runSegments' lock held.
func steal(live []*liveSeg, now time.Time) *liveSeg {
	victim, mid := stealPoint(live, now)
	if victim == nil {
		return nil
	}
	ls := &liveSeg{start: mid, end: victim.end}
	victim.end = mid
	return ls
}

// stealPoint is where steal would split a range now: the victim and the new range's start
// (nil when no range is worth splitting). It changes nothing. Called with runSegments' lock held.
func stealPoint(live []*liveSeg, now time.Time) (victim *liveSeg, mid int64) {
	var setup time.Duration // the moves' mean
	var moves int
	for _, ls := range live {
		if f := ls.first.Load(); f != 0 && !ls.since.IsZero() {
			setup += time.Unix(0, f).Sub(ls.since)
			moves++
		}
	}
	if moves > 0 {
		setup /= time.Duration(moves)
	}
	var rate float64 // the victim's bytes per second
	var left time.Duration
	for _, ls := range live {
		f := ls.first.Load()
		todo := ls.end - (ls.start + ls.claimed)
		if f == 0 || todo <= 2*minSteal {
			continue
		}
		el := now.Sub(time.Unix(0, f))
		got := ls.done.Load() - ls.base
		if el < 50*time.Millisecond || got <= 0 {
			continue // not moving long enough to tell its rate
		}
		r := float64(got) / el.Seconds()
		if t := time.Duration(float64(todo) / r * float64(time.Second)); t > left {
			victim, rate, left = ls, r, t
		}
	}
	if victim == nil || left <= setup*5/4 {
		return nil, 0
	}
	share := int64(rate * (left - setup).Seconds() / 2)
	todo := victim.end - (victim.start + victim.claimed)
	if share < minSteal || todo-share < minSteal {
		return nil, 0
	}
	return victim, victim.end - share
}

// segWriter writes a range's bytes at their place, up to the range's current end; it returns
// errRangeEnd once there (a split moved the end down, or the range is whole).
type segWriter struct {
	w  io.WriterAt
	ls *liveSeg
	mu *sync.Mutex
	j  *job
}

var (
	errRangeEnd     = errors.New("end of range")
	errSessionSpent = errors.New("session no longer usable after its range")
)

func (sw *segWriter) Write(p []byte) (int, error) {
	sw.mu.Lock()
	pos := sw.ls.start + sw.ls.claimed
	n := int(min(int64(len(p)), sw.ls.end-pos))
	sw.ls.claimed += int64(n)
	sw.mu.Unlock()
	if n <= 0 {
		return 0, errRangeEnd
	}
	m, err := sw.w.WriteAt(p[:n], pos)
	sw.ls.moved(m)
	sw.j.add(m)
	if err == nil && m < len(p) {
		err = errRangeEnd
	}
	return m, err
}

// idleWork is work for the first session done with its ranges while others still move theirs
// (a download's digest of the source): taken once, by that session (on), done right away.
type idleWork struct {
	taken atomic.Bool
	on    Session // the session that took it; read once runSegments has returned
	do    func(ctx context.Context, s Session)
}

// take claims w for s; false when w is nil or already taken.
func (w *idleWork) take(s Session) bool {
	if w == nil || !w.taken.CompareAndSwap(false, true) {
		return false
	}
	w.on = s
	return true
}

// pending reports whether w is still to be taken.
func (w *idleWork) pending() bool { return w != nil && !w.taken.Load() }

// segmentMove moves what is left of one range over session s; keep, asked once the range ends
// before the transfer does (a download's range short of EOF), says whether the session is used
// again afterwards (false: it is closed next, so its transfer needs no ABOR); opened (uploads)
// tells the waiting ranges that range 0's STOR has opened (and truncated) the part file. mu
// guards the range's end and claimed bytes.
type segmentMove func(ctx context.Context, s Session, ls *liveSeg, mu *sync.Mutex, keep func() bool, opened func()) error

// runSegments moves the unfinished ranges over at most n sessions: c (which takes range first
// first) and sessions of their own for the others, each starting as soon as it is up
// (streamSessions). A session done with its ranges takes part of the range that would take
// longest (steal). It checkpoints the ranges' progress every segmentSave (after sync, when
// given, so the checkpoint never claims bytes the disk may not hold) and when they end. The
// first failure stops every range; it is the error. For uploads (write), the other ranges wait
// until range 0's STOR has opened the file. Once every range is whole (as soon as it is, while
// a session may still be busy with the idle work), finished (if set) is called, then the ranges
// are checkpointed. idle (if set) is done by the first session with no range left to move while
// it is still open: c once its first range is in (or at once when it has none), else a stream
// whose range ended with nothing left to take (it ABORs its transfer first, the session being
// used again).
func (j *job) runSegments(c Session, segs []segment, n, first int, write bool, syncFn func() error, finished func(), idle *idleWork, move segmentMove) error {
	var mu sync.Mutex // guards live and every liveSeg's end and claimed
	live := make([]*liveSeg, len(segs))
	var resumed int64
	var pending []int
	for i, s := range segs {
		live[i] = &liveSeg{start: s.Start, end: s.End, claimed: s.Done}
		live[i].done.Store(s.Done)
		resumed += s.Done
		if s.left() > 0 && i != first {
			pending = append(pending, i)
		}
	}
	j.bytes.Store(j.base.Load() + resumed)
	if resumed > 0 {
		j.update(func(s *Snapshot) { s.Resumed += resumed })
	}
	firstLeft := segs[first].left() > 0
	if !firstLeft && len(pending) == 0 {
		return nil
	}
	var saveMu sync.Mutex // one save at a time: an older one never lands after a newer one
	save := func() {
		saveMu.Lock()
		defer saveMu.Unlock()
		if syncFn != nil {
			if err := syncFn(); err != nil {
				return
			}
		}
		mu.Lock()
		cur := make([]segment, len(live))
		for i, ls := range live {
			cur[i] = segment{Start: ls.start, End: ls.end, Done: ls.done.Load()}
		}
		mu.Unlock()
		j.checkpoint(func(c *checkpoint) { c.Segments = cur })
	}
	defer save()
	ctx, cancel := context.WithCancelCause(j.ctx)
	// A stream closed in the middle of its transfer (no ABOR) still has it tied to ctx, whose
	// end breaks the session: ctx ends once those sessions have said QUIT (in the background,
	// as the job waits for; a failure or the job's end ends it at once).
	var closes sync.WaitGroup
	defer j.closing.Go(func() { closes.Wait(); cancel(nil) })
	closeStream := func(s Session) {
		closes.Add(1)
		j.closing.Go(func() { defer closes.Done(); s.Close() })
	}
	stopSaver := make(chan struct{})
	var saver sync.WaitGroup
	saver.Go(func() {
		t := time.NewTicker(segmentSave)
		defer t.Stop()
		for {
			select {
			case <-stopSaver:
				return
			case <-t.C:
				save()
			}
		}
	})
	defer func() { close(stopSaver); saver.Wait() }()

	// Upload: the first range's STOR truncates the part; the others wait for it to be open.
	gate := make(chan struct{})
	var gateOnce sync.Once
	opened := func() { gateOnce.Do(func() { close(gate) }) }
	defer opened() // whatever happens, nobody waits for it after the end
	if !write || !firstLeft {
		opened()
	}

	queue := make(chan *liveSeg, len(pending))
	for _, i := range pending {
		queue <- live[i]
	}
	close(queue)
	// next is a session's next range: a pending one, else the second half of the range with
	// the most left (that range's writer stops at the new end).
	next := func() *liveSeg {
		if ls, ok := <-queue; ok {
			return ls
		}
		mu.Lock()
		defer mu.Unlock()
		ls := steal(live, time.Now())
		if ls != nil {
			live = append(live, ls)
		}
		return ls
	}
	// whole runs once every range is in, as soon as they are (a session may still be busy
	// with the idle work): finished, then a checkpoint of the whole file, so an agent stopped
	// from then on resumes with nothing left to move.
	var wholeOnce sync.Once
	whole := func() {
		wholeOnce.Do(func() {
			if finished != nil {
				finished() // before the checkpoint's sync
			}
			save()
		})
	}
	allIn := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ls := range live {
			if ls.end-ls.start != ls.done.Load() {
				return false
			}
		}
		return true
	}
	var emu sync.Mutex
	var firstErr error
	fail := func(err error) {
		emu.Lock()
		if firstErr == nil || (errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled)) {
			firstErr = err
		}
		emu.Unlock()
		cancel(err)
	}
	work := func(s Session, ls *liveSeg) {
		moved := false // a stream's session takes the idle work only after a range of its own
		for {
			if ls == nil {
				if (s == c || moved) && idle.take(s) {
					idle.do(ctx, s)
				}
				if ls = next(); ls == nil {
					return
				}
			}
			moved = true
			mu.Lock()
			ls.since, ls.base = time.Now(), ls.done.Load()
			ls.first.Store(0)
			mu.Unlock()
			// A stream with no range left to take (none pending, none worth splitting) is
			// closed after this one: it stops here. The job's session c is always kept.
			spent := false
			keep := func() bool {
				if s == c || write {
					return true
				}
				mu.Lock()
				victim, _ := stealPoint(live, time.Now())
				more := len(queue) > 0 || victim != nil
				mu.Unlock()
				if !more && idle.pending() {
					return true // ABOR: this session may take the idle work next
				}
				spent = !more
				return more
			}
			if err := move(ctx, s, ls, &mu, keep, opened); err != nil {
				if !errors.Is(err, errSessionSpent) {
					fail(err)
				}
				return
			}
			ls = nil
			if allIn() {
				whole()
			}
			if spent || ctx.Err() != nil {
				return
			}
		}
	}
	var wg sync.WaitGroup
	var start *liveSeg
	if firstLeft {
		start = live[first]
	}
	wg.Go(func() { work(c, start) })
	extra := min(n, len(pending)+1) - 1
	if extra > 0 {
		wg.Go(func() {
			// Each session starts on its range as soon as it is up, not once all are.
			opened := 0
			for s := range j.streamSessions(ctx, extra, write) {
				opened++
				wg.Go(func() {
					defer closeStream(s)
					select {
					case <-gate:
					case <-ctx.Done():
						return
					}
					work(s, nil)
				})
			}
			j.update(func(s *Snapshot) { s.Streams = opened + 1 })
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if j.ctx.Err() != nil {
		return context.Cause(j.ctx)
	}
	for _, ls := range live {
		if ls.end-ls.start != ls.done.Load() {
			return fmt.Errorf("range %d-%d: %d of %d bytes moved", ls.start, ls.end, ls.done.Load(), ls.end-ls.start)
		}
	}
	whole()
	return nil
}

// loginsGranter is a Peers whose grants can allow several logins (agent/server.Peers).
type loginsGranter interface {
	GrantLogins(ctx context.Context, agentAddr, path string, write bool, logins int) (Grant, error)
}

var errSingleUse = errors.New("peer grants single-use credentials only")

// GrantLogins checks the peer's address, then asks it for a credential good for logins logins.
func (pp policyPeers) GrantLogins(ctx context.Context, agentAddr, path string, write bool, logins int) (Grant, error) {
	if err := pp.p.Check(ctx, agentAddr); err != nil {
		return Grant{}, err
	}
	lg, ok := pp.Peers.(loginsGranter)
	if !ok {
		return Grant{}, errSingleUse
	}
	return lg.GrantLogins(ctx, agentAddr, path, write, logins)
}

// extraSessions opens up to k more sessions to the job's remote (parallel ranges, a tree's
// files), at once,
// in the job's current mode. A peer agent is asked for one credential good for k logins (a
// grant per session from an agent without them); these sessions do not count against
// --max-sessions-per-host, as the peer bounds them itself (its grant, its per-address
// connection limit). Sessions to other FTP servers each need a free slot of that limit, taken
// without waiting: the file moves over as many as it gets. Failures only mean fewer streams.
func (j *job) extraSessions(ctx context.Context, k int, write bool) []Session {
	r := j.plan.remote()
	d := j.m.dialer
	j.mu.Lock()
	mode := j.snap.Mode
	j.mu.Unlock()
	if mode == ModeAuto {
		mode = ModePassive
	}
	var shared *netcheck.Login
	if r.Kind == KindAgent {
		if g := j.attemptGrant(); g != nil && j.takeLogins(k) {
			// The job's own grant allows these logins: no second grant.
			if l, err := d.grantLogin(*g); err == nil {
				shared = &l
			}
		} else if lg, ok := d.peers.(loginsGranter); ok {
			g, err := lg.GrantLogins(ctx, r.Host, r.Path, write, k)
			if err == nil && g.Logins >= k {
				if l, err := d.grantLogin(g); err == nil {
					shared = &l
				}
			} else if err != nil {
				j.m.log.Debug("multi-login grant failed; one grant per stream", "peer", r.Host, "err", err)
			}
		}
	} else {
		l, err := d.login(ctx, r, write)
		if err != nil {
			return nil
		}
		shared = &l
	}
	out := make([]Session, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			l := shared
			if l == nil {
				x, err := d.login(ctx, r, write)
				if err != nil {
					j.m.log.Debug("parallel stream: no login", "peer", r.Host, "err", err)
					return
				}
				l = &x
			}
			cfg := d.loginConfig(*l, mode)
			var release func()
			if r.Kind != KindAgent {
				slot := d.hosts.get(l.Addr)
				if !slot.tryAcquire() {
					return
				}
				release = slot.release
			}
			s, err := d.connectHeld(ctx, cfg, l.Addr, release)
			if err != nil {
				j.m.log.Debug("parallel stream: session failed", "addr", l.Addr, "err", err)
				return
			}
			out[i] = s
		})
	}
	wg.Wait()
	got := out[:0]
	for _, s := range out {
		if s != nil {
			got = append(got, s)
		}
	}
	if len(got) < k {
		j.m.log.Info("fewer parallel sessions than planned", "id", j.id(), "planned", k+1, "open", len(got)+1)
	}
	return got
}

// tryAcquire takes a slot if one is free and nobody waits, without waiting.
func (s *slots) tryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used < s.max && len(s.waiters) == 0 {
		s.used++
		return true
	}
	return false
}
