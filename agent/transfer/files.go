package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
)

// partName is the temporary name a file of this job is written under until it is complete.
func (j *job) partName(final string) string { return storage.PartName(final, j.plan.key) }

// fresh reports whether part files must be ignored: the first attempt of a --restart job.
func (j *job) fresh() bool {
	return j.spec.Restart && j.b.snapshot().Attempt <= 1
}

// getFile downloads one remote file to final (root-relative) through its part name, resuming
// the part an earlier attempt left when its prefix is proven current; it checks the size and,
// when the server offers HASH, the SHA-256, and only then renames the part to final.
func (j *job) getFile(c Session, remote, final string, size int64, mtime time.Time, label string) (sum string, verified bool, err error) {
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
		empty := false
		if f != nil {
			if fi, serr := f.Stat(); serr == nil && fi.Size() == 0 {
				empty = true
			}
			f.Close()
		}
		if err != nil && (empty || errors.Is(err, ErrChecksum)) {
			// Nothing to resume (or a clean retry must start from byte 0).
			_ = j.m.root.Remove(tmp)
		}
	}()
	h := sha256.New()
	offset, err := j.resumeDownload(c, f, h, remote, size, mtime)
	if err != nil {
		return "", false, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "", false, fmt.Errorf("destination: %w", err)
	}
	j.bytes.Store(j.base.Load() + offset)
	if offset > 0 {
		j.update(func(s *Snapshot) { s.Resumed += offset })
	}
	if offset == 0 || offset < size {
		r, err := c.Retr(j.ctx, remote, offset)
		if err != nil {
			return "", false, fmt.Errorf("retrieve %s: %w", remote, err)
		}
		// The data goes through a few buffers; a goroutine hashes each one after it is written,
		// while the next is read (hashing off the copy's critical path).
		cp := datapath.Copier{Hash: h, Grant: j.thr.grantFunc(j.ctx), Count: j.add}
		n, err := cp.Copy(f, r)
		if err == nil {
			// Every byte is in: the wait for the final reply is the server's digest (XDIGEST).
			j.enterVerify(size)
		}
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			j.leaveVerify()
			return "", false, fmt.Errorf("retrieve %s: %w", remote, err)
		}
		if size >= 0 && offset+n != size {
			return "", false, fmt.Errorf("retrieve %s: got %d bytes, the server announced %d", remote, offset+n, size)
		}
	}
	if err := f.Sync(); err != nil {
		return "", false, fmt.Errorf("destination: %w", err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return "", false, fmt.Errorf("destination: %w", cerr)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	verified, err = j.verify(c, remote, sum, size)
	if err != nil {
		return "", false, err
	}
	if err := j.beforePublish(final); err != nil {
		return "", false, err
	}
	if err := j.m.root.Rename(tmp, final); err != nil {
		return "", false, fmt.Errorf("destination: %w", err)
	}
	return sum, verified, nil
}

// resumeDownload decides where a download's part file f goes on: its length, when the prefix
// it holds is still the source's (the server's hash of that range matches, or — for servers
// without range hashes — the source still has the size and modification time the checkpoint
// recorded); else 0, with the part truncated. h is left holding the digest of the kept prefix.
func (j *job) resumeDownload(c Session, f storage.File, h hash.Hash, remote string, size int64, mtime time.Time) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	have := fi.Size()
	single := j.plan.src.Path == remote
	if single {
		defer j.checkpoint(func(c *checkpoint) { c.SrcSize, c.SrcModTime = size, mtime })
	}
	if have > 0 && !j.fresh() && size >= 0 && have <= size {
		ok, err := j.samePrefix(c, f, h, remote, have, func() bool {
			j.mu.Lock()
			defer j.mu.Unlock()
			return single && !mtime.IsZero() && j.check.SrcSize == size && j.check.SrcModTime.Equal(mtime)
		})
		if err != nil {
			return 0, err
		}
		if ok {
			return have, nil
		}
	}
	h.Reset()
	if have > 0 {
		if err := f.Truncate(0); err != nil {
			return 0, fmt.Errorf("destination: %w", err)
		}
	}
	return 0, nil
}

