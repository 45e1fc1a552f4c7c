package transfer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
	"github.com/ferry-dev/ferry/agent/treestream"
)

// plan is a validated request.
type plan struct {
	src, dst Endpoint
	dir      Direction
	mode     Mode
	// key names the pair of endpoints: part files are named after it, so a new copy with the
	// same source and destination resumes what a failed one left.
	key string
	// destKey names the destination: at most one unfinished job writes it.
	destKey string
}

func (p plan) local() Endpoint {
	if p.dir == Download {
		return p.dst
	}
	return p.src
}

func (p plan) remote() Endpoint {
	if p.dir == Download {
		return p.src
	}
	return p.dst
}

func (m *Manager) plan(spec Spec) (plan, error) {
	src, err := ParseEndpoint("source", spec.Source)
	if err != nil {
		return plan{}, err
	}
	dst, err := ParseEndpoint("destination", spec.Destination)
	if err != nil {
		return plan{}, err
	}
	p := plan{src: src, dst: dst, mode: spec.Mode}
	if err := checkStreams(spec.Streams); err != nil {
		return plan{}, err
	}
	if !spec.ModeSet {
		p.mode = m.cfg.DefaultMode
	}
	if err := planOptions(spec, src, dst); err != nil {
		return plan{}, err
	}
	if p.mode < ModeAuto || p.mode > ModeActive {
		return plan{}, invalid("mode", fmt.Sprintf("unknown mode %d", p.mode))
	}
	switch {
	case src.Kind == KindLocal && dst.Kind == KindLocal:
		return plan{}, invalid("destination", "source and destination are both paths on this agent; one of them must be an ftp:// or agent:// URL")
	case src.Kind != KindLocal && dst.Kind != KindLocal:
		return plan{}, invalid("destination", "one of source and destination must be a path under this agent's root (server-to-server FTP is not supported)")
	case src.Kind == KindLocal:
		p.dir = Upload
		root, _ := sourceRoot(src)
		if _, err := m.root.Stat(root); err != nil {
			return plan{}, WithKind(ErrNotFound, fmt.Errorf("source: %q does not exist under the agent root", root))
		}
	default:
		p.dir = Download
	}
	if err := m.canReach(fieldOf(p, p.remote()), p.remote()); err != nil {
		return plan{}, err
	}
	if spec.TLSPin != "" {
		if err := p.pin(spec.TLSPin); err != nil {
			return plan{}, err
		}
	}
	p.key = jobKey(src, dst)
	// The destination as it will be written (for an upload, before the server says whether the
	// destination is an existing directory).
	if p.dir == Download {
		p.destKey = "local:" + landing(src, dst, m.localIsDir(dst.Path), src.Dir || hasGlob(src.Path))
	} else {
		p.destKey = "remote:" + dst.Host + ":" + landing(src, dst, false, m.localIsDir(src.Path) || hasGlob(src.Path))
	}
	return p, nil
}

// jobKey names a pair of endpoints by where they are, not by whose credentials reach them: a
// changed password, or the next one-time login of a reversed transfer, is the same job.
func jobKey(src, dst Endpoint) string { return src.place() + "\x00" + dst.place() }

// specKey is the jobKey of a spec's endpoints (parsed only: nothing is looked at).
func specKey(spec Spec) (string, error) {
	src, err := ParseEndpoint("source", spec.Source)
	if err != nil {
		return "", err
	}
	dst, err := ParseEndpoint("destination", spec.Destination)
	if err != nil {
		return "", err
	}
	return jobKey(src, dst), nil
}

// PartFile is the part file name under which a transfer from source to destination writes
// final (a root-relative path on the receiving side): what a resume looks for.
func PartFile(source, destination, final string) (string, error) {
	key, err := specKey(Spec{Source: source, Destination: destination})
	if err != nil {
		return "", err
	}
	return storage.PartName(final, key), nil
}

func fieldOf(p plan, e Endpoint) string {
	if e.raw == p.src.raw {
		return "source"
	}
	return "destination"
}

