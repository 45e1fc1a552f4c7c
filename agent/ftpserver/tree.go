package ftpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/spf13/afero"

	"github.com/ferry-dev/ferry/agent/storage"
	"github.com/ferry-dev/ferry/agent/treestream"
)

// The tree stream (agent-only extension, listed in FEAT as "XTREE SEL"): "XTREE RETR dir" sends
// the whole tree under dir over one data connection, "XTREE STOR dir" receives one into dir,
// "XTREE LIST dir" lists the tree (the headers alone), in the format of agent/treestream, and
// "XTREE SEL dir" receives a list of paths (treestream.SendSelection): the next XTREE RETR of
// dir sends those files alone. The control filter turns the command into the library's own RETR
// or STOR of dir (so data connections, TLS, ABOR and replies are the library's) and marks the
// session; the session's OpenFile of that directory then returns the stream instead of a file.

// treeVerb is the command; treeFeat the FEAT line that offers it.
const (
	treeVerb = treestream.Feature
	treeFeat = " " + treestream.Feature + " " + treestream.FeatureSel + "\r\n" + " " + digestFeat + "\r\n"
)

// treeState is a control connection's pending tree transfer.
type treeState struct {
	verb string // "RETR", "STOR", "LIST" or "SEL": the next transfer of the session is a tree stream
	// sel, once an XTREE SEL of selDir completed, is the files the next XTREE RETR of selDir
	// sends (its directories are all sent).
	sel    map[string]bool
	selDir string
}

// treeCommand handles XTREE, and forgets a pending tree stream on any other command. done
// reports that it handled the line (out is then what to hand to the library). Called with
// c.mu held.
func (c *controlConn) treeCommand(verb, param string) (out []byte, done bool, err error) {
	c.tree.verb = ""
	if verb != treeVerb {
		return nil, false, nil
	}
	sub, dir, _ := strings.Cut(param, " ")
	sub = strings.ToUpper(sub)
	var reply string
	switch {
	case !c.loggedIn:
		reply = "530 Please login with USER and PASS."
	case sub != "RETR" && sub != "STOR" && sub != "LIST" && sub != "SEL" || dir == "":
		reply = "501 Syntax: XTREE RETR|STOR|LIST|SEL <directory>"
	default:
		lib := sub // the library's own command that carries it
		switch sub {
		case "LIST":
			lib = "RETR"
		case "SEL":
			lib = "STOR"
		}
		var forward bool
		reply, forward, err = c.decide(lib, dir)
		if forward {
			c.tree.verb = sub
			c.expect = lib
			return []byte(lib + " " + dir + "\r\n"), true, nil
		}
	}
	if reply != "" {
		if werr := c.writeLocked([]byte(reply + "\r\n")); werr != nil && err == nil {
			err = werr
		}
	}
	return nil, true, err
}

// takeTree returns and clears the pending tree stream's verb.
func (c *controlConn) takeTree() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.tree.verb
	c.tree.verb = ""
	return v
}

// setSel records a selection for the next XTREE RETR of dir.
func (c *controlConn) setSel(dir string, sel map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tree.sel, c.tree.selDir = sel, dir
}

// takeSel returns and clears the selection, if it is dir's.
func (c *controlConn) takeSel(dir string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	sel := c.tree.sel
	ok := c.tree.selDir == dir
	c.tree.sel, c.tree.selDir = nil, ""
	if !ok {
		return nil
	}
	return sel
}

// controlOf finds the control connection of a library client.
func (s *Server) controlOf(cc interface {
	RemoteAddr() net.Addr
	LocalAddr() net.Addr
}) *controlConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.conns[connKey(cc.RemoteAddr(), cc.LocalAddr())].(*controlConn)
	return c
}

