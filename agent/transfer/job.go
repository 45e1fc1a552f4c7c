package transfer

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// plan is a validated request.
type plan struct {
	src, dst Endpoint
	dir      Direction
	mode     Mode
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

func (m *Manager) plan(req Request) (plan, error) {
	src, err := ParseEndpoint("source", req.Source)
	if err != nil {
		return plan{}, err
	}
	dst, err := ParseEndpoint("destination", req.Destination)
	if err != nil {
		return plan{}, err
	}
	p := plan{src: src, dst: dst, mode: req.Mode}
	if !req.ModeSet {
		p.mode = m.cfg.DefaultMode
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
		if _, err := m.root.Stat(src.Path); err != nil {
			return plan{}, invalid("source", fmt.Sprintf("%q does not exist under the agent root", src.Path))
		}
	default:
		p.dir = Download
	}
	if err := m.canReach(fieldOf(p, p.remote()), p.remote()); err != nil {
		return plan{}, err
	}
	return p, nil
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
	plan      plan
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	cancelled atomic.Bool
	b         *broadcaster
	bytes     atomic.Int64 // bytes moved, added by the copy loop's counting wrapper

	mu    sync.Mutex
	snap  Snapshot
	dirty bool // snap has changes not yet published
}

// update changes the job's snapshot. A change of state is published at once; any other change
// (totals, current file, files done) waits for the next progress tick, so watchers get a few
// snapshots a second at most however many small files a tree has.
func (j *job) update(f func(s *Snapshot)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	before := j.snap.State
	f(&j.snap)
	j.snap.BytesDone = j.bytes.Load()
	j.dirty = true
	if j.snap.State != before {
		j.publishLocked()
	}
}

func (j *job) publishLocked() {
	j.dirty = false
	j.b.publish(j.snap)
}

func (j *job) run() {
	defer close(j.done)
	j.update(func(s *Snapshot) { s.State, s.Started = StateRunning, time.Now() })
	stop := j.sample()
	err := j.protect(j.execute)
	stop()
	j.update(func(s *Snapshot) {
		s.Finished = time.Now()
		s.Rate, s.ETA, s.CurrentFile = 0, -1, ""
		if el := s.Finished.Sub(s.Started).Seconds(); el > 0 {
			s.Rate = float64(j.bytes.Load()) / el
		}
		switch {
		case err == nil:
			s.State = StateSucceeded
			s.ETA = 0
		case j.ctx.Err() != nil:
			s.State = StateCancelled
			s.Err = "by request"
			if !j.cancelled.Load() {
				s.Err = "the agent shut down"
			}
		default:
			s.State = StateFailed
			s.Err = oneLine(err.Error())
		}
	})
	if err != nil && !j.cancelled.Load() {
		j.m.log.Warn("transfer failed", "id", j.snap.ID, "source", j.snap.Source, "destination", j.snap.Destination, "err", err)
	} else {
		j.m.log.Info("transfer ended", "id", j.snap.ID, "state", j.b.snapshot().State.String(), "bytes", j.bytes.Load())
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

// sample publishes progress every Tick while the job runs; it returns a function that stops it.
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
				rate := meter.sample(n, now)
				j.mu.Lock()
				if n != last || j.dirty {
					last = n
					j.snap.BytesDone, j.snap.Rate = n, rate
					j.snap.ETA = eta(n, j.snap.BytesTotal, rate)
					j.publishLocked()
				}
				j.mu.Unlock()
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// execute runs the transfer in the requested mode, or finds a way in auto mode (auto.go).
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
	c, err := j.m.dial(j.ctx, j.plan.remote(), mode, j.plan.dir == Upload, probe)
	if err != nil {
		return err
	}
	defer c.Close()
	if j.plan.dir == Download {
		return j.download(c)
	}
	return j.upload(c)
}

// connect opens an FTP session to the job's remote endpoint.
func (j *job) connect(ctx context.Context, mode Mode) (*ftpclient.Client, error) {
	return j.m.dial(ctx, j.plan.remote(), mode, j.plan.dir == Upload, false)
}

// download moves a remote file or tree under the local root.
func (j *job) download(c *ftpclient.Client) error {
	src := j.plan.src
	st, err := c.Stat(j.ctx, src.Path)
	if err != nil {
		return fmt.Errorf("source %s: %w", src.Path, err)
	}
	final := j.localFinal()
	if !st.IsDir {
		return j.moveFile(st.Size, func() (string, bool, error) {
			return j.getFile(c, src.Path, final, st.Size, path.Base(src.Path))
		})
	}
	tree, err := walkRemote(j.ctx, c, src.Path)
	if err != nil {
		return err
	}
	return j.moveTree(tree, func(rel string) error {
		return j.m.root.MkdirAll(path.Join(final, rel), 0o755)
	}, func(f treeFile) (bool, error) {
		_, verified, err := j.getFile(c, path.Join(src.Path, f.rel), path.Join(final, f.rel), f.size, f.rel)
		return verified, err
	})
}

// upload moves a local file or tree to the remote server.
func (j *job) upload(c *ftpclient.Client) error {
	src, dst := j.plan.src, j.plan.dst
	st, err := j.m.root.Stat(src.Path)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	final := dst.Path
	if dst.Dir || dst.Path == "." {
		final = path.Join(dst.Path, path.Base(src.Path))
	} else if rst, err := c.Stat(j.ctx, dst.Path); err == nil && rst.IsDir {
		final = path.Join(dst.Path, path.Base(src.Path))
	}
	if !st.IsDir() {
		if parent := path.Dir(final); parent != "." && parent != "/" {
			if err := c.MkdirAll(j.ctx, parent); err != nil {
				return fmt.Errorf("destination: %w", err)
			}
		}
		return j.moveFile(st.Size(), func() (string, bool, error) {
			return j.putFile(c, src.Path, final, path.Base(src.Path))
		})
	}
	tree, err := j.walkLocal(src.Path)
	if err != nil {
		return err
	}
	return j.moveTree(tree, func(rel string) error {
		return c.MkdirAll(j.ctx, path.Join(final, rel))
	}, func(f treeFile) (bool, error) {
		_, verified, err := j.putFile(c, path.Join(src.Path, f.rel), path.Join(final, f.rel), f.rel)
		return verified, err
	})
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

// moveTree creates the tree's root and directories at the destination with mkdir, then moves its
// files one by one with move, counting them; the tree is verified when every file was.
func (j *job) moveTree(t tree, mkdir func(rel string) error, move func(f treeFile) (verified bool, err error)) error {
	j.update(func(s *Snapshot) { s.FilesTotal, s.BytesTotal = int64(len(t.files)), t.bytes })
	for _, d := range append([]string{"."}, t.dirs...) {
		if err := mkdir(d); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
	}
	all := true
	for _, f := range t.files {
		verified, err := move(f)
		if err != nil {
			return err
		}
		all = all && verified
		j.update(func(s *Snapshot) { s.FilesDone++ })
	}
	j.update(func(s *Snapshot) { s.Verified = all && len(t.files) > 0 })
	return nil
}

// localFinal is where a download lands: the destination as given, or the source's name inside
// it when the destination is a directory ("in/", the root, or an existing directory).
func (j *job) localFinal() string {
	src, dst := j.plan.src, j.plan.dst
	if dst.Dir || dst.Path == "." || j.localIsDir(dst.Path) {
		return path.Join(dst.Path, path.Base(src.Path))
	}
	return dst.Path
}

func (j *job) localIsDir(p string) bool {
	fi, err := j.m.root.Stat(p)
	return err == nil && fi.IsDir()
}

// tree is a directory listing flattened to relative paths, parents before children.
type tree struct {
	dirs  []string
	files []treeFile
	bytes int64
}

type treeFile struct {
	rel  string
	size int64
}

// maxDepth bounds directory recursion (a symlink loop on a server must not run forever).
const maxDepth = 64

func walkRemote(ctx context.Context, c *ftpclient.Client, root string) (tree, error) {
	var t tree
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("source %s: directory tree deeper than %d levels", root, maxDepth)
		}
		entries, err := c.List(ctx, path.Join(root, rel))
		if err != nil {
			return fmt.Errorf("list %s: %w", path.Join(root, rel), err)
		}
		for _, e := range entries {
			if e.Name == "." || e.Name == ".." || strings.Contains(e.Name, "/") {
				continue
			}
			r := path.Join(rel, e.Name)
			if e.IsDir {
				t.dirs = append(t.dirs, r)
				if err := walk(r, depth+1); err != nil {
					return err
				}
				continue
			}
			t.files = append(t.files, treeFile{rel: r, size: e.Size})
			t.bytes += e.Size
		}
		return nil
	}
	return t, walk("", 0)
}

func (j *job) walkLocal(root string) (tree, error) {
	var t tree
	err := fs.WalkDir(j.m.root.FS(), root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := strings.TrimPrefix(p, root+"/")
		if root == "." {
			rel = p
		}
		switch {
		case d.IsDir():
			t.dirs = append(t.dirs, rel)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.files = append(t.files, treeFile{rel: rel, size: fi.Size()})
			t.bytes += fi.Size()
		}
		return nil // symlinks and special files are skipped
	})
	if err != nil {
		return tree{}, fmt.Errorf("source: %w", err)
	}
	return t, nil
}