// job is one transfer. Its mutable snapshot is guarded by mu; watchers read published copies.
type job struct {
	m         *Manager
	spec      Spec
	plan      plan
	ctx       context.Context
	cancel    context.CancelCauseFunc
	done      chan struct{}
	b         *broadcaster
	restarted bool         // recovered from the store after a restart
	bytes     atomic.Int64 // bytes done (resumed, skipped or moved), as progress shows them
	sent      atomic.Int64 // bytes moved by the current attempt
	base      atomic.Int64 // bytes of the tree's files already published
	thr       throttle     // bandwidth limits (throttle.go)

	mu    sync.Mutex
	snap  Snapshot
	check checkpoint
	dirty bool // snap has changes not yet published
	saved time.Time
	// remotePart is the remote part file of the upload under way (removed on cancel).
	remotePart string
	badHash    bool // a checksum mismatch was seen: the next attempt starts over, the one after fails
	// dataSeen: a data connection of this job has carried data, so one that fails now is a
	// fault of the moment, worth a retry, not a blocked port.
	dataSeen bool
	// srcDir: the source is a directory (or a glob), known once stat'd (landing's tree rule).
	srcDir atomic.Bool
	// noHash, hashFailed: a file could not be verified (Snapshot.VerifyNote).
	noHash, hashFailed atomic.Bool
	// att: the current attempt's grant and early sessions (early.go); guarded by mu.
	att attemptState
	// closing counts the sessions closing in the background (closeLater); run waits for them
	// before the job is done.
	closing sync.WaitGroup
}

func (j *job) id() string { return j.snap.ID }

// add counts n bytes moved (called by the copy loop's counting wrappers).
func (j *job) add(n int) {
	j.bytes.Add(int64(n))
	j.sent.Add(int64(n))
}

// update changes the job's snapshot. A change of state is published (and saved) at once; any
// other change waits for the next progress tick, so watchers get a few snapshots a second at
// most however many small files a tree has.
func (j *job) update(f func(s *Snapshot)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	before := j.snap.State
	f(&j.snap)
	j.snap.BytesDone = j.bytes.Load()
	j.dirty = true
	if j.snap.State != before {
		j.publishLocked()
		j.saveOrLogLocked()
	}
}

func (j *job) publishLocked() {
	j.dirty = false
	j.b.publish(j.snap)
}

// saveLocked writes the job's record to the store. The caller holds j.mu (or owns the job
// before it starts).
func (j *job) saveLocked() error {
	j.saved = time.Now()
	if j.m.store == nil {
		return nil
	}
	b, err := encodeRecord(record{Spec: j.spec, Snap: j.snap, Check: j.check})
	if err != nil {
		return err
	}
	return j.m.store.Put(j.snap.ID, b)
}

func (j *job) saveOrLogLocked() {
	if err := j.saveLocked(); err != nil {
		j.m.log.Error("job store: could not save transfer", "id", j.snap.ID, "err", err)
	}
}

func (j *job) checkpoint(f func(c *checkpoint)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.check)
	j.saveOrLogLocked()
}

func (j *job) observe(kind EventKind, err error) {
	if j.m.obs != nil {
		j.m.obs.Observe(Event{Kind: kind, Transfer: j.b.snapshot(), Err: err})
	}
}

func (j *job) run() {
	defer close(j.done)
	defer j.cancel(nil) // release the context's resources
	// The sessions still saying QUIT (closeLater) end before the job is done, after it
	// reported its end: Manager.Close and Cancel wait for them, the result does not. Before
	// the context ends, which would break a session closed in the middle of a transfer.
	defer j.closing.Wait()
	if !j.restarted {
		j.observe(EventQueued, nil)
	}
	err := j.m.sched.acquire(j.ctx)
	if err == nil {
		err = j.started()
		j.m.sched.release()
	}
	j.finish(err)
}

