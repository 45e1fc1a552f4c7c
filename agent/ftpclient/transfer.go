package ftpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

const (
	// failReplyTimeout bounds the wait for the server's reply after a data
	// connection failed: it usually says why (452 disk full, 426...).
	failReplyTimeout = 3 * time.Second
	// sendfileChunk is the most a sendfile/splice call may move between two
	// refreshes of the stall deadline: at the default StallTimeout a
	// transfer slower than 4 KiB/s would count as stalled.
	sendfileChunk = 256 << 10
	// copyBufSize is the buffer of Stor's ReadFrom for other readers.
	copyBufSize = 1 << 20
)

// Retr downloads path starting at offset (REST when offset > 0). The
// transfer is guarded by ctx until Close. Close reads the final reply and
// returns an error if the transfer did not complete; closing before EOF
// aborts the transfer (ABOR), keeping the control connection usable when the
// server answers properly and marking it broken otherwise.
func (c *Client) Retr(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	t, err := c.startData(ctx, "RETR", path, offset)
	if err != nil {
		return nil, err
	}
	return &reader{t}, nil
}

// Stor uploads to path; with offset > 0 it sends REST first and the server
// writes from that offset (resume). Close closes the data connection, then
// waits for the final reply. The writer implements io.ReaderFrom: without
// TLS it delegates to the TCP connection, so copying from an *os.File uses
// sendfile.
func (c *Client) Stor(ctx context.Context, path string, offset int64) (io.WriteCloser, error) {
	t, err := c.startData(ctx, "STOR", path, offset)
	if err != nil {
		return nil, err
	}
	return &writer{t}, nil
}

// transfer is an open data transfer.
type transfer struct {
	c    *Client
	ctx  context.Context
	stop func() bool // unregisters the cancellation hook
	conn net.Conn
	what string // "RETR /path", for errors
	// digestPath is the file of a RETR or STOR: the one whose digest its 226 may carry (XDIGEST).
	digestPath string
	upload     bool  // STOR
	eof        bool  // reader saw EOF
	ioErr      error // first data I/O error (cause)
	failed     error // the error returned for ioErr, repeated by later calls
	closed     bool

	stall time.Duration // Config.StallTimeout
	armed time.Time     // when the stall deadline was last pushed back
	// final is the transfer command's final reply when it was read after
	// a data connection failure (it usually tells the real cause).
	final *reply
}

func (c *Client) startData(ctx context.Context, verb, path string, offset int64) (*transfer, error) {
	return c.startDataMode(ctx, verb, path, offset, nil)
}