// samePrefix hashes the first n bytes of local into h and tells whether the remote file starts
// with the same bytes: by the server's hash of that range when it has one, else by trusted().
func (j *job) samePrefix(c Session, local io.ReaderAt, h hash.Hash, remote string, n int64, trusted func() bool) (bool, error) {
	if _, err := datapath.HashFile(h, local, 0, n); err != nil {
		return false, fmt.Errorf("read part file: %w", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	got, err := c.HashRange(j.ctx, remote, 0, n)
	switch {
	case err == nil:
		if got != want {
			j.m.log.Info("part file differs from the source; starting over", "id", j.id(), "path", remote, "bytes", n)
		}
		return got == want, nil
	case j.ctx.Err() != nil:
		return false, j.ctx.Err()
	case !errors.Is(err, ftpclient.ErrUnsupported):
		j.m.log.Debug("range hash failed", "path", remote, "err", err)
	}
	return trusted(), nil
}

// openUpload opens the local file of an upload (label is its name in the progress) and makes
// the remote part name of final the job's remote part, removed if the job is cancelled.
func (j *job) openUpload(local, final, label string) (f storage.File, fi fs.FileInfo, tmp string, err error) {
	j.update(func(s *Snapshot) { s.CurrentFile = label })
	if f, err = j.m.root.OpenFile(local, os.O_RDONLY, 0); err != nil {
		return nil, nil, "", fmt.Errorf("source: %w", err)
	}
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, "", fmt.Errorf("source: %w", err)
	}
	tmp = j.partName(final)
	j.mu.Lock()
	j.remotePart = tmp
	j.mu.Unlock()
	return f, fi, tmp, nil
}

// putFile uploads one local file to the remote final path through its part name (resuming the
// part an earlier attempt left there when its prefix is proven current) and renames it there
// once the size and (when offered) the server's SHA-256 agree.
func (j *job) putFile(c Session, local, final, label string) (sum string, verified bool, err error) {
	f, fi, tmp, err := j.openUpload(local, final, label)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	size := fi.Size()
	defer func() {
		if errors.Is(err, ErrChecksum) {
			j.deleteRemote(c, tmp)
		}
	}()
	h := sha256.New()
	var offset int64
	if have, err := c.Size(j.ctx, tmp); err == nil && have > 0 && have <= size && !j.fresh() {
		single := j.plan.src.Path == local
		ok, err := j.samePrefix(c, f, h, tmp, have, func() bool {
			j.mu.Lock()
			defer j.mu.Unlock()
			return single && j.check.SrcSize == size && j.check.SrcModTime.Equal(fi.ModTime())
		})
		if err != nil {
			return "", false, err
		}
		if ok {
			offset = have
		} else {
			h.Reset()
		}
	}
	if j.plan.src.Path == local {
		j.checkpoint(func(c *checkpoint) { c.SrcSize, c.SrcModTime = size, fi.ModTime() })
	}
	j.bytes.Store(j.base.Load() + offset)
	if offset > 0 {
		j.update(func(s *Snapshot) { s.Resumed += offset })
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "", false, fmt.Errorf("source: %w", err)
	}
	if offset == 0 || offset < size {
		w, err := c.Stor(j.ctx, tmp, offset)
		if err != nil {
			return "", false, fmt.Errorf("store %s: %w", final, err)
		}
		// sendfile from the file (Stor's writer takes chunks of an *os.File), while a goroutine
		// hashes the same bytes from the page cache.
		hashing := datapath.Background(h, f, offset, size)
		_, err = j.sendFile(w, f, size-offset)
		if err == nil {
			j.enterVerify(size) // the wait for the final reply is the server's digest (XDIGEST)
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			hashing.Stop()
			j.leaveVerify()
			return "", false, fmt.Errorf("store %s: %w", final, err)
		}
		if _, err := hashing.Wait(); err != nil {
			return "", false, fmt.Errorf("source: %w", err)
		}
	}
	sum = hex.EncodeToString(h.Sum(nil))
	verified, err = j.verify(c, tmp, sum, size)
	if err != nil {
		return "", false, err
	}
	if !verified {
		// No HASH on the server: at least the size must be whole.
		if got, err := c.Size(j.ctx, tmp); err == nil && got != size {
			return "", false, fmt.Errorf("store %s: the server holds %d bytes, want %d", final, got, size)
		}
	}
	if err := c.Rename(j.ctx, tmp, final); err != nil {
		// Not a missing file (the part was just stored there): the name is taken, by a
		// directory say. The message names the user's file (userNames maps the part's name).
		return "", false, WithKind(ErrConflict, fmt.Errorf("store %s: the server refused to give the upload its name: %w", final, err))
	}
	j.mu.Lock()
	j.remotePart = ""
	j.mu.Unlock()
	return sum, verified, nil
}

// sendChunk is the most one sendfile step of an upload moves between two progress updates.
const sendChunk = 8 << 20

// sendFile writes the next n bytes of f to w, a chunk at a time (progress, rate limit). With the
// FTP client's writer on plain TCP each chunk is a sendfile; a source that ends early is an error.
func (j *job) sendFile(w io.Writer, f io.Reader, n int64) (int64, error) {
	var sent int64
	for sent < n {
		chunk, err := j.thr.grant(j.ctx, int(min(n-sent, sendChunk)))
		if err != nil {
			return sent, err
		}
		m, err := io.Copy(w, &io.LimitedReader{R: f, N: int64(chunk)})
		sent += m
		j.add(int(m))
		if err != nil {
			return sent, err
		}
		if m < int64(chunk) {
			return sent, fmt.Errorf("source: %w after %d of %d bytes (the file shrank)", io.ErrUnexpectedEOF, sent, n)
		}
	}
	return sent, nil
}

// verify compares the server's SHA-256 of remote with sum. A server without HASH is not an error
// (verified is false); a different digest is. A large file's hash is awaited as long as its
// size needs.
func (j *job) verify(c Session, remote, sum string, size int64) (bool, error) {
	j.enterVerify(size)
	defer j.leaveVerify()
	got, err := c.HashSize(j.ctx, remote, size)
	switch {
	case err == nil && got == sum:
		return true, nil
	case err == nil:
		return false, fmt.Errorf("%w for %s: local sha256 %s, server %s", ErrChecksum, remote, sum, got)
	case errors.Is(err, ftpclient.ErrUnsupported):
		j.noHash.Store(true)
		return false, nil
	case j.ctx.Err() != nil:
		return false, j.ctx.Err()
	default:
		j.hashFailed.Store(true)
		j.m.log.Debug("HASH failed; file not verified", "path", remote, "err", err)
		return false, nil
	}
}

// beforePublish asks a Gate observer whether a received file may take its final name.
func (j *job) beforePublish(final string) error {
	g, ok := j.m.obs.(Gate)
	if !ok {
		return nil
	}
	if err := g.BeforePublish(j.ctx, j.b.snapshot(), final); err != nil {
		return fmt.Errorf("refused before publishing %s: %w", final, err)
	}
	return nil
}

// deleteRemote removes an upload's part file, best effort: on the session if it still works,
// else on a fresh one (a new grant for an agent peer). Bounded to a few seconds.
func (j *job) deleteRemote(c Session, tmp string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c != nil {
		if err := c.Delete(ctx, tmp); err == nil {
			return
		}
	}
	j.mu.Lock()
	mode := j.snap.Mode
	j.mu.Unlock()
	if mode == ModeAuto {
		mode = ModePassive
	}
	c2, err := j.m.dialer.dial(ctx, j.plan.remote(), mode, true, false)
	if err != nil {
		j.m.log.Warn("could not remove partial upload", "path", tmp, "err", err)
		return
	}
	defer c2.Close()
	if err := c2.Delete(ctx, tmp); err != nil {
		j.m.log.Warn("could not remove partial upload", "path", tmp, "err", err)
	}
}

// removeParts deletes what a cancelled job leaves: its local part files (a download's), or the
// remote part of the file being uploaded. A failed job keeps them for the retry or a new copy.
func (j *job) removeParts() {
	j.mu.Lock()
	tmp := j.remotePart
	j.mu.Unlock()
	if j.plan.dir == Upload {
		if tmp != "" {
			j.deleteRemote(nil, tmp)
		}
		return
	}
	final := j.localFinal()
	_ = j.m.root.Remove(j.partName(final))
	if !j.m.localIsDir(final) {
		return
	}
	ending := storage.PartEnding(j.plan.key)
	_ = fs.WalkDir(j.m.root.FS(), final, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ending) {
			_ = j.m.root.Remove(p)
		}
		return nil
	})
}

// sweepParts removes part files that no job will resume: older than PartTTL (an upload whose
// sender died, a grant that expired, a failed copy nobody retried) and not of an unfinished job.
func (m *Manager) sweepParts() {
	m.mu.Lock()
	var live []string // part-name endings of unfinished jobs
	for _, j := range m.jobs {
		if !j.b.snapshot().State.Final() {
			live = append(live, storage.PartEnding(j.plan.key))
		}
	}
	m.mu.Unlock()
	cutoff := time.Now().Add(-m.cfg.PartTTL)
	removed := 0
	_ = fs.WalkDir(m.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || m.ctx.Err() != nil {
			return fs.SkipAll
		}
		if d.IsDir() || !storage.IsPart(d.Name()) {
			return nil
		}
		if slices.ContainsFunc(live, func(e string) bool { return strings.HasSuffix(d.Name(), e) }) {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if m.root.Remove(p) == nil {
				removed++
			}
		}
		return nil
	})
	if removed > 0 {
		m.log.Info("removed orphaned part files", "count", removed, "older_than", m.cfg.PartTTL)
	}
}