// started runs the job once it has a slot: the gate, then attempts until one succeeds, a
// failure is permanent, or the retries are spent.
func (j *job) started() error {
	j.update(func(s *Snapshot) {
		s.State = StateRunning
		s.Attempt++
		if s.Started.IsZero() {
			s.Started = time.Now()
		}
	})
	j.observe(EventStarted, nil)
	if g, ok := j.m.obs.(Gate); ok {
		if err := g.BeforeStart(j.ctx, j.b.snapshot()); err != nil {
			return fmt.Errorf("refused before start: %w", err)
		}
	}
	stop := j.sample()
	defer stop()
	// Each run (a restart counts as a new one) gets the whole retry budget.
	for tries := 1; ; tries++ {
		j.sent.Store(0)
		if tries > 1 {
			j.update(func(s *Snapshot) { s.Attempt++ })
		}
		err := classify(j.protect(j.execute))
		if err == nil || j.ctx.Err() != nil {
			return err
		}
		n := j.b.snapshot().Attempt
		retry := transient(err) && tries <= j.m.cfg.Retries
		if j.sent.Load() > 0 {
			j.dataSeen = true
		}
		var dce *ftpclient.DataConnError
		if errors.As(err, &dce) && !j.dataSeen {
			// No data connection ever worked for this job: a firewall or NAT, not a passing
			// fault. Fail fast with the cause and its fix (auto mode already tried the rest).
			retry = false
		}
		if errors.Is(err, ErrChecksum) {
			// One clean retry from byte 0; a mismatch it reproduces is permanent.
			retry = retry && !j.badHash
			j.badHash = true
		}
		if !retry {
			return err
		}
		delay := j.m.backoff(tries)
		j.update(func(s *Snapshot) {
			s.LastError = userNames(oneLine(err.Error()))
			s.Rate, s.ETA = 0, -1
		})
		j.mu.Lock()
		j.saveOrLogLocked()
		j.mu.Unlock()
		j.observe(EventAttemptFailed, err)
		j.m.log.Warn("transfer attempt failed; retrying", "id", j.id(), "attempt", n, "in", delay.Round(time.Millisecond), "err", err)
		select {
		case <-j.ctx.Done():
			return context.Cause(j.ctx)
		case <-time.After(delay):
		}
	}
}

// finish records the job's end: success, failure or cancel are final; a shutdown leaves it
// queued in the store so that it goes on after the restart.
func (j *job) finish(err error) {
	cause := context.Cause(j.ctx)
	if err != nil && errShutdown(j.ctx) {
		j.mu.Lock()
		j.snap.State, j.snap.Rate, j.snap.ETA = StateQueued, 0, -1
		j.snap.BytesDone = j.bytes.Load()
		j.snap.LastError = ErrShutdown.Error()
		j.saveOrLogLocked()
		j.b.interrupt(j.snap)
		j.mu.Unlock()
		j.m.ended(j, false)
		j.m.log.Info("transfer interrupted by shutdown; it resumes after the restart", "id", j.id())
		return
	}
	cancelled := err != nil && j.ctx.Err() != nil && errors.Is(cause, context.Canceled)
	if cancelled {
		j.removeParts()
	}
	// The destination is free before anyone sees the final state: a caller that starts the
	// next transfer to it on that news must not be refused.
	j.m.ended(j, err != nil && !cancelled)
	j.update(func(s *Snapshot) {
		s.Finished = time.Now()
		s.Rate, s.ETA, s.CurrentFile, s.Phase = 0, -1, "", ""
		if el := s.Finished.Sub(s.Started).Seconds(); el > 0 && !s.Started.IsZero() {
			s.Rate = float64(j.sent.Load()) / el
		}
		switch {
		case err == nil:
			s.State, s.ETA = StateSucceeded, 0
			if s.VerifyNote == "" {
				s.VerifyNote = j.verifyNote(s)
			}
		case cancelled:
			s.State, s.Err = StateCancelled, "by request"
		default:
			s.State = StateFailed
			s.Err = userNames(oneLine(err.Error()))
			s.ErrCode = ErrorCode(err)
		}
	})
	s := j.b.snapshot()
	// One line per transfer: ids, endpoints (passwords redacted), bytes, mode, duration, result.
	line := []any{"id", s.ID, "source", s.Source, "destination", s.Destination, "bytes", s.BytesDone,
		"resumed", s.Resumed, "mode", s.Mode.String(), "reversed", s.Reversed, "attempts", s.Attempt,
		"duration", s.Finished.Sub(s.Created).Round(time.Millisecond).String(), "result", s.State.String()}
	switch s.State {
	case StateSucceeded:
		j.observe(EventSucceeded, nil)
		j.m.log.Info("transfer succeeded", append(line, "verified", s.Verified)...)
	case StateCancelled:
		j.observe(EventCancelled, err)
		j.m.log.Info("transfer cancelled", line...)
	default:
		j.observe(EventFailed, err)
		j.m.log.Warn("transfer failed", append(line, "err", err)...)
	}
}

