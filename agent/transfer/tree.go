package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/treestream"
)

// Trees: between agents a whole tree flows through one data connection (the XTREE extension,
// agent/treestream); with other servers, a pool of sessions moves its files, each session
// reused from file to file.

// treeEnds are the two roots of a tree transfer and the job's session.
type treeEnds struct {
	c      Session
	remote string // the tree's root on the server
	local  string // its root under this agent's root
	upload bool
	// listed is the whole remote tree a download's files were selected from (what a tree
	// stream sends unless told otherwise).
	listed tree
}

// treeWorkers is the most sessions a tree moves over with servers without the tree stream
// (their --max-sessions-per-host slots bound it further).
const treeWorkers = 4

// treeStreamer is a session that can carry a tree stream (*ftpclient.Client).
type treeStreamer interface {
	HasTree() bool
	TreeRetr(ctx context.Context, dir string) (io.ReadCloser, error)
	TreeStor(ctx context.Context, dir string) (io.WriteCloser, error)
	TreeList(ctx context.Context, dir string) (io.ReadCloser, error)
	StatTree(ctx context.Context, p string) (ftpclient.Entry, io.ReadCloser, error)
}

// listTree lists the remote tree under root: over one data connection from a Ferry agent
// (XTREE LIST: names of any bytes, no round trip per directory), else with walkRemote.
func (j *job) listTree(c Session, root string) (tree, error) {
	ts, ok := streamerOf(c)
	if !ok {
		return walkRemote(j.ctx, c, root)
	}
	r, err := ts.TreeList(j.ctx, root)
	if err != nil {
		return tree{}, fmt.Errorf("list %s: %w", root, err)
	}
	entries, err := treestream.ReadList(r)
	if err == nil {
		err = endStream(r)
	} else {
		r.Close()
	}
	if err != nil {
		return tree{}, fmt.Errorf("list %s: %w", root, err)
	}
	return treeOf(entries), nil
}

// treeOf is the tree of a listing: a peer's XTREE LIST or a local treestream.Walk.
func treeOf(entries []treestream.Entry) tree {
	t := tree{walked: entries}
	for _, e := range entries {
		if e.Dir {
			t.dirs = append(t.dirs, e.Rel)
			continue
		}
		t.files = append(t.files, treeFile{rel: e.Rel, size: e.Size, mtime: e.MTime})
		t.bytes += e.Size
	}
	return t
}

// treeSelector is a session to an agent that takes a selection before a tree stream.
type treeSelector interface {
	HasTreeSel() bool
	TreeSel(ctx context.Context, dir string, rels []string) error
}

// selectWorth reports whether sending the selection (one more data connection) beats receiving
// and dropping the files of the listed tree not in todo: when they are at least half its
// bytes, or 4 MiB, or all its files.
func selectWorth(t tree, todo []treeFile) bool {
	if len(todo) >= len(t.files) {
		return false
	}
	var want int64
	for _, f := range todo {
		want += f.size
	}
	drop := t.bytes - want
	return drop >= 4<<20 || drop*2 >= t.bytes
}

func streamerOf(s Session) (treeStreamer, bool) {
	ts, ok := unheld(s).(treeStreamer)
	if !ok || !ts.HasTree() {
		return nil, false
	}
	return ts, true
}

// streamTree moves the files todo (and t's directories) as one tree stream when the server
// offers it; used is false when it does not (the caller moves the files one by one).
func (j *job) streamTree(t tree, todo []treeFile, ends treeEnds) (used bool, err error) {
	if ends.c == nil {
		return false, nil
	}
	ts, ok := streamerOf(ends.c)
	if !ok {
		return false, nil
	}
	j.update(func(s *Snapshot) { s.CurrentFile = "(tree stream)" })
	if ends.upload {
		return true, j.sendTree(ts, t, todo, ends)
	}
	return true, j.recvTree(ts, t, todo, ends)
}

// published records one tree file at its final name.
func (j *job) published(rel string, size int64) {
	j.base.Add(size)
	j.mu.Lock()
	j.check.Done = append(j.check.Done, rel)
	j.mu.Unlock()
	j.update(func(s *Snapshot) { s.FilesDone++ })
}

// endStream closes a tree stream read up to its end record. The server closes the data
// connection right after that record, so reading on to EOF (no byte is expected) lets Close
// read the transfer's 226 at once, where closing earlier would abort it (ABOR and its replies:
// a round trip more per stream).
func endStream(r io.ReadCloser) error {
	n, err := io.Copy(io.Discard, io.LimitReader(r, 1<<10))
	if err == nil && n > 0 {
		err = fmt.Errorf("treestream: data after the end record")
	}
	if err != nil {
		r.Close()
		return err
	}
	return r.Close()
}

