package ftpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
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
	c      *Client
	ctx    context.Context
	stop   func() bool // unregisters the cancellation hook
	conn   net.Conn
	what   string // "RETR /path", for errors
	upload bool   // STOR
	eof    bool   // reader saw EOF
	ioErr  error  // first data I/O error
	closed bool
}

func (c *Client) startData(ctx context.Context, verb, path string, offset int64) (*transfer, error) {
	what := verb + " " + path
	if err := checkArg(path); err != nil {
		return nil, fmt.Errorf("ftp %s: path %w", what, err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("ftp %s: negative offset %d", what, offset)
	}
	var conn net.Conn
	err := c.do(ctx, what, func() error {
		var err error
		conn, err = c.openTransfer(ctx, what, offset)
		return err
	})
	if err != nil {
		return nil, err
	}
	t := &transfer{c: c, ctx: ctx, conn: conn, what: what, upload: verb == "STOR"}
	c.inTransfer = true
	t.stop = context.AfterFunc(ctx, func() { c.fail(context.Cause(ctx)) })
	return t, nil
}

// ioError maps an I/O error caused by cancellation to the context's error.
func (t *transfer) ioError(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if t.ctx.Err() != nil {
		err = t.ctx.Err()
	}
	if t.ioErr == nil {
		t.ioErr = err
	}
	return fmt.Errorf("ftp %s: %w", t.what, err)
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
		return t.abort()
	}
	r, err := c.readReply(c.cfg.ReplyTimeout)
	for err == nil && r.Code/100 == 1 {
		r, err = c.readReply(c.cfg.ReplyTimeout)
	}
	if err == nil && r.Code != 226 && r.Code != 250 {
		err = r.err()
	}
	if err == nil && cerr != nil {
		// e.g. the TLS close_notify could not be sent: the server may
		// have seen a truncated upload even though it answered 226.
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ftp %s: %w", t.what, err)
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
func (t *transfer) abort() error {
	c := t.c
	if err := c.send("ABOR"); err != nil {
		return fmt.Errorf("ftp %s: aborted: %w", t.what, err)
	}
	// The transfer command's reply (226 if it had completed, else 426/451)
	// comes first, then ABOR's (225/226). Servers that had already finished
	// may answer ABOR alone with 225/226 right after the transfer's 226.
	first, err := c.readReply(abortTimeout)
	for err == nil && first.Code/100 == 1 {
		first, err = c.readReply(abortTimeout)
	}
	if err != nil {
		c.fail(err)
		return fmt.Errorf("ftp %s: aborted: %w", t.what, err)
	}
	second, err := c.readReply(abortTimeout)
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
	if r.t.eof {
		return 0, io.EOF
	}
	n, err := r.t.conn.Read(p)
	if err == io.EOF {
		r.t.eof = true
	}
	return n, r.t.ioError(err)
}

// Close ends the download; see Retr.
func (r *reader) Close() error { return r.t.finish(r.t.eof && r.t.ioErr == nil) }

type writer struct{ t *transfer }

func (w *writer) Write(p []byte) (int, error) {
	if w.t.closed {
		return 0, errors.New("ftp: write after Close")
	}
	n, err := w.t.conn.Write(p)
	return n, w.t.ioError(err)
}

// ReadFrom copies from src to the data connection; on a plain TCP data
// connection this uses sendfile/splice when src is an *os.File.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	if w.t.closed {
		return 0, errors.New("ftp: write after Close")
	}
	var (
		n   int64
		err error
	)
	if tc, ok := w.t.conn.(*net.TCPConn); ok {
		n, err = tc.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.t.conn}, src)
	}
	return n, w.t.ioError(err)
}

// Close ends the upload; see Stor. After a write error the transfer is
// aborted and an error is returned.
func (w *writer) Close() error {
	err := w.t.finish(w.t.ioErr == nil)
	if w.t.ioErr != nil && err == nil {
		// The server may well answer 226 to a truncated upload.
		err = fmt.Errorf("ftp %s: %w", w.t.what, w.t.ioErr)
	}
	return err
}
