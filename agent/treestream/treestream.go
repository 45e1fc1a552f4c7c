// Package treestream is the wire format of Ferry's tree stream: a whole directory tree as one
// byte stream over one FTP data connection (the agent-only XTREE extension, negotiated in
// FEAT), instead of one data connection and several round trips per file.
//
// The stream is text headers and raw file bytes:
//
//	FERRY-TREE 1 <files> <bytes>\n          totals, for progress
//	D <mode> <"path">\n                     a directory (parents first)
//	F <size> <mode> <mtime ns> <"path">\n   a file, then exactly size bytes, then
//	<64 hex digits of its SHA-256>\n
//	E <files> <bytes>\n                     the end: a stream without it is truncated
//
// Paths are relative to the tree's root, slash-separated, Go-quoted (any byte is allowed in a
// name); mode is octal permission bits. The receiver confines every path to the root it was
// given (no "..", no absolute path, an Allow check of its own), bounds header lines, sizes and
// counts, writes each file under a part name, checks its SHA-256, and publishes files in
// batches: the batch's parts are made durable with one file-system sync, then renamed in order,
// so a crash never leaves a partial file under a final name and no file costs an fsync of its
// own.
package treestream

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/storage"
)

// Feature is the FEAT line (and command verb) of the extension: "XTREE RETR dir" sends the
// tree under dir, "XTREE STOR dir" receives one into dir.
const Feature = "XTREE"

// FeatureSel, after Feature on its FEAT line, offers "XTREE SEL dir": a selection of the
// tree's files (SendSelection) that the next "XTREE RETR dir" sends alone. Agents without it
// send the whole tree.
const FeatureSel = "SEL"

// MaxSelection bounds a selection's bytes.
const MaxSelection = 64 << 20

// SendSelection writes the selection of files rels (relative to the tree) for XTREE SEL.
func SendSelection(w io.Writer, rels []string) error {
	bw := bufio.NewWriterSize(w, copyBuf)
	for _, rel := range rels {
		bw.WriteString(strconv.Quote(rel))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// ReadSelection reads what SendSelection wrote, bounded (MaxEntries paths, MaxHeader bytes a
// line, MaxSelection in all). Paths are not checked here: they only select among the tree's.
func ReadSelection(r io.Reader) (map[string]bool, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxSelection+1), copyBuf)
	sel := map[string]bool{}
	read := 0
	for {
		var line []byte
		for {
			chunk, err := br.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > MaxHeader {
				return nil, fmt.Errorf("treestream: selection line longer than %d bytes", MaxHeader)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return sel, nil
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("treestream: selection ends inside a line: %w", io.ErrUnexpectedEOF)
			}
			if err != nil {
				return nil, err
			}
			break
		}
		read += len(line)
		if read > MaxSelection || len(sel) >= MaxEntries {
			return nil, fmt.Errorf("treestream: selection larger than %d paths or %d bytes", MaxEntries, MaxSelection)
		}
		rel, err := strconv.Unquote(string(line[:len(line)-1]))
		if err != nil {
			return nil, fmt.Errorf("treestream: selection: %q is not a quoted path", trim(string(line)))
		}
		sel[rel] = true
	}
}

// Select keeps the directories of entries and the files sel names.
func Select(entries []Entry, sel map[string]bool) []Entry {
	out := entries[:0:0]
	for _, e := range entries {
		if e.Dir || sel[e.Rel] {
			out = append(out, e)
		}
	}
	return out
}

const (
	magic     = "FERRY-TREE 1"
	listMagic = "FERRY-TREE-LIST 1"
	// MaxHeader bounds one header line (a path of 4096 bytes, quoted, and the numbers).
	MaxHeader = 20 << 10
	// MaxPath bounds a path in bytes, unquoted.
	MaxPath = 4096
	// MaxEntries bounds the files and directories of one stream.
	MaxEntries = 1_000_000
	// batchFiles and batchBytes: a batch of received files is synced and published at once (a
	// syncfs costs 0.1 to 0.6 s on a busy disk, so batches are large).
	batchBytes = 256 << 20
	copyBuf    = 256 << 10
)

var batchFiles = 8192 // a variable: tests make batches small

// FS is the file system a tree is read from or written to (a storage.Root).
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error)
	Stat(name string) (fs.FileInfo, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	MkdirAll(name string, perm fs.FileMode) error
	FS() fs.FS
}

// Entry is one file or directory of a tree, relative to its root.
type Entry struct {
	Rel   string
	Dir   bool
	Size  int64
	Mode  fs.FileMode
	MTime time.Time
}