// foldable reports whether a tree download may skip listing the remote tree first, the tree
// stream's own records (path, size, mode, time and SHA-256 of each file, the totals in its
// header) being all the transfer needs: no glob or filter selects files, and no option
// compares with the destination, or the destination does not exist yet (every file is then
// new, nothing is deleted). A dry run always lists, and so does a resume.
func (j *job) foldable(glob, final string) bool {
	o := j.spec.Options
	j.mu.Lock()
	resuming := len(j.check.Done) > 0
	j.mu.Unlock()
	switch {
	case glob != "" || len(o.Include) > 0 || len(o.Exclude) > 0 || o.DryRun:
		return false
	case resuming:
		// Files already published: the listing lets the agent be asked for the rest alone
		// (XTREE SEL), where the folded stream would send every file again.
		return false
	case o.compares():
		_, err := j.m.root.Stat(final)
		return errors.Is(err, fs.ErrNotExist)
	}
	return true
}

// statSource stats a download's source: as the peer agent's grant described it when from is
// the granted path (no round trip; a directory's stream is then opened by the folded path),
// else as the FTP server does. When the source may be a tree the folded path would take (a
// directory landing where foldable allows), a Ferry agent is asked for its stream in the same
// flight as the stat (StatTree): r is then the stream under way, or nil.
func (j *job) statSource(c Session, from, glob string) (ftpclient.Entry, io.ReadCloser, error) {
	if gp := j.described(j.attemptGrant(), from); gp != nil && gp.Exists {
		return ftpclient.Entry{Name: path.Base(from), Size: gp.Size, ModTime: gp.ModTime, IsDir: gp.IsDir}, nil, nil
	}
	ts, ok := streamerOf(c)
	if !ok || !j.foldable(glob, landing(j.plan.src, j.plan.dst, j.m.localIsDir(j.plan.dst.Path), true)) {
		st, err := c.Stat(j.ctx, from)
		return st, nil, err
	}
	return ts.StatTree(j.ctx, from)
}

// recvTreeFolded downloads the tree under from into final as one tree stream, without listing
// it first (one data connection per tree, not two). The stream's header gives the totals;
// each file is checked against its SHA-256 before it takes its final name, as in recvTree.
// r, if set, is the stream StatTree opened. It is the first attempt's path: a retry with files
// already published lists the tree, to be sent the rest alone (foldable).
func (j *job) recvTreeFolded(ts treeStreamer, from, final string, r io.ReadCloser) error {
	if err := j.m.root.MkdirAll(final, 0o755); err != nil {
		if r != nil {
			r.Close()
		}
		return fmt.Errorf("destination: %w", err)
	}
	j.update(func(s *Snapshot) { s.CurrentFile = "(tree stream)" })
	if r == nil {
		var err error
		if r, err = ts.TreeRetr(j.ctx, from); err != nil {
			return fmt.Errorf("tree %s: %w", from, err)
		}
	}
	start := time.Now()
	res, err := j.receiveStream(r, from, final, nil, func(files, bytes int64) {
		j.base.Store(0)
		j.bytes.Store(0)
		j.update(func(s *Snapshot) { s.FilesTotal, s.BytesTotal, s.FilesDone = files, bytes, 0 })
	})
	if err != nil {
		return err
	}
	j.m.log.Debug("tree stream received", "id", j.id(), "files", res.Files, "bytes", res.Bytes,
		"took", time.Since(start).Round(time.Millisecond), "synced", res.Synced.Round(time.Millisecond))
	j.bytes.Store(j.base.Load())
	j.update(func(s *Snapshot) { s.Verified = s.FilesTotal > 0 })
	return nil
}

func (j *job) recvTree(ts treeStreamer, t tree, todo []treeFile, ends treeEnds) error {
	want := make(map[string]bool, len(todo)+len(t.dirs))
	for _, f := range todo {
		want[f.rel] = true
	}
	for _, d := range t.dirs {
		want[d+"/"] = true
	}
	if err := j.m.root.MkdirAll(ends.local, 0o755); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if sel, ok := ts.(treeSelector); ok && sel.HasTreeSel() && selectWorth(ends.listed, todo) {
		// Only the files todo cross the link (a sync of a mostly unchanged tree, a resume).
		rels := make([]string, len(todo))
		for i, f := range todo {
			rels[i] = f.rel
		}
		if err := sel.TreeSel(j.ctx, ends.remote, rels); err != nil {
			return fmt.Errorf("tree %s: %w", ends.remote, err)
		}
	}
	r, err := ts.TreeRetr(j.ctx, ends.remote)
	if err != nil {
		return fmt.Errorf("tree %s: %w", ends.remote, err)
	}
	res, err := j.receiveStream(r, ends.remote, ends.local, func(rel string) bool { return want[rel] }, nil)
	if err != nil {
		return err
	}
	if res.Files != int64(len(todo)) {
		return fmt.Errorf("tree %s: %d of the %d files listed were sent (the tree changed?)", ends.remote, res.Files, len(todo))
	}
	return nil
}