// protect turns a panic in the job into its error, so one bad job cannot take the agent down.
func (j *job) protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return f()
}

// sample publishes progress every Tick while the job runs, and saves its checkpoint every few
// seconds; it returns a function that stops it.
func (j *job) sample() (stop func()) {
	t := time.NewTicker(j.m.cfg.Tick)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer t.Stop()
		var meter rateMeter
		last := int64(-1)
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				n := j.bytes.Load()
				rate := meter.sample(j.sent.Load(), now)
				j.mu.Lock()
				if n != last || j.dirty {
					last = n
					j.snap.BytesDone, j.snap.Rate = n, rate
					j.snap.ETA = eta(n, j.snap.BytesTotal, rate)
					j.publishLocked()
					if p, ok := j.m.obs.(ProgressObserver); ok {
						p.Progress(j.snap)
					}
				}
				if now.Sub(j.saved) > 5*time.Second {
					j.saveOrLogLocked()
				}
				j.mu.Unlock()
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// execute runs one attempt in the requested mode, or finds a way in auto mode (auto.go).
func (j *job) execute() error {
	if j.plan.mode == ModeAuto {
		return j.auto()
	}
	j.update(func(s *Snapshot) { s.Mode = j.plan.mode })
	return j.attempt(j.plan.mode, false)
}

// attempt runs the whole transfer over one FTP session in one mode; probe bounds its first data
// connection by the probe timeout (auto mode).
func (j *job) attempt(mode Mode, probe bool) error {
	c, done, err := j.dialRemote(mode, probe)
	if err != nil {
		return err
	}
	defer done()
	defer j.closeLater(c)
	if j.plan.dir == Download {
		return j.download(c)
	}
	return j.upload(c)
}

// download moves a remote file or tree under the local root.
func (j *job) download(c Session) error {
	src := j.plan.src
	from, glob := sourceRoot(src)
	st, stream, err := j.statSource(c, from, glob)
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return WithKind(ErrNotFound, fmt.Errorf("source %s: no such file or directory on %s (%w)", from, j.plan.src.Host, err))
		}
		return fmt.Errorf("source %s: %w", from, err)
	}
	j.srcDir.Store(st.IsDir || glob != "")
	final := j.localFinal()
	if !st.IsDir {
		sel, err := j.selectTree(singleTree(st.Size, st.ModTime), glob, path.Base(src.Path), j.downloadSides(c, from, final))
		if err != nil || sel.done || len(sel.tree.files) == 0 {
			return err
		}
		return j.moveFile(st.Size, func() (string, bool, error) {
			if n := j.streams(c, src.Path, st.Size); n > 1 {
				return j.getSegmented(c, src.Path, final, st.Size, st.ModTime, n, path.Base(src.Path))
			}
			return j.getFile(c, src.Path, final, st.Size, st.ModTime, path.Base(src.Path))
		})
	}
	if ts, ok := streamerOf(c); ok && j.foldable(glob, final) {
		return j.recvTreeFolded(ts, from, final, stream)
	}
	if stream != nil {
		stream.Close() // not taken after all (the destination changed meanwhile)
	}
	tree, err := j.listTree(c, from)
	if err != nil {
		return err
	}
	sel, err := j.selectTree(tree, glob, "", j.downloadSides(c, from, final))
	if err != nil || sel.done {
		return err
	}
	if err := j.moveTree(sel.tree, treeEnds{c: c, remote: from, local: final, listed: tree}, func(rel string) error {
		return j.m.root.MkdirAll(path.Join(final, rel), 0o755)
	}, func(rel string) (int64, bool) {
		fi, err := j.m.root.Stat(path.Join(final, rel))
		if err != nil || !fi.Mode().IsRegular() {
			return 0, false
		}
		return fi.Size(), true
	}, func(s Session, f treeFile) (bool, error) {
		// A tree file's part is resumed only when the server proves its prefix (range hash).
		_, verified, err := j.getFile(s, path.Join(from, f.rel), path.Join(final, f.rel), f.size, time.Time{}, f.rel)
		return verified, err
	}); err != nil {
		return err
	}
	return sel.after()
}