// Walk lists the tree under root in fsys: directories before their contents, names in order;
// part files, symbolic links and special files are left out.
func Walk(fsys FS, root string) ([]Entry, error) {
	var out []Entry
	err := fs.WalkDir(fsys.FS(), root, func(p string, d fs.DirEntry, err error) error {
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
		if len(out) >= MaxEntries {
			return fmt.Errorf("more than %d files and directories", MaxEntries)
		}
		switch {
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, Entry{Rel: rel, Dir: true, Mode: fi.Mode().Perm(), MTime: fi.ModTime()})
		case d.Type().IsRegular() && !storage.IsPart(d.Name()):
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, Entry{Rel: rel, Size: fi.Size(), Mode: fi.Mode().Perm(), MTime: fi.ModTime()})
		}
		return nil
	})
	return out, err
}

// Send writes the stream of entries (relative to root in fsys) to w; progress, if set, is
// called with each chunk of file bytes sent. A file whose size changed since it was listed
// fails the stream (its header is already out).
func Send(w io.Writer, fsys FS, root string, entries []Entry, progress func(int)) error {
	bw := bufio.NewWriterSize(w, copyBuf)
	var files, total int64
	for _, e := range entries {
		if !e.Dir {
			files++
			total += e.Size
		}
	}
	fmt.Fprintf(bw, "%s %d %d\n", magic, files, total)
	buf := make([]byte, copyBuf)
	rc := &receiver{fsys: fsys} // for its directory cache
	defer rc.dirs.close()
	for _, e := range entries {
		if e.Dir {
			fmt.Fprintf(bw, "D %o %s\n", e.Mode.Perm(), strconv.Quote(e.Rel))
			continue
		}
		in, name := rc.in(path.Join(root, e.Rel), true)
		if err := sendFile(bw, in, name, e, buf, progress); err != nil {
			return err
		}
	}
	fmt.Fprintf(bw, "E %d %d\n", files, total)
	return bw.Flush()
}

func sendFile(bw *bufio.Writer, fsys FS, name string, e Entry, buf []byte, progress func(int)) error {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(bw, "F %d %o %d %s\n", e.Size, e.Mode.Perm(), e.MTime.UnixNano(), strconv.Quote(e.Rel))
	h := sha256.New()
	var w io.Writer = io.MultiWriter(bw, h)
	if progress != nil {
		w = progressWriter{w: w, f: progress}
	}
	n, err := io.CopyBuffer(w, io.LimitReader(f, e.Size), buf)
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("%s: %d bytes, listed with %d (changed while sent)", e.Rel, n, e.Size)
	}
	var sum [64]byte
	hex.Encode(sum[:], h.Sum(nil))
	bw.Write(sum[:])
	return bw.WriteByte('\n')
}

// SendList writes the listing of entries to w: the stream's headers without file bodies
// ("XTREE LIST": one data connection lists a whole tree, instead of one MLSD per directory).
func SendList(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriterSize(w, copyBuf)
	var files, total int64
	for _, e := range entries {
		if !e.Dir {
			files++
			total += e.Size
		}
	}
	fmt.Fprintf(bw, "%s %d %d\n", listMagic, files, total)
	for _, e := range entries {
		if e.Dir {
			fmt.Fprintf(bw, "D %o %s\n", e.Mode.Perm(), strconv.Quote(e.Rel))
		} else {
			fmt.Fprintf(bw, "F %d %o %d %s\n", e.Size, e.Mode.Perm(), e.MTime.UnixNano(), strconv.Quote(e.Rel))
		}
	}
	fmt.Fprintf(bw, "E %d %d\n", files, total)
	return bw.Flush()
}

