// Package datapath moves file data with the checksum off the copy's critical path. Received
// data goes through a few buffers handed to a hashing goroutine after each write (Copier), so
// the next read overlaps the hashing of the last one; sent files go out with sendfile and are
// hashed by a goroutine reading them from the page cache (HashFile). Both the FTP client (the
// transfer engine) and the FTP server use it.
package datapath

import (
	"errors"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

const (
	// BufSize is one buffer of the pipeline.
	BufSize = 512 << 10
	// buffers in flight per copy: one being filled, the others hashed or waiting.
	buffers = 4
)

var bufPool = sync.Pool{New: func() any { return new([BufSize]byte) }}

// Copier copies a reader to a writer through a small pipeline of buffers.
type Copier struct {
	// Hash, when set, receives every byte written, on another goroutine.
	Hash hash.Hash
	// Grant, when set, is asked before each read how many bytes (at most max) may be read now;
	// it waits as long as a rate limit needs and returns an error to stop the copy.
	Grant func(max int) (int, error)
	// Count, when set, is told of the bytes written after each write (progress).
	Count func(n int)
}

// Copy copies src to dst until EOF or an error. It returns the bytes written; all of them have
// reached Hash when it returns.
func (c Copier) Copy(dst io.Writer, src io.Reader) (written int64, err error) {
	if c.Hash == nil {
		return c.copyPlain(dst, src)
	}
	free := make(chan *[BufSize]byte, buffers)
	for range buffers {
		free <- bufPool.Get().(*[BufSize]byte)
	}
	full := make(chan []byte, buffers)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range full {
			c.Hash.Write(b)
			free <- (*[BufSize]byte)(b[:BufSize:BufSize])
		}
	}()
	defer func() {
		close(full)
		<-hashed
		for range buffers {
			bufPool.Put(<-free)
		}
	}()
	for {
		buf := <-free
		n, rerr := c.fill(buf, src)
		if n > 0 {
			wn, werr := dst.Write(buf[:n])
			written += int64(wn)
			if wn > 0 && c.Count != nil {
				c.Count(wn)
			}
			if werr == nil && wn < n {
				werr = io.ErrShortWrite
			}
			if wn > 0 {
				full <- buf[:wn]
			} else {
				free <- buf
			}
			if werr != nil {
				return written, werr
			}
		} else {
			free <- buf
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// fill reads into buf until it holds as much as Grant allows (a full buffer without Grant),
// or the reader ends or fails: large writes and few hand-offs to the hashing goroutine.
func (c Copier) fill(buf *[BufSize]byte, src io.Reader) (int, error) {
	want := BufSize
	if c.Grant != nil {
		g, err := c.Grant(want)
		if err != nil {
			return 0, err
		}
		want = max(1, min(g, BufSize))
	}
	n := 0
	for n < want {
		m, err := src.Read(buf[n:want])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

func (c Copier) copyPlain(dst io.Writer, src io.Reader) (int64, error) {
	buf := bufPool.Get().(*[BufSize]byte)
	defer bufPool.Put(buf)
	var written int64
	for {
		n, rerr := c.fill(buf, src)
		if n > 0 {
			wn, werr := dst.Write(buf[:n])
			written += int64(wn)
			if wn > 0 && c.Count != nil {
				c.Count(wn)
			}
			if werr == nil && wn < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return written, werr
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// HashFile feeds bytes [from, to) of r to h, reading BufSize at a time (a file just written or
// being sent is in the page cache). to < 0 means up to EOF. It returns the bytes hashed.
func HashFile(h hash.Hash, r io.ReaderAt, from, to int64) (int64, error) {
	return hashFile(h, r, from, to, nil)
}

// errStopped ends a hash stopped with Hashing.Stop.
var errStopped = errors.New("hashing stopped")

func hashFile(h hash.Hash, r io.ReaderAt, from, to int64, stop *atomic.Bool) (int64, error) {
	buf := bufPool.Get().(*[BufSize]byte)
	defer bufPool.Put(buf)
	off := from
	for to < 0 || off < to {
		if stop != nil && stop.Load() {
			return off - from, errStopped
		}
		b := buf[:]
		if to >= 0 && to-off < int64(len(b)) {
			b = b[:to-off]
		}
		n, err := r.ReadAt(b, off)
		h.Write(b[:n])
		off += int64(n)
		if errors.Is(err, io.EOF) {
			if to >= 0 && off < to {
				return off - from, io.ErrUnexpectedEOF
			}
			return off - from, nil
		}
		if err != nil {
			return off - from, err
		}
	}
	return off - from, nil
}

// Hashing is a hash running on its own goroutine (Background).
type Hashing struct {
	stop atomic.Bool
	done chan struct{}
	n    int64
	err  error
}

// Background hashes bytes [from, to) of r into h on a goroutine (to < 0: up to EOF), in
// parallel with whatever the caller does with the same file (sendfile).
func Background(h hash.Hash, r io.ReaderAt, from, to int64) *Hashing {
	x := &Hashing{done: make(chan struct{})}
	go func() {
		defer close(x.done)
		x.n, x.err = hashFile(h, r, from, to, &x.stop)
	}()
	return x
}

// Wait returns once the hash is done: the bytes hashed and the read error, if any.
func (x *Hashing) Wait() (int64, error) {
	<-x.done
	return x.n, x.err
}

// Stop ends the hash early (the transfer failed) and waits for the goroutine to end.
func (x *Hashing) Stop() {
	x.stop.Store(true)
	<-x.done
}