// upload moves a local file or tree to the remote server.
func (j *job) upload(c Session) error {
	src, dst := j.plan.src, j.plan.dst
	from, glob := sourceRoot(src)
	st, err := j.m.root.Stat(from)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	isDir := st.IsDir() || glob != ""
	j.srcDir.Store(isDir)
	final := landing(src, dst, false, isDir)
	if final == dst.Path && !isDir {
		if j.remoteIsDir(c, dst.Path) {
			final = landing(src, dst, true, isDir)
		}
	}
	if !st.IsDir() {
		sel, err := j.selectTree(singleTree(st.Size(), st.ModTime()), glob, path.Base(src.Path), j.uploadSides(c, from, final))
		if err != nil || sel.done || len(sel.tree.files) == 0 {
			return err
		}
		if parent := path.Dir(final); parent != "." && parent != "/" && !j.grantedDir(parent) {
			if err := c.MkdirAll(j.ctx, parent); err != nil {
				return fmt.Errorf("destination: %w", err)
			}
		}
		return j.moveFile(st.Size(), func() (string, bool, error) {
			if n := j.streams(c, j.partName(final), st.Size()); n > 1 {
				return j.putSegmented(c, src.Path, final, n, path.Base(src.Path))
			}
			return j.putFile(c, src.Path, final, path.Base(src.Path))
		})
	}
	tree, err := j.walkLocal(from)
	if err != nil {
		return err
	}
	sel, err := j.selectTree(tree, glob, "", j.uploadSides(c, from, final))
	if err != nil || sel.done {
		return err
	}
	if err := j.moveTree(sel.tree, treeEnds{c: c, remote: final, local: from, upload: true}, func(rel string) error {
		return c.MkdirAll(j.ctx, path.Join(final, rel))
	}, func(rel string) (int64, bool) {
		e, err := c.Stat(j.ctx, path.Join(final, rel))
		if err != nil || e.IsDir {
			return 0, false
		}
		return e.Size, true
	}, func(s Session, f treeFile) (bool, error) {
		_, verified, err := j.putFile(s, path.Join(from, f.rel), path.Join(final, f.rel), f.rel)
		return verified, err
	}); err != nil {
		return err
	}
	return sel.after()
}

// moveFile moves a single file with move, which returns its SHA-256 and whether the server
// confirmed it.
func (j *job) moveFile(size int64, move func() (sum string, verified bool, err error)) error {
	j.update(func(s *Snapshot) { s.FilesTotal, s.BytesTotal = 1, size })
	sum, verified, err := move()
	if err != nil {
		return err
	}
	j.update(func(s *Snapshot) { s.FilesDone, s.SHA256, s.Verified = 1, sum, verified })
	return nil
}

// moveTree moves a tree's files. Files an earlier attempt published (the checkpoint's Done
// list) are skipped while they still stand at the destination with their size (stat tells).
// Between agents the rest flows through one data connection (the tree stream, tree.go); with
// other servers the tree's directories are made with mkdir, then its files move with move over
// a pool of sessions, reused from file to file (treePool). The tree is verified when every file
// was.
func (j *job) moveTree(t tree, ends treeEnds, mkdir func(rel string) error, stat func(rel string) (int64, bool), move func(s Session, f treeFile) (verified bool, err error)) error {
	j.update(func(s *Snapshot) { s.FilesTotal, s.BytesTotal, s.FilesDone = int64(len(t.files)), t.bytes, 0 })
	j.mu.Lock()
	done := make(map[string]bool, len(j.check.Done))
	for _, rel := range j.check.Done {
		done[rel] = true
	}
	j.mu.Unlock()
	j.base.Store(0)
	all := true
	todo := make([]treeFile, 0, len(t.files))
	for _, f := range t.files {
		if done[f.rel] {
			if size, ok := stat(f.rel); ok && size == f.size {
				j.base.Add(f.size)
				j.bytes.Store(j.base.Load())
				j.update(func(s *Snapshot) { s.FilesDone++; s.Resumed += f.size })
				all = false // verified by an earlier attempt, not re-checked now
				continue
			}
		}
		todo = append(todo, f)
	}
	if used, err := j.streamTree(t, todo, ends); used {
		if err != nil {
			return err
		}
		j.bytes.Store(j.base.Load())
		j.update(func(s *Snapshot) { s.Verified = all && len(t.files) > 0 })
		return nil
	}
	for _, d := range append([]string{"."}, t.dirs...) {
		if err := mkdir(d); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
	}
	verified, err := j.treePool(ends, todo, move)
	if err != nil {
		return err
	}
	j.bytes.Store(j.base.Load()) // files moved side by side may each have set it from base

	j.update(func(s *Snapshot) { s.Verified = all && verified && len(t.files) > 0 })
	return nil
}

