package ftpserver

import (
	"io"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	ftplib "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"
)

// EventSinks fans events out to several sinks (the metrics, the audit log, hook plugins), in
// order. A nil member is skipped.
type EventSinks []EventSink

// FTPEvent tells every member.
func (all EventSinks) FTPEvent(e Event) {
	for _, s := range all {
		if s != nil {
			s.FTPEvent(e)
		}
	}
}

// session is what the server knows of one control connection, from ClientConnected to
// ClientDisconnected: it emits the session's events (Config.Events) and its one log line.
type session struct {
	s      *Server
	cc     ftplib.ClientContext
	id     uint32
	remote netip.AddrPort
	start  time.Time

	mu              sync.Mutex
	user            string
	tls             bool
	loggedIn        bool
	fails           int
	read, written   int64 // file bytes sent and received
	reads, writes   int   // files sent and received
	failedTransfers int
}

func newSession(s *Server, cc ftplib.ClientContext) *session {
	ss := &session{s: s, cc: cc, id: cc.ID(), start: time.Now()}
	if ap, err := netip.ParseAddrPort(cc.RemoteAddr().String()); err == nil {
		ss.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ss
}

// sessionOf returns the session ClientConnected attached to cc (nil if none).
func sessionOf(cc ftplib.ClientContext) *session {
	ss, _ := cc.Extra().(*session)
	return ss
}

// login records a login attempt and emits login or login_failed.
func (ss *session) login(user string, tls bool, err error) {
	if ss == nil {
		return
	}
	ss.mu.Lock()
	ss.user, ss.tls = user, tls
	if err == nil {
		ss.loggedIn = true
	} else {
		ss.fails++
	}
	ss.mu.Unlock()
	kind := EventLogin
	if err != nil {
		kind = EventLoginFailed
	}
	ss.emit(Event{Kind: kind, User: user, Err: err})
}

// emit fills in the session's fields and hands e to Config.Events.
func (ss *session) emit(e Event) {
	if ss == nil || ss.s.cfg.Events == nil {
		return
	}
	ss.mu.Lock()
	e.Session, e.Remote, e.TLS = ss.id, ss.remote, ss.tls
	if e.User == "" {
		e.User = ss.user
	}
	ss.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	ss.s.cfg.Events.FTPEvent(e)
}

// fileDone records a file sent (read) or received (write) and emits its event.
func (ss *session) fileDone(kind EventKind, p string, n int64, mode string, err error) {
	if ss == nil {
		return
	}
	ss.mu.Lock()
	if kind == EventRead {
		ss.read += n
		ss.reads++
	} else {
		ss.written += n
		ss.writes++
	}
	if err != nil {
		ss.failedTransfers++
	}
	ss.mu.Unlock()
	ss.emit(Event{Kind: kind, Path: p, Bytes: n, Mode: mode, Err: err})
}

// end logs the session's one line.
func (ss *session) end() {
	if ss == nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	result := "ok"
	switch {
	case !ss.loggedIn && ss.fails > 0:
		result = "login_failed"
	case !ss.loggedIn:
		result = "no_login"
	case ss.failedTransfers > 0:
		result = "transfer_failed"
	}
	user := ss.user
	if len(user) > 64 {
		user = user[:64] + "..."
	}
	ss.s.log.Info("ftp session", "session", ss.id, "remote", ss.remote.String(), "user", user, "tls", ss.tls,
		"duration", time.Since(ss.start).Round(time.Millisecond).String(),
		"filesSent", ss.reads, "bytesSent", ss.read, "filesReceived", ss.writes, "bytesReceived", ss.written,
		"failedLogins", ss.fails, "result", result)
}

// rootPath is the served-root path (leading "/") of rel, a path relative to the session's own
// root (an account's home, or the served root).
func (s *sessionFs) rootPath(rel string) string {
	return "/" + strings.TrimPrefix(path.Join(s.pol.home, rel), "./")
}

// done emits the event of a finished file operation (delete, rename, mkdir, rmdir) and returns
// its error.
func (s *sessionFs) done(kind EventKind, rel, to string, err error) error {
	if s.sess == nil {
		return err
	}
	e := Event{Kind: kind, Path: s.rootPath(rel), Err: err}
	if to != "" {
		e.To = s.rootPath(to)
	}
	s.sess.emit(e)
	return err
}

// transferFile wraps a file opened for RETR (read) or STOR/APPE/STOU (write) so that its close
// emits one read or write event with the bytes moved. Other opens (HASH, LIST) pass unchanged.
// The wrapper keeps ftpserverlib's zero-copy paths: io.Copy finds its WriteTo (downloads) and
// ReadFrom (uploads), which copy with the *os.File itself, exactly as io.Copy would have.
func (s *sessionFs) transferFile(f afero.File, rel string, write bool) afero.File {
	if s.sess == nil || s.lastCmd == nil {
		return f
	}
	cmd := s.lastCmd()
	kind := EventRead
	switch {
	case cmd == "RETR" && !write:
	case (cmd == "STOR" || cmd == "APPE" || cmd == "STOU") && write:
		kind = EventWrite
	default:
		return f
	}
	mode := ""
	if s.sess.cc != nil {
		switch s.sess.cc.GetLastDataChannel() {
		case ftplib.DataChannelPassive:
			mode = "passive"
		case ftplib.DataChannelActive:
			mode = "active"
		}
	}
	return &countedFile{File: f, sess: s.sess, kind: kind, path: s.rootPath(rel), mode: mode}
}

// countedFile counts the bytes of one transfer and reports them when closed.
type countedFile struct {
	afero.File
	sess   *session
	kind   EventKind
	path   string
	mode   string
	n      int64
	err    error
	closed bool
}

func (f *countedFile) fail(err error) {
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
}

func (f *countedFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.n += int64(n)
	f.fail(err)
	return n, err
}

func (f *countedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.n += int64(n)
	f.fail(err)
	return n, err
}

// WriteTo serves downloads: io.Copy(conn, f) becomes io.Copy(conn, *os.File) (sendfile).
func (f *countedFile) WriteTo(w io.Writer) (int64, error) {
	n, err := io.Copy(w, f.File)
	f.n += n
	f.fail(err)
	return n, err
}

// ReadFrom serves uploads: io.Copy(f, conn) becomes io.Copy(*os.File, conn) (splice).
func (f *countedFile) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(f.File, r)
	f.n += n
	f.fail(err)
	return n, err
}

// TransferError is ftpserverlib's FileTransferError: the data connection failed.
func (f *countedFile) TransferError(err error) {
	f.fail(err)
	if t, ok := f.File.(ftplib.FileTransferError); ok {
		t.TransferError(err)
	}
}

func (f *countedFile) Close() error {
	err := f.File.Close()
	if !f.closed {
		f.closed = true
		if f.kind == EventWrite {
			f.fail(err)
		}
		f.sess.fileDone(f.kind, f.path, f.n, f.mode, f.err)
	}
	return err
}

// attach is called from ClientConnected: the control connection learns its session.
func (s *Server) attach(cc ftplib.ClientContext) *session {
	ss := newSession(s, cc)
	cc.SetExtra(ss)
	s.mu.Lock()
	c, _ := s.conns[connKey(cc.RemoteAddr(), cc.LocalAddr())].(*controlConn)
	s.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		c.sess = ss
		c.mu.Unlock()
	}
	return ss
}

// Sessions is the number of control connections open now (the metrics read it).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// StopAccepting closes the control listener: no new session starts, those connected go on
// until Close. Serve returns nil.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	_ = s.ln.Listener.Close()
}