// openTree returns the tree stream when the session has one pending (ok), checked against the
// session's policy: reading the directory for RETR, writing it for STOR.
func (s *sessionFs) openTree(name string) (f afero.File, ok bool, err error) {
	if s.ctl == nil {
		return nil, false, nil
	}
	verb := s.ctl.takeTree()
	if verb == "" {
		return nil, false, nil
	}
	op := opRead
	if verb == "STOR" {
		op = opWrite
	}
	rel, err := s.check(op, "tree", name)
	if err != nil {
		return nil, true, err
	}
	root := s.fs.root
	if verb == "SEL" {
		// The selection for the next XTREE RETR of this directory: one quoted path a line.
		pr, pw := io.Pipe()
		t := &treeFile{name: rel, w: pw, done: make(chan struct{})}
		ctl := s.ctl
		go func() {
			defer close(t.done)
			sel, err := treestream.ReadSelection(pr)
			if err == nil {
				ctl.setSel(rel, sel)
			}
			t.err = err
			pr.CloseWithError(err)
		}()
		return t, true, nil
	}
	if verb != "STOR" {
		fi, err := root.Stat(rel)
		if err != nil {
			return nil, true, err
		}
		if !fi.IsDir() {
			return nil, true, &os.PathError{Op: "tree", Path: ftpPath(rel), Err: errors.New("not a directory")}
		}
		entries, err := treestream.Walk(root, rel)
		if err != nil {
			return nil, true, err
		}
		if sel := s.ctl.takeSel(rel); sel != nil && verb == "RETR" {
			entries = treestream.Select(entries, sel)
		}
		pr, pw := io.Pipe()
		t := &treeFile{name: rel, r: pr, done: make(chan struct{})}
		go func() {
			defer close(t.done)
			if verb == "LIST" {
				pw.CloseWithError(treestream.SendList(pw, entries))
				return
			}
			err := treestream.Send(pw, root, rel, entries, nil)
			if ctl := s.ctl; ctl.s.log.Enabled(context.Background(), slog.LevelDebug) {
				var files, bytes int64
				for _, e := range entries {
					if !e.Dir {
						files++
						bytes += e.Size
					}
				}
				ctl.s.log.Debug("tree stream sent", "dir", rel, "files", files, "bytes", bytes, "err", err)
			}
			pw.CloseWithError(err)
		}()
		return t, true, nil
	}
	if err := root.MkdirAll(rel, uploadDirMode); err != nil {
		return nil, true, err
	}
	var key [8]byte
	_, _ = rand.Read(key[:])
	batch := "xtree-" + hex.EncodeToString(key[:])
	pr, pw := io.Pipe()
	t := &treeFile{name: rel, w: pw, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		start := time.Now()
		res, err := treestream.Receive(pr, root, rel, treestream.Options{
			PartName: func(final string) string { return storage.PartName(final, batch) },
			Allow:    func(final string) bool { return s.pol.allows(opWrite, final) },
			Sync:     treestream.SyncDir(root.Dir()),
			// Hooks (Config.PublishGate) may veto each file as for a single pushed file.
			BeforePublish: s.publish,
		})
		if s.ctl != nil {
			s.ctl.s.log.Debug("tree stream received", "dir", rel, "files", res.Files, "bytes", res.Bytes,
				"took", time.Since(start).Round(time.Millisecond), "synced", res.Synced.Round(time.Millisecond), "err", err)
		}
		t.err = err
		pr.CloseWithError(err) // a sender still writing learns at once
	}()
	return t, true, nil
}

// treeFile is a tree stream as the library sees a file: RETR reads the stream being sent,
// STOR writes the stream being received (Close waits for the receiver and returns its verdict,
// which the library turns into the transfer's final reply).
type treeFile struct {
	name string
	r    *io.PipeReader // RETR
	w    *io.PipeWriter // STOR
	done chan struct{}
	err  error // the receiver's, set before done closes

	once sync.Once
}

var errTreeOp = errors.New("not supported on a tree stream")

func (t *treeFile) Read(p []byte) (int, error) {
	if t.r == nil {
		return 0, errTreeOp
	}
	return t.r.Read(p)
}

func (t *treeFile) Write(p []byte) (int, error) {
	if t.w == nil {
		return 0, errTreeOp
	}
	return t.w.Write(p)
}

func (t *treeFile) Close() error {
	var err error
	t.once.Do(func() {
		if t.r != nil {
			t.r.Close() // stops a sender the client no longer reads
			<-t.done
			return
		}
		t.w.Close()
		<-t.done
		err = t.err
	})
	return err
}

func (t *treeFile) Name() string                       { return t.name }
func (t *treeFile) ReadAt([]byte, int64) (int, error)  { return 0, errTreeOp }
func (t *treeFile) Seek(int64, int) (int64, error)     { return 0, errTreeOp }
func (t *treeFile) WriteAt([]byte, int64) (int, error) { return 0, errTreeOp }
func (t *treeFile) Readdir(int) ([]os.FileInfo, error) { return nil, errTreeOp }
func (t *treeFile) Readdirnames(int) ([]string, error) { return nil, errTreeOp }
func (t *treeFile) Sync() error                        { return nil }
func (t *treeFile) Truncate(int64) error               { return errTreeOp }
func (t *treeFile) WriteString(s string) (int, error)  { return t.Write([]byte(s)) }
func (t *treeFile) Stat() (os.FileInfo, error)         { return treeInfo{t.name}, nil }
func (treeInfo) Size() int64                           { return 0 }
func (treeInfo) Mode() os.FileMode                     { return 0o644 }
func (treeInfo) ModTime() time.Time                    { return time.Time{} }
func (treeInfo) IsDir() bool                           { return false }
func (treeInfo) Sys() any                              { return nil }
func (i treeInfo) Name() string                        { return path.Base(i.name) }

type treeInfo struct{ name string }