// receiveStream receives the tree stream r (of the remote directory remote) under local: part
// names, durability (one sync of the root per batch), progress, publication and the hooks'
// veto before each final name are the job's; want, when set, selects the files kept, and totals
// is told of the stream's header. It reads r to its end (endStream) and closes it.
func (j *job) receiveStream(r io.ReadCloser, remote, local string, want func(rel string) bool, totals func(files, bytes int64)) (treestream.Result, error) {
	var syncFn func() error
	if d, ok := j.m.root.(interface{ Dir() string }); ok {
		syncFn = treestream.SyncDir(d.Dir())
	}
	res, err := treestream.Receive(r, j.m.root, local, treestream.Options{
		PartName:  j.partName,
		Want:      want,
		Totals:    totals,
		Sync:      syncFn,
		Progress:  j.add,
		Published: j.published,
		// Hooks may veto each file before it takes its final name, as for single files.
		BeforePublish: func(_, final string) error { return j.beforePublish(final) },
	})
	if err != nil {
		r.Close()
		return res, fmt.Errorf("tree %s: %w", remote, err)
	}
	if err := endStream(r); err != nil {
		return res, fmt.Errorf("tree %s: %w", remote, err)
	}
	return res, nil
}

// walkedEntries are the stream's entries for the files todo of t, as the walk that made t saw
// them (no stat each); ok is false when t was not walked here or todo is not a subsequence of
// its files (the caller stats them).
func walkedEntries(t tree, todo []treeFile) (entries []treestream.Entry, ok bool) {
	if t.walked == nil {
		return nil, false
	}
	entries = make([]treestream.Entry, 0, len(t.dirs)+len(todo))
	i := 0
	for _, e := range t.walked {
		switch {
		case e.Dir:
			entries = append(entries, e)
		case i < len(todo) && todo[i].rel == e.Rel:
			entries = append(entries, e)
			i++
		}
	}
	return entries, i == len(todo)
}

func (j *job) sendTree(ts treeStreamer, t tree, todo []treeFile, ends treeEnds) error {
	entries, ok := walkedEntries(t, todo)
	if !ok {
		var err error
		if entries, err = j.statEntries(t, todo, ends); err != nil {
			return err
		}
	}
	w, err := ts.TreeStor(j.ctx, ends.remote)
	if err != nil {
		return fmt.Errorf("tree %s: %w", ends.remote, err)
	}
	err = treestream.Send(w, j.m.root, ends.local, entries, j.add)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tree %s: %w", ends.remote, err)
	}
	// The agent answered 226 only once every file passed its SHA-256 check and was published.
	for _, e := range entries {
		if !e.Dir {
			j.published(e.Rel, e.Size)
		}
	}
	return nil
}

// statEntries are the stream's entries for t's directories and the files todo, each stat'ed.
func (j *job) statEntries(t tree, todo []treeFile, ends treeEnds) ([]treestream.Entry, error) {
	entries := make([]treestream.Entry, 0, len(t.dirs)+len(todo))
	for _, d := range t.dirs {
		fi, err := j.m.root.Stat(path.Join(ends.local, d))
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		entries = append(entries, treestream.Entry{Rel: d, Dir: true, Mode: fi.Mode().Perm(), MTime: fi.ModTime()})
	}
	for _, f := range todo {
		fi, err := j.m.root.Stat(path.Join(ends.local, f.rel))
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		entries = append(entries, treestream.Entry{Rel: f.rel, Size: fi.Size(), Mode: fi.Mode().Perm(), MTime: fi.ModTime()})
	}
	return entries, nil
}

// treePool moves files with move over up to treeWorkers sessions at once: the job's session
// and more opened for the purpose (see extraSessions), each taking the next file when done
// with one. The first failure stops the pool (files under way finish or fail); it is the
// error. verified is whether every file was.
func (j *job) treePool(ends treeEnds, files []treeFile, move func(s Session, f treeFile) (bool, error)) (verified bool, err error) {
	if len(files) == 0 {
		return true, nil
	}
	queue := make(chan treeFile, len(files))
	for _, f := range files {
		queue <- f
	}
	close(queue)
	ctx, cancel := context.WithCancelCause(j.ctx)
	defer cancel(nil)
	var all atomic.Bool
	all.Store(true)
	var mu sync.Mutex
	var first error
	worker := func(s Session) {
		for f := range queue {
			if ctx.Err() != nil {
				return
			}
			v, err := move(s, f)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel(err)
				return
			}
			if !v {
				all.Store(false)
			}
			j.published(f.rel, f.size)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { worker(ends.c) })
	if k := min(treeWorkers, len(files)) - 1; k > 0 {
		wg.Go(func() {
			for _, s := range j.extraSessions(ctx, k, ends.upload) {
				wg.Go(func() {
					defer s.Close()
					worker(s)
				})
			}
		})
	}
	wg.Wait()
	if first != nil {
		return false, first
	}
	if err := j.ctx.Err(); err != nil {
		return false, context.Cause(j.ctx)
	}
	if errors.Is(context.Cause(ctx), context.Canceled) && len(queue) > 0 {
		return false, context.Cause(ctx)
	}
	return all.Load(), nil
}
