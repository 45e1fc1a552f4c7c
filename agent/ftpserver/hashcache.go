package ftpserver

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/agent/datapath"
)

// hashCache keeps the SHA-256 the server computed while it received or sent a whole file, so
// HASH/XSHA256 of that file answers without reading it again. An entry is keyed by the file's
// identity (device, inode, size, modification and change times): any write, truncation or
// replacement makes a new identity and the old entry is never found again. An entry may be
// pending (a file being hashed as it is sent): HASH then waits for it.
type hashCache struct {
	mu      sync.Mutex
	m       map[fileID]*hashEntry
	order   []fileID      // insertion order, for eviction
	hashers chan struct{} // background hashes running at once (a semaphore)
}

// fileID is a file's identity; ok is false where the system does not give one.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

type hashEntry struct {
	done chan struct{} // closed once sum and ok are set
	sum  string
	ok   bool
}

const (
	maxHashEntries = 4096
	// maxHashers bounds the background hashes of files being sent: beyond it a RETR is served
	// without one (a later HASH reads the file).
	maxHashers = 4
	// pendingWait bounds how long HASH waits for a background hash before reading the file.
	pendingWait = 5 * time.Minute
	// replyWait bounds how long a download's 226 waits for that hash (digest.go): longer, and
	// the client's wait for the 226 (its reply timeout) could run out; it asks HASH instead.
	replyWait = time.Second
)

func newHashCache() *hashCache {
	return &hashCache{m: make(map[fileID]*hashEntry), hashers: make(chan struct{}, maxHashers)}
}

// identity returns fi's fileID, if the system provides one.
func identity(fi fs.FileInfo) (fileID, bool) {
	if fi == nil || !fi.Mode().IsRegular() {
		return fileID{}, false
	}
	return sysIdentity(fi)
}

// lookup returns the digest cached for id, waiting for a pending one.
func (c *hashCache) lookup(id fileID) (string, bool) { return c.lookupWithin(id, pendingWait) }

// lookupWithin is lookup waiting at most wait for a pending digest.
func (c *hashCache) lookupWithin(id fileID, wait time.Duration) (string, bool) {
	c.mu.Lock()
	e := c.m[id]
	c.mu.Unlock()
	if e == nil {
		return "", false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-e.done:
		return e.sum, e.ok
	case <-t.C:
		return "", false
	}
}

// begin adds a pending entry for id and returns it, or nil when id has one already.
func (c *hashCache) begin(id fileID) *hashEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return nil
	}
	e := &hashEntry{done: make(chan struct{})}
	c.addLocked(id, e)
	return e
}

// put records a digest computed for id.
func (c *hashCache) put(id fileID, sum string) {
	e := &hashEntry{done: make(chan struct{}), sum: sum, ok: true}
	close(e.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[id]; ok {
		select {
		case <-old.done:
		default:
			return // a pending hash of the same identity will finish
		}
	}
	c.addLocked(id, e)
}

func (c *hashCache) addLocked(id fileID, e *hashEntry) {
	if _, ok := c.m[id]; !ok {
		c.order = append(c.order, id)
	}
	c.m[id] = e
	for len(c.order) > maxHashEntries {
		old := c.order[0]
		c.order = c.order[1:]
		delete(c.m, old)
	}
}

// finish completes a pending entry: sum is kept only when the file still had the identity
// id after it was read (ok), else the entry is dropped.
func (c *hashCache) finish(id fileID, e *hashEntry, sum string, ok bool) {
	e.sum, e.ok = sum, ok
	close(e.done)
	if !ok {
		c.mu.Lock()
		if c.m[id] == e {
			delete(c.m, id)
		}
		c.mu.Unlock()
	}
}

// hashBehind hashes the whole of f (a file being sent) on a goroutine from its own descriptor,
// unless its digest is known or pending or maxHashers run already. The page cache serves the
// reads the sendfile of the same pages just made or is about to make.
func (c *hashCache) hashBehind(f *os.File) {
	fi, err := f.Stat()
	if err != nil {
		return
	}
	id, ok := identity(fi)
	if !ok {
		return
	}
	select {
	case c.hashers <- struct{}{}:
	default:
		return
	}
	e := c.begin(id)
	if e == nil {
		<-c.hashers
		return
	}
	dup, err := dupFile(f)
	if err != nil {
		<-c.hashers
		c.finish(id, e, "", false)
		return
	}
	go func() {
		defer func() { <-c.hashers }()
		defer dup.Close()
		h := sha256.New()
		_, err := datapath.HashFile(h, dup, 0, id.size)
		same := false
		if fi2, serr := dup.Stat(); err == nil && serr == nil {
			id2, ok := identity(fi2)
			same = ok && id2 == id
		}
		c.finish(id, e, hex.EncodeToString(h.Sum(nil)), same)
	}()
}