// startDataMode is startData; with pl (passive mode) EPSV and the command go in one flight,
// after pl.before, and the data connection is dialled while the server handles them: for
// servers known to take commands pipelined and to wait for the connection (Ferry agents).
func (c *Client) startDataMode(ctx context.Context, verb, path string, offset int64, pl *pipeline) (*transfer, error) {
	what := verb
	if path != "" {
		what += " " + path
	}
	if err := checkArg(path); err != nil {
		return nil, fmt.Errorf("ftp %s: path %w", what, err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("ftp %s: negative offset %d", what, offset)
	}
	var conn net.Conn
	c.xferSum = transferSum{}
	err := c.do(ctx, what, func() error {
		var err error
		conn, err = c.openTransfer(ctx, what, offset, pl)
		return err
	})
	if err != nil {
		return nil, err
	}
	t := &transfer{c: c, ctx: ctx, conn: conn, what: what, upload: verb == "STOR", stall: c.cfg.StallTimeout}
	if verb == "RETR" || verb == "STOR" {
		t.digestPath = path
	}
	c.inTransfer = true
	t.stop = context.AfterFunc(ctx, func() { c.fail(context.Cause(ctx)) })
	return t, nil
}

// arm pushes the stall deadline back before a read or write. To save work
// it does so only when a quarter of StallTimeout has passed since the last
// time, so a stall is detected after 3/4 to 4/4 of StallTimeout.
func (t *transfer) arm(write bool) {
	if t.stall <= 0 {
		return
	}
	now := time.Now()
	if !t.armed.IsZero() && now.Sub(t.armed) < t.stall/4 {
		return
	}
	t.armed = now
	if write {
		_ = t.conn.SetWriteDeadline(now.Add(t.stall))
	} else {
		_ = t.conn.SetReadDeadline(now.Add(t.stall))
	}
}

// ioError maps a data I/O error to the error returned: the context's error
// after a cancellation, ErrStalled after the stall deadline, and otherwise
// (reset, broken pipe...) the server's 4xx/5xx reply, when it sends one
// within failReplyTimeout, together with the I/O error.
func (t *transfer) ioError(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if t.failed != nil {
		return t.failed
	}
	t.ioErr = err
	switch {
	case t.ctx.Err() != nil:
		t.ioErr = t.ctx.Err()
		t.failed = fmt.Errorf("ftp %s: %w", t.what, t.ioErr)
	case t.stall > 0 && errors.Is(err, os.ErrDeadlineExceeded):
		t.failed = fmt.Errorf("ftp %s: %w: no data for %s", t.what, ErrStalled, t.stall)
	default:
		if r := t.failReply(); r != nil && r.Code >= 400 {
			t.failed = fmt.Errorf("ftp %s: %w (data connection: %w)", t.what, t.c.replyErr(r), err)
		} else {
			t.failed = fmt.Errorf("ftp %s: %w", t.what, err)
		}
	}
	return t.failed
}

// failReply reads the transfer command's final reply after the data
// connection failed, waiting at most failReplyTimeout. It returns nil when
// no reply came (the client stays usable: the reply is still due and Close
// aborts the transfer) or when the control connection failed too.
func (t *transfer) failReply() *reply {
	c := t.c
	if t.final != nil || c.alive() != nil {
		return t.final
	}
	deadline := time.Now().Add(failReplyTimeout)
	for {
		r, err := c.readReplyBy(deadline, failReplyTimeout, true)
		if err != nil {
			return nil
		}
		if r.Code >= 200 {
			t.final = r
			return r
		}
	}
}

// finish closes the data connection and reads the final reply. complete
// says whether all data was transferred; if not, the transfer is aborted.
func (t *transfer) finish(complete bool) error {
	if t.closed {
		return nil
	}
	t.closed = true
	c := t.c
	defer func() {
		t.stop()
		c.setData(nil)
		c.inTransfer = false
	}()
	if t.final != nil {
		// The server has answered already (after a data failure).
		t.conn.Close()
		if t.ctx.Err() != nil {
			return fmt.Errorf("ftp %s: %w", t.what, t.ctx.Err())
		}
		if t.failed != nil {
			return t.failed
		}
		if t.final.Code != 226 && t.final.Code != 250 {
			return fmt.Errorf("ftp %s: %w", t.what, c.replyErr(t.final))
		}
		return nil
	}
	// The stall deadline may have passed while the caller paused before
	// Close: it must not fail the TLS close_notify of a complete upload.
	_ = t.conn.SetDeadline(time.Time{})
	var cerr error
	if t.upload && complete {
		cerr = t.shutdownWrite()
	}
	if err := t.conn.Close(); cerr == nil {
		cerr = err
	}
	if t.ctx.Err() != nil {
		return fmt.Errorf("ftp %s: %w", t.what, t.ctx.Err())
	}
	if err := c.alive(); err != nil {
		return fmt.Errorf("ftp %s: %w", t.what, err)
	}
	if !complete {
		wait := abortTimeout
		if errors.Is(t.failed, ErrStalled) {
			// A server that stopped moving data may not answer ABOR either: the abort gets
			// a short wait, so a stall costs little more than StallTimeout.
			wait = min(time.Second, max(t.stall/4, 250*time.Millisecond))
		}
		return t.abort(wait)
	}
	// The data is all sent: ReplyTimeout is for the server to confirm it
	// (its own closing and flushing), however long the transfer took.
	r, err := c.readFinal(c.cfg.ReplyTimeout)
	if err == nil && r.Code != 226 && r.Code != 250 {
		err = c.replyErr(r)
	}
	if err == nil && cerr != nil {
		// e.g. the TLS close_notify could not be sent: the server may
		// have seen a truncated upload even though it answered 226.
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ftp %s: %w", t.what, err)
	}
	if c.xdigest && t.digestPath != "" {
		if size, sum, ok := replyDigest(r); ok {
			c.xferSum = transferSum{path: t.digestPath, sum: sum, size: size}
		}
	}
	return nil
}

// shutdownWrite ends an upload cleanly: TLS close_notify, TCP FIN, then
// reading until the server closes. Closing with unread data (e.g. TLS 1.3
// session tickets the server sent on the data connection) would send a TCP
// RST, which servers such as vsftpd report as a failed upload.
func (t *transfer) shutdownWrite() error {
	raw := t.conn
	if tc, ok := t.conn.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return fmt.Errorf("tls close_notify: %w", err)
		}
		raw = tc.NetConn()
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return err
		}
	}
	_ = t.conn.SetReadDeadline(time.Now().Add(t.c.cfg.ReplyTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(t.conn, 1<<20))
	return nil
}

