// Package audit writes the agent's audit trail (--audit-log FILE): one JSON object per line, in
// a file only its owner may read (0600). It records
//
//   - FTP server events (ftpserver.EventSink): logins accepted and refused, files read and
//     written (with bytes and data mode), renames, deletes, directories made and removed;
//   - transfers (transfer.Observer): started, and their end with the local file read or written,
//     the remote endpoint (password redacted), bytes and the caller that started them;
//   - every gRPC call with the caller's identity (Interceptors, placed around the authenticator),
//     also calls refused for want of a credential or a role. Health checks are not recorded
//     (load balancers and probes call them every few seconds, without a credential).
//
// Records go through a queue to one writer goroutine, so neither an FTP session nor a job ever
// waits on the disk; if the queue is full (a stalled disk), records are dropped and the next
// record written says how many.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
)

// Record is one line of the audit log. Empty fields are left out.
type Record struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // ftp.login, ftp.login_failed, ftp.read, ..., transfer.started, transfer.succeeded, ..., rpc
	Op      string    `json:"op,omitempty"`
	User    string    `json:"user,omitempty"`   // FTP user
	Caller  string    `json:"caller,omitempty"` // API caller (security.Identity.Name) or the transfer's owner
	Role    string    `json:"role,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Session uint32    `json:"session,omitempty"`
	TLS     bool      `json:"tls,omitempty"`
	Path    string    `json:"path,omitempty"`
	To      string    `json:"to,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
	Mode    string    `json:"mode,omitempty"`
	ID      string    `json:"id,omitempty"` // transfer id
	Source  string    `json:"source,omitempty"`
	Dest    string    `json:"destination,omitempty"`
	Method  string    `json:"method,omitempty"`
	Code    string    `json:"code,omitempty"`
	Millis  int64     `json:"duration_ms,omitempty"`
	Error   string    `json:"error,omitempty"`
	Dropped int64     `json:"dropped_before,omitempty"`
}

// Log is an open audit log.
type Log struct {
	f     *os.File
	q     chan Record
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	drops int64
	err   error
}

// queueLen bounds the records waiting for the disk.
const queueLen = 4096

// Open appends to file, creating it with mode 0600 (an existing file is set to 0600).
func Open(file string) (*Log, error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit-log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit-log: %w", err)
	}
	l := &Log{f: f, q: make(chan Record, queueLen), done: make(chan struct{})}
	go l.write()
	return l, nil
}

func (l *Log) write() {
	defer close(l.done)
	enc := json.NewEncoder(l.f)
	for r := range l.q {
		if err := enc.Encode(r); err != nil {
			l.mu.Lock()
			if l.err == nil {
				l.err = err
			}
			l.mu.Unlock()
		}
	}
}

// Add queues r (its Time set if zero); it never blocks.
func (l *Log) Add(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.q == nil {
		return // closed
	}
	r.Dropped = l.drops
	select {
	case l.q <- r:
		l.drops = 0
	default:
		l.drops++
	}
}

// Close writes what is queued and closes the file. Safe to call more than once.
func (l *Log) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.q)
		l.q = nil
		l.mu.Unlock()
		<-l.done
		err = errors.Join(l.err, l.f.Sync(), l.f.Close())
	})
	return err
}

var (
	_ ftpserver.EventSink = (*Log)(nil)
	_ transfer.Observer   = (*Log)(nil)
)

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FTPEvent records an FTP server event.
func (l *Log) FTPEvent(e ftpserver.Event) {
	r := Record{Time: e.Time, Kind: "ftp." + string(e.Kind), User: e.User, Session: e.Session, TLS: e.TLS,
		Path: e.Path, To: e.To, Bytes: e.Bytes, Mode: e.Mode, Error: errText(e.Err)}
	if e.Remote.IsValid() {
		r.Remote = e.Remote.String()
	}
	l.Add(r)
}

// Observe records a transfer's start and end. The end names the local file the transfer read
// (upload) or wrote (download) as op.
func (l *Log) Observe(e transfer.Event) {
	s := e.Transfer
	r := Record{Kind: "transfer." + e.Kind.String(), ID: s.ID, Caller: s.Owner, Source: s.Source,
		Dest: s.Destination, Mode: s.Mode.String(), Error: errText(e.Err)}
	switch e.Kind {
	case transfer.EventStarted, transfer.EventQueued:
	case transfer.EventSucceeded, transfer.EventFailed, transfer.EventCancelled:
		r.Bytes = s.BytesDone
		r.Op, r.Path = "write", s.Destination
		if s.Direction == transfer.Upload {
			r.Op, r.Path = "read", s.Source
		}
	default:
		return // attempt_failed: the log has it; the trail has the end
	}
	l.Add(r)
}

// skip lists methods the trail leaves out.
func skip(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

type passedKey struct{}

// Interceptors returns the audit's gRPC interceptors: outer goes before the authenticator and
// records calls it refused, inner after it and records every call it let through, with the
// caller's identity.
func (l *Log) Interceptors() (outerU, innerU grpc.UnaryServerInterceptor, outerS, innerS grpc.StreamServerInterceptor) {
	outerU = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		passed := new(bool)
		start := time.Now()
		resp, err := h(context.WithValue(ctx, passedKey{}, passed), req)
		if !*passed && !skip(info.FullMethod) {
			l.rpc(ctx, info.FullMethod, start, err)
		}
		return resp, err
	}
	innerU = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if p, ok := ctx.Value(passedKey{}).(*bool); ok {
			*p = true
		}
		start := time.Now()
		resp, err := h(ctx, req)
		if !skip(info.FullMethod) {
			l.rpc(ctx, info.FullMethod, start, err)
		}
		return resp, err
	}
	outerS = func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		passed := new(bool)
		start := time.Now()
		err := h(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), passedKey{}, passed)})
		if !*passed && !skip(info.FullMethod) {
			l.rpc(ss.Context(), info.FullMethod, start, err)
		}
		return err
	}
	innerS = func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if p, ok := ss.Context().Value(passedKey{}).(*bool); ok {
			*p = true
		}
		start := time.Now()
		err := h(srv, ss)
		if !skip(info.FullMethod) {
			l.rpc(ss.Context(), info.FullMethod, start, err)
		}
		return err
	}
	return
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func (l *Log) rpc(ctx context.Context, method string, start time.Time, err error) {
	r := Record{Time: start, Kind: "rpc", Method: method, Code: status.Code(err).String(),
		Millis: time.Since(start).Milliseconds()}
	if id := security.FromContext(ctx); id.Name != "" {
		r.Caller, r.Role = id.Name, id.Role.String()
	} else {
		r.Caller = "unauthenticated"
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		r.Remote = p.Addr.String()
		if _, isUnix := p.Addr.(*net.UnixAddr); isUnix {
			r.Remote = "unix"
		}
	}
	if err != nil {
		r.Error = status.Convert(err).Message()
	}
	l.Add(r)
}