// ReadList reads a listing SendList wrote, checking every path as Receive does (relative,
// clean, inside the tree) and bounding its size.
func ReadList(r io.Reader) ([]Entry, error) {
	rc := &receiver{br: bufio.NewReaderSize(r, copyBuf)}
	line, err := rc.header()
	if err != nil {
		return nil, err
	}
	var files, total int64
	if _, err := fmt.Sscanf(line, listMagic+" %d %d", &files, &total); err != nil || files < 0 || files > MaxEntries {
		return nil, fmt.Errorf("treestream: not a tree listing (%q)", trim(line))
	}
	var out []Entry
	for {
		line, err := rc.header()
		if err != nil {
			return nil, err
		}
		if len(out) > MaxEntries {
			return nil, fmt.Errorf("treestream: more than %d entries", MaxEntries)
		}
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "D":
			modeS, quoted, _ := strings.Cut(rest, " ")
			mode, err := strconv.ParseUint(modeS, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("treestream: bad directory record %q", trim(rest))
			}
			rel, _, err := rc.target(quoted)
			if err != nil {
				return nil, err
			}
			out = append(out, Entry{Rel: rel, Dir: true, Mode: fs.FileMode(mode) & 0o777})
		case "F":
			f := strings.SplitN(rest, " ", 4)
			if len(f) != 4 {
				return nil, fmt.Errorf("treestream: bad file record %q", trim(rest))
			}
			size, err1 := strconv.ParseInt(f[0], 10, 64)
			mode, err2 := strconv.ParseUint(f[1], 8, 32)
			mt, err3 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || size < 0 {
				return nil, fmt.Errorf("treestream: bad file record %q", trim(rest))
			}
			rel, _, err := rc.target(f[3])
			if err != nil {
				return nil, err
			}
			out = append(out, Entry{Rel: rel, Size: size, Mode: fs.FileMode(mode) & 0o777, MTime: time.Unix(0, mt)})
			rc.seen++
			rc.seenBytes += size
		case "E":
			var f, b int64
			if _, err := fmt.Sscanf(rest, "%d %d", &f, &b); err != nil || f != rc.seen || b != rc.seenBytes {
				return nil, fmt.Errorf("treestream: end record %q does not match the listing", trim(rest))
			}
			return out, nil
		default:
			return nil, fmt.Errorf("treestream: unknown record %q", trim(line))
		}
	}
}

// Options configure Receive.
type Options struct {
	// PartName is the temporary name a file is written under until it is published (required).
	PartName func(final string) string
	// Allow, if set, must accept every final path (root-relative) before anything is written.
	Allow func(final string) bool
	// Want, if set, selects the files to keep (by path relative to the tree); the others' bytes
	// are read and dropped.
	Want func(rel string) bool
	// MaxFileSize bounds each file (0: 1 TiB).
	MaxFileSize int64
	// Sync makes what was written durable (e.g. syncfs on the root); nil: fsync each part.
	Sync func() error
	// Totals is called once with the announced number of files and bytes.
	Totals func(files, bytes int64)
	// Progress is called with every chunk of file bytes read.
	Progress func(n int)
	// Published is called for each file once it has its final name.
	Published func(rel string, size int64)
	// BeforePublish, if set, is asked before each file takes its final name (part and final
	// root-relative): an error (a hook's veto) stops the stream there, the file unpublished.
	BeforePublish func(part, final string) error
}

// Result is what Receive published, and the time its syncs took.
type Result struct {
	Files, Bytes int64
	Synced       time.Duration
}

// Receive reads a stream from r and writes the tree into root (root-relative, in fsys). It
// returns the first error: a malformed or hostile record, a checksum mismatch, a truncated
// stream, or an I/O error; files of a batch not yet published are removed then.
func Receive(r io.Reader, fsys FS, root string, o Options) (res Result, err error) {
	if o.PartName == nil {
		return res, errors.New("treestream: Options.PartName is required")
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 1 << 40
	}
	br := bufio.NewReaderSize(r, copyBuf)
	rc := &receiver{fsys: fsys, root: root, o: o, br: br, buf: make([]byte, copyBuf)}
	defer func() {
		rc.dirs.close()
		if err != nil {
			rc.discard()
		}
	}()
	line, err := rc.header()
	if err != nil {
		return res, err
	}
	var files, total int64
	if _, err := fmt.Sscanf(line, magic+" %d %d", &files, &total); err != nil || files < 0 || total < 0 || files > MaxEntries {
		return res, fmt.Errorf("treestream: not a tree stream (%q)", trim(line))
	}
	if o.Totals != nil {
		o.Totals(files, total)
	}
	rc.files, rc.total = files, total
	entries := 0
	for {
		line, err := rc.header()
		if err != nil {
			return rc.res, err
		}
		if entries++; entries > MaxEntries+1 {
			return rc.res, fmt.Errorf("treestream: more than %d entries", MaxEntries)
		}
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "D":
			if err := rc.dir(rest); err != nil {
				return rc.res, err
			}
		case "F":
			if err := rc.file(rest); err != nil {
				return rc.res, err
			}
		case "E":
			var f, b int64
			if _, err := fmt.Sscanf(rest, "%d %d", &f, &b); err != nil || f != rc.seen || b != rc.seenBytes {
				return rc.res, fmt.Errorf("treestream: end record %q does not match the %d files, %d bytes received", trim(rest), rc.seen, rc.seenBytes)
			}
			if f != rc.files || b != rc.total {
				// The header's totals are what a receiver that never listed the tree shows and
				// trusts: they must be the stream's.
				return rc.res, fmt.Errorf("treestream: %d files, %d bytes received; the stream announced %d files, %d bytes", f, b, rc.files, rc.total)
			}
			if rc.br.Buffered() > 0 {
				return rc.res, errors.New("treestream: data after the end record")
			}
			if err := rc.flush(); err != nil {
				return rc.res, err
			}
			if err := rc.sync(); err != nil { // the renames, durable
				return rc.res, err
			}
			return rc.res, nil
		default:
			return rc.res, fmt.Errorf("treestream: unknown record %q", trim(line))
		}
	}
}

