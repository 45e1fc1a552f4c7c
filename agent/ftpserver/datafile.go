package ftpserver

import (
	"crypto/md5"  //nolint:gosec // HASH MD5 is the client's choice
	"crypto/sha1" //nolint:gosec // HASH SHA-1 likewise
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"os"

	ftplib "github.com/fclairamb/ftpserverlib"

	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/agent/netopt"
)

// dataSide is what the sessions of one Server share for their data transfers: the congestion
// control of the connections it sends on and the digests it computed while moving files.
type dataSide struct {
	congestion string
	hashes     *hashCache
	log        *slog.Logger
}

var (
	_ ftplib.ClientDriverExtentionFileTransfer = (*sessionFs)(nil)
	_ ftplib.ClientDriverExtensionHasher       = (*sessionFs)(nil)
	_ ftplib.FileTransferError                 = (*dataFile)(nil)
	_ io.WriterTo                              = (*dataFile)(nil)
	_ io.ReaderFrom                            = (*dataFile)(nil)
)

// GetHandle opens a file for RETR (flags O_RDONLY), STOR or APPE (ftpserverlib's
// ClientDriverExtentionFileTransfer) with the session's rights, as OpenFile does, and returns it
// as a dataFile: the library's io.Copy then goes through dataFile's WriteTo (sendfile, the
// congestion control, a hash behind) or ReadFrom (a hashing pipeline).
func (s *sessionFs) GetHandle(name string, flags int, offset int64) (ftplib.FileTransfer, error) {
	af, err := s.OpenFile(name, flags, uploadFileMode)
	if err != nil {
		return nil, err
	}
	// OpenFile may have wrapped the file to count it for the session's events (session.go): the
	// dataFile goes inside that wrapper, which forwards WriteTo, ReadFrom and TransferError.
	cf, counted := af.(*countedFile)
	inner := af
	if counted {
		inner = cf.File
	}
	f, ok := inner.(*os.File)
	if !ok || s.data == nil {
		return af, nil
	}
	df := &dataFile{File: f, d: s.data, ctl: s.ctl, write: isWriteFlag(flags), whole: flags&os.O_TRUNC != 0 && offset == 0}
	if counted {
		cf.File = df
		return cf, nil
	}
	return df, nil
}

// dataFile is a file being transferred.
type dataFile struct {
	*os.File
	d     *dataSide
	ctl   *controlConn // the session's control connection (a digest for the 226), or nil
	write bool
	// whole: an upload written from byte 0 into a truncated file, so the digest of what it
	// receives is the digest of the file.
	whole   bool
	h       hash.Hash // the upload's running digest (whole only)
	done    bool      // the upload's or download's copy ended without error
	n       int64     // bytes the upload wrote
	xferErr error     // the library reported an interrupted transfer
}

// WriteTo sends the file (RETR) to w, the data connection: with sendfile on plain TCP, after
// setting the congestion control, while a goroutine hashes the file for a HASH to come.
func (f *dataFile) WriteTo(w io.Writer) (int64, error) {
	if c, ok := w.(net.Conn); ok && f.d.congestion != "" {
		if err := netopt.SetCongestion(c, f.d.congestion); err != nil {
			f.d.log.Debug("data connection keeps the system congestion control", "err", err)
		}
	}
	f.d.hashes.hashBehind(f.File)
	var (
		n   int64
		err error
	)
	if tc, ok := w.(*net.TCPConn); ok {
		n, err = tc.ReadFrom(f.File)
	} else {
		buf := make([]byte, datapath.BufSize)
		n, err = io.CopyBuffer(w, readerOnly{f.File}, buf)
	}
	f.done = err == nil
	return n, err
}

type readerOnly struct{ io.Reader }

// ReadFrom receives an upload (STOR, APPE) from r, the data connection, hashing on another
// goroutine what it writes.
func (f *dataFile) ReadFrom(r io.Reader) (int64, error) {
	cp := datapath.Copier{}
	if f.whole {
		f.h = sha256.New()
		cp.Hash = f.h
	}
	n, err := cp.Copy(f.File, r)
	f.n += n
	f.done = err == nil
	return n, err
}

// TransferError is ftpserverlib's notice of an interrupted transfer.
func (f *dataFile) TransferError(err error) { f.xferErr = err }

// Close closes the file; a whole upload received completely leaves its digest in the cache.
// With a client that asked for digests (OPTS XDIGEST ON), the file's SHA-256 goes to the
// control connection for the transfer's 226 reply: the upload's, or for a download sent to
// its end the digest hashed behind the send, if it is done within replyWait.
func (f *dataFile) Close() error {
	if f.write && f.whole && f.done && f.xferErr == nil && f.h != nil {
		// The file is what this upload wrote only if nothing else wrote beyond it: the first of
		// a file's parallel ranges is a STOR from 0 too, into a file the others extend.
		if fi, err := f.File.Stat(); err == nil && fi.Size() == f.n {
			if id, ok := identity(fi); ok && id.size >= 0 {
				sum := hex.EncodeToString(f.h.Sum(nil))
				f.d.hashes.put(id, sum)
				f.ctl.transferDigest(fi.Size(), sum)
			}
		}
	}
	if !f.write && f.done && f.xferErr == nil && f.ctl.wantsDigest() {
		if fi, err := f.File.Stat(); err == nil {
			if id, ok := identity(fi); ok {
				if sum, ok := f.d.hashes.lookupWithin(id, replyWait); ok {
					f.ctl.transferDigest(fi.Size(), sum)
				}
			}
		}
	}
	return f.File.Close()
}

var errUnknownHash = errors.New("unknown hash algorithm")

// ComputeHash answers HASH and XSHA* (ftpserverlib's ClientDriverExtensionHasher) for bytes
// [start,end) of name: the SHA-256 of a whole file comes from the cache when the server moved
// that very file (same identity), else the file is read, and a whole file's SHA-256 is kept.
func (s *sessionFs) ComputeHash(name string, algo ftplib.HASHAlgo, start, end int64) (string, error) {
	af, err := s.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer af.Close()
	fi, err := af.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", name)
	}
	end = min(end, fi.Size())
	if start < 0 || start > end {
		return "", fmt.Errorf("invalid range %d-%d", start, end)
	}
	var h hash.Hash
	switch algo {
	case ftplib.HASHAlgoCRC32:
		h = crc32.NewIEEE()
	case ftplib.HASHAlgoMD5:
		h = md5.New() //nolint:gosec
	case ftplib.HASHAlgoSHA1:
		h = sha1.New() //nolint:gosec
	case ftplib.HASHAlgoSHA256:
		h = sha256.New()
	case ftplib.HASHAlgoSHA512:
		h = sha512.New()
	default:
		return "", errUnknownHash
	}
	whole := algo == ftplib.HASHAlgoSHA256 && start == 0 && end == fi.Size()
	id, known := identity(fi)
	cacheable := whole && known && s.data != nil
	if cacheable {
		if sum, ok := s.data.hashes.lookup(id); ok {
			return sum, nil
		}
	}
	if _, err := datapath.HashFile(h, af, start, end); err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if cacheable {
		if fi2, err := af.Stat(); err == nil {
			if id2, ok := identity(fi2); ok && id2 == id {
				s.data.hashes.put(id, sum)
			}
		}
	}
	return sum, nil
}

// congestionListener sets the congestion control of each accepted passive data connection.
type congestionListener struct {
	net.Listener
	name string
	log  *slog.Logger
}

func (l *congestionListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		if serr := netopt.SetCongestion(c, l.name); serr != nil {
			l.log.Debug("data connection keeps the system congestion control", "err", serr)
		}
	}
	return c, err
}