// abort handles a transfer closed before its end: ABOR, then the reply to
// the transfer command and the reply to ABOR. Without a prompt, sane answer
// the control connection is marked broken.
func (t *transfer) abort(wait time.Duration) error {
	c := t.c
	if err := c.send("ABOR"); err != nil {
		return fmt.Errorf("ftp %s: aborted: %w", t.what, err)
	}
	// The transfer command's reply (226 if it had completed, else 426/451)
	// comes first, then ABOR's (225/226). Servers that had already finished
	// may answer ABOR alone with 225/226 right after the transfer's 226.
	first, err := c.readFinal(wait)
	if err != nil {
		c.fail(err)
		return fmt.Errorf("ftp %s: aborted: %w", t.what, err)
	}
	second, err := c.readReply(wait)
	if err != nil {
		c.fail(err)
		return fmt.Errorf("ftp %s: aborted: %w", t.what, err)
	}
	if second.Code/100 != 2 {
		c.fail(second.err())
		return fmt.Errorf("ftp %s: aborted: %w", t.what, second.err())
	}
	if first.Code == 226 || first.Code == 250 {
		return nil // everything had been transferred anyway
	}
	return fmt.Errorf("ftp %s: aborted: %w", t.what, first.err())
}

type reader struct{ t *transfer }

func (r *reader) Read(p []byte) (int, error) {
	if r.t.closed {
		return 0, errors.New("ftp: read after Close")
	}
	if r.t.failed != nil {
		return 0, r.t.failed
	}
	if r.t.eof {
		return 0, io.EOF
	}
	r.t.arm(false)
	n, err := r.t.conn.Read(p)
	if err == io.EOF {
		r.t.eof = true
	}
	return n, r.t.ioError(err)
}

// Close ends the download; see Retr.
func (r *reader) Close() error {
	err := r.t.finish(r.t.eof && r.t.ioErr == nil)
	if r.t.failed != nil && err == nil {
		err = r.t.failed
	}
	return err
}

type writer struct{ t *transfer }

func (w *writer) Write(p []byte) (int, error) {
	if w.t.closed {
		return 0, errors.New("ftp: write after Close")
	}
	if w.t.failed != nil {
		return 0, w.t.failed
	}
	w.t.arm(true)
	n, err := w.t.conn.Write(p)
	return n, w.t.ioError(err)
}

var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// ReadFrom copies from src to the data connection. On a plain TCP data
// connection, when src is an *os.File or a TCP connection (or an
// *io.LimitedReader over one: a chunk of a file, for progress and rate limits), it uses
// sendfile/splice, a chunk at a time so that the stall deadline moves on
// with the data; other readers are copied through Write with a 1 MiB
// buffer.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	t := w.t
	if t.closed {
		return 0, errors.New("ftp: write after Close")
	}
	if t.failed != nil {
		return 0, t.failed
	}
	tc, ok := t.conn.(*net.TCPConn)
	inner := src
	if lr, isLR := src.(*io.LimitedReader); isLR {
		inner = lr.R // the kernel paths take a limit: sendfile n bytes of a file
	}
	switch inner.(type) {
	case *os.File, *net.TCPConn:
	default:
		ok = false
	}
	if !ok {
		buf := copyBufs.Get().(*[copyBufSize]byte)
		defer copyBufs.Put(buf)
		return io.CopyBuffer(writerOnly{w}, src, buf[:])
	}
	if t.stall <= 0 {
		n, err := tc.ReadFrom(src)
		return n, t.ioError(err)
	}
	var total int64
	for {
		t.armed = time.Time{} // a fresh deadline for every chunk
		t.arm(true)
		lr := &io.LimitedReader{R: inner, N: sendfileChunk}
		outer, limited := src.(*io.LimitedReader)
		if limited {
			lr.N = min(lr.N, outer.N)
			if lr.N <= 0 {
				return total, nil
			}
		}
		want := lr.N
		n, err := tc.ReadFrom(lr)
		total += n
		if limited {
			outer.N -= n
		}
		if err != nil || n < want {
			return total, t.ioError(err)
		}
	}
}

// writerOnly hides writer's ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// Close ends the upload; see Stor. After a write error the transfer is
// aborted and an error is returned.
func (w *writer) Close() error {
	err := w.t.finish(w.t.ioErr == nil)
	if w.t.failed != nil && err == nil {
		// The server may well answer 226 to a truncated upload.
		err = w.t.failed
	}
	return err
}