type part struct {
	part, final, rel string
	size             int64
	mtime            time.Time
}

type receiver struct {
	fsys            FS
	root            string
	o               Options
	br              *bufio.Reader
	buf             []byte
	batch           []part
	batchBytes      int64
	seen, seenBytes int64
	files, total    int64 // announced in the header
	res             Result
	lastDir         string // made already
	dirs            dirCache
}

// dirCache holds the directory files are being written in, opened as a root of its own when
// the file system can (storage.Root): a file is then created, renamed and timed by its name in
// that directory, one system call each, where a path from the root costs one per element.
type dirCache struct {
	name string
	sub  *storage.Root
}

// in returns the file system and name to reach root-relative p by: p's directory when it is
// the one open, else the root. open opens p's directory first.
func (rc *receiver) in(p string, open bool) (FS, string) {
	dir := path.Dir(p)
	if dir != rc.dirs.name && open {
		rc.dirs.close()
		if o, ok := rc.fsys.(interface {
			OpenRoot(name string) (*storage.Root, error)
		}); ok && dir != "." {
			if sub, err := o.OpenRoot(dir); err == nil {
				rc.dirs = dirCache{name: dir, sub: sub}
			}
		}
	}
	if rc.dirs.sub != nil && dir == rc.dirs.name {
		return rc.dirs.sub, path.Base(p)
	}
	return rc.fsys, p
}

func (d *dirCache) close() {
	if d.sub != nil {
		d.sub.Close()
	}
	*d = dirCache{}
}