// localFinal is where a download lands: the destination as given, or the source's name inside
// it when the destination is a directory ("in/", the root, or an existing directory).
func (j *job) localFinal() string {
	return landing(j.plan.src, j.plan.dst, j.m.localIsDir(j.plan.dst.Path), j.srcDir.Load())
}

// landing is where src lands at dst. A directory source follows rsync's trailing-slash rule:
// "tree" lands as dst/tree (the directory itself, into dst), "tree/" (or the root, or a glob
// "tree/*.jpg") lands its contents in dst; either way the same on every run. A file lands at
// dst itself, or under its name inside dst when dst is a directory (a trailing "/", the root,
// or dstIsDir: an existing directory).
func landing(src, dst Endpoint, dstIsDir, srcIsDir bool) string {
	if srcIsDir {
		if src.Dir || src.Path == "." || hasGlob(src.Path) {
			return dst.Path
		}
		return path.Join(dst.Path, path.Base(src.Path))
	}
	if dst.Dir || dst.Path == "." || dstIsDir {
		return path.Join(dst.Path, path.Base(src.Path))
	}
	return dst.Path
}

func (m *Manager) localIsDir(p string) bool {
	fi, err := m.root.Stat(p)
	return err == nil && fi.IsDir()
}

// tree is a directory listing flattened to relative paths, parents before children, files in
// name order (so every attempt walks the same order).
type tree struct {
	dirs  []string
	files []treeFile
	bytes int64
	// walked is the listing the tree was made of (treeOf), nil after a selection: a local
	// walk's modes and times go into an upload's tree stream as they are.
	walked []treestream.Entry
}

type treeFile struct {
	rel   string
	size  int64
	mtime time.Time // as listed (zero if unknown): sync compares it
}

// maxDepth bounds directory recursion (a symlink loop on a server must not run forever).
const maxDepth = 64

// maxTreeEntries bounds the files and directories of one tree transfer, whatever the server
// lists: the tree is held in memory (about 100 bytes an entry).
const maxTreeEntries = treestream.MaxEntries

func walkRemote(ctx context.Context, c Session, root string) (tree, error) {
	var t tree
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("source %s: directory tree deeper than %d levels", root, maxDepth)
		}
		// Streamed: only what the tree keeps is held, not the listing as well; this
		// directory's files are appended in place, then put in name order.
		first := len(t.files)
		var dirs []string
		err := c.ListFunc(ctx, path.Join(root, rel), func(e ftpclient.Entry) error {
			if e.Name == "." || e.Name == ".." || strings.Contains(e.Name, "/") || (!e.IsDir && storage.IsPart(e.Name)) {
				return nil
			}
			if len(t.files)+len(t.dirs)+len(dirs) >= maxTreeEntries {
				return fmt.Errorf("source %s: more than %d files and directories in one transfer; copy its subdirectories separately", root, maxTreeEntries)
			}
			if e.IsDir {
				dirs = append(dirs, path.Join(rel, e.Name))
			} else {
				t.files = append(t.files, treeFile{rel: path.Join(rel, e.Name), size: e.Size, mtime: e.ModTime})
				t.bytes += e.Size
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", path.Join(root, rel), err)
		}
		mine := t.files[first:]
		sort.Slice(mine, func(a, b int) bool { return mine[a].rel < mine[b].rel })
		sort.Strings(dirs)
		for _, d := range dirs {
			t.dirs = append(t.dirs, d)
			if err := walk(d, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return t, walk("", 0)
}

// walkLocal lists a local tree as the tree stream does (treestream.Walk: part files, symbolic
// links and special files are left out; at most treestream.MaxEntries entries).
func (j *job) walkLocal(root string) (tree, error) {
	entries, err := treestream.Walk(j.m.root, root)
	if err != nil {
		return tree{}, fmt.Errorf("source: %w", err)
	}
	return treeOf(entries), nil
}