// header reads one header line, bounded by MaxHeader.
func (rc *receiver) header() (string, error) {
	var line []byte
	for {
		chunk, err := rc.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxHeader {
			return "", fmt.Errorf("treestream: header line longer than %d bytes", MaxHeader)
		}
		switch {
		case err == nil:
			return string(line[:len(line)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return "", fmt.Errorf("treestream: stream ends early (%d files received): %w", rc.seen, io.ErrUnexpectedEOF)
		default:
			return "", err
		}
	}
}

// target validates a quoted relative path and returns it with its root-relative final path.
func (rc *receiver) target(quoted string) (rel, final string, err error) {
	rel, err = strconv.Unquote(quoted)
	switch {
	case err != nil:
		return "", "", fmt.Errorf("treestream: path %s: not a quoted string", trim(quoted))
	case rel == "" || len(rel) > MaxPath || strings.ContainsRune(rel, 0) || path.IsAbs(rel) || strings.Contains(rel, "\\"):
		return "", "", fmt.Errorf("treestream: path %q refused", trim(rel))
	case path.Clean(rel) != rel || rel == "." || rel == ".." || strings.HasPrefix(rel, "../"):
		return "", "", fmt.Errorf("treestream: path %q escapes the tree or is not clean", trim(rel))
	}
	for _, el := range strings.Split(rel, "/") {
		if len(el) > 255 || storage.IsPart(el) {
			return "", "", fmt.Errorf("treestream: path %q refused", trim(rel))
		}
	}
	final = path.Join(rc.root, rel)
	if rc.o.Allow != nil && !rc.o.Allow(final) {
		return "", "", fmt.Errorf("treestream: path %q is outside the allowed scope", trim(rel))
	}
	return rel, final, nil
}

func (rc *receiver) dir(rest string) error {
	modeS, quoted, ok := strings.Cut(rest, " ")
	mode, err := strconv.ParseUint(modeS, 8, 32)
	if !ok || err != nil {
		return fmt.Errorf("treestream: bad directory record %q", trim(rest))
	}
	rel, final, err := rc.target(quoted)
	if err != nil {
		return err
	}
	if rc.o.Want != nil && !rc.o.Want(rel) && !rc.o.Want(rel+"/") {
		return nil
	}
	return rc.fsys.MkdirAll(final, fs.FileMode(mode)&0o777|0o700)
}

func (rc *receiver) file(rest string) error {
	f := strings.SplitN(rest, " ", 4)
	if len(f) != 4 {
		return fmt.Errorf("treestream: bad file record %q", trim(rest))
	}
	size, err1 := strconv.ParseInt(f[0], 10, 64)
	mode, err2 := strconv.ParseUint(f[1], 8, 32)
	mt, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || size < 0 {
		return fmt.Errorf("treestream: bad file record %q", trim(rest))
	}
	if size > rc.o.MaxFileSize {
		return fmt.Errorf("treestream: file of %d bytes; at most %d", size, rc.o.MaxFileSize)
	}
	rel, final, err := rc.target(f[3])
	if err != nil {
		return err
	}
	rc.seen++
	rc.seenBytes += size
	if rc.o.Want != nil && !rc.o.Want(rel) {
		// Not selected: read past its bytes and digest.
		if _, err := io.CopyN(io.Discard, rc.br, size+65); err != nil {
			return fmt.Errorf("treestream: %s: %w", rel, err)
		}
		return nil
	}
	if dir := path.Dir(final); dir != "." && dir != rc.lastDir {
		if err := rc.fsys.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		rc.lastDir = dir // files come directory by directory: one MkdirAll each
	}
	pname := rc.o.PartName(final)
	fsys, name := rc.in(pname, true)
	out, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(mode)&0o777|0o600)
	if err != nil {
		return err
	}
	p := part{part: pname, final: final, rel: rel, size: size, mtime: time.Unix(0, mt)}
	rc.batch = append(rc.batch, p) // removed with the batch if anything fails from here on
	h := sha256.New()
	var w io.Writer = io.MultiWriter(out, h)
	if rc.o.Progress != nil {
		w = progressWriter{w: w, f: rc.o.Progress}
	}
	n, err := io.CopyBuffer(w, io.LimitReader(rc.br, size), rc.buf)
	if err == nil && n != size {
		err = fmt.Errorf("treestream: %s: stream ends after %d of %d bytes: %w", rel, n, size, io.ErrUnexpectedEOF)
	}
	if err == nil && rc.o.Sync == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var sum [65]byte
	if _, err := io.ReadFull(rc.br, sum[:]); err != nil {
		return fmt.Errorf("treestream: %s: no digest: %w", rel, err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	if sum[64] != '\n' || !bytes.Equal(sum[:64], []byte(want)) {
		return fmt.Errorf("treestream: %s: sha256 mismatch: sent %q, received data has %s", rel, trim(string(sum[:64])), want)
	}
	rc.batchBytes += size
	if len(rc.batch) >= batchFiles || rc.batchBytes >= batchBytes {
		return rc.flush()
	}
	return nil
}

// flush makes the batch's parts durable (one sync), then gives them their final names in
// order, and their modification times.
func (rc *receiver) flush() error {
	if len(rc.batch) == 0 {
		return nil
	}
	if err := rc.sync(); err != nil {
		return err
	}
	for i, p := range rc.batch {
		if rc.o.BeforePublish != nil {
			if err := rc.o.BeforePublish(p.part, p.final); err != nil {
				rc.batch = rc.batch[i:]
				return err
			}
		}
		// A part and its final name share a directory (storage.PartName).
		fsys, part := rc.in(p.part, true)
		final := path.Join(path.Dir(part), path.Base(p.final))
		if err := fsys.Rename(part, final); err != nil {
			rc.batch = rc.batch[i:]
			return err
		}
		if ct, ok := fsys.(interface {
			Chtimes(name string, atime, mtime time.Time) error
		}); ok {
			_ = ct.Chtimes(final, p.mtime, p.mtime)
		}
		rc.res.Files++
		rc.res.Bytes += p.size
		if rc.o.Published != nil {
			rc.o.Published(p.rel, p.size)
		}
	}
	rc.batch, rc.batchBytes = rc.batch[:0], 0
	return nil
}

// sync runs Options.Sync, timed.
func (rc *receiver) sync() error {
	if rc.o.Sync == nil {
		return nil
	}
	start := time.Now()
	err := rc.o.Sync()
	rc.res.Synced += time.Since(start)
	return err
}

// discard removes the parts of the batch not published.
func (rc *receiver) discard() {
	for _, p := range rc.batch {
		_ = rc.fsys.Remove(p.part)
	}
	rc.batch = nil
}

type progressWriter struct {
	w io.Writer
	f func(int)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.f(n)
	return n, err
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
