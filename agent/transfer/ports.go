package transfer

import (
	"context"
	"io"
	"io/fs"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
)

// The engine's ports: small interfaces declared where they are used. The agent wires the real
// implementations (agent/storage, agent/store, agent/ftpclient, agent/server's Peers); tests
// hand in real temporary ones.

// Storage is the served root, shared with the FTP server (*storage.Root implements it). Names
// are root-relative and slash-separated; the implementation keeps them inside the root.
type Storage interface {
	OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error)
	Stat(name string) (fs.FileInfo, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	MkdirAll(name string, perm fs.FileMode) error
	FS() fs.FS
}

// Store keeps job records across restarts (agent/store implements it over bbolt). Records are
// opaque to the store: the engine encodes them.
type Store interface {
	Put(id string, rec []byte) error
	Delete(id string) error
	// List calls fn for every record, in no particular order.
	List(fn func(id string, rec []byte) error) error
}

// Session is an FTP session to one server (*ftpclient.Client implements it).
type Session interface {
	Stat(ctx context.Context, p string) (ftpclient.Entry, error)
	List(ctx context.Context, dir string) ([]ftpclient.Entry, error)
	// ListFunc streams a directory's entries to fn (bounded by the client's caps).
	ListFunc(ctx context.Context, dir string, fn func(ftpclient.Entry) error) error
	Size(ctx context.Context, p string) (int64, error)
	Retr(ctx context.Context, p string, offset int64) (io.ReadCloser, error)
	Stor(ctx context.Context, p string, offset int64) (io.WriteCloser, error)
	// HashSize is the server's SHA-256 of p, awaited as long as a file of size needs;
	// HashRange that of bytes [start,end) (Ferry agents answer it: a resumed part file's
	// prefix is compared with it). Both wrap ftpclient.ErrUnsupported when the server lacks it.
	HashSize(ctx context.Context, p string, size int64) (string, error)
	HashRange(ctx context.Context, p string, start, end int64) (string, error)
	Rename(ctx context.Context, from, to string) error
	Delete(ctx context.Context, p string) error
	MkdirAll(ctx context.Context, p string) error
	Close() error
}

// Grant is a one-time FTP credential from a peer agent, scoped to one path and direction.
type Grant struct {
	FTPAddr  string // host:port of the peer's FTP server (for LocalFTP: ":port")
	User     string
	Password string
	// PassivePorts is the granting server's passive port range ("50000-50100"), if known.
	PassivePorts string
	// TLSPin is the SHA-256 (hex) of the granting FTP server's certificate: the session uses
	// explicit FTPS and accepts only that certificate. Empty: that server has TLS off (plain FTP).
	TLSPin string
	// Logins is how many sessions may log in with it (GrantLogins); 0 or 1: one.
	Logins int
	// Path is what the granting agent saw at the granted path; nil from agents that do not
	// tell (the FTP session asks instead).
	Path *GrantedPath
	// Took is how long the grant call took (set by the engine): on a warm connection about one
	// round trip, so an upper bound of the round trip to the peer.
	Took time.Duration
}

// GrantedPath is a granted path as the granting agent saw it.
type GrantedPath struct {
	Exists  bool
	IsDir   bool
	Size    int64
	ModTime time.Time // to the second
}

// Peers reaches other Ferry agents (implemented over gRPC by the API layer). Errors carry the
// peer's kind of failure as a domain error (ErrNotFound, ErrAuth, ErrUnreachable...).
type Peers interface {
	Grant(ctx context.Context, agentAddr, path string, write bool) (Grant, error)
	// Reverse asks the peer at agentAddr to run the mirror image of a transfer against this
	// agent's FTP server and returns the peer's first snapshot (its ID names the transfer).
	Reverse(ctx context.Context, agentAddr string, r ReverseRequest) (Snapshot, error)
	// Follow watches the peer's transfer id until it ends: progress is called with each
	// snapshot (the last one final). It returns an error unless that transfer succeeded; when
	// ctx ends it cancels the peer's transfer unless ctx's cause is ErrShutdown.
	Follow(ctx context.Context, agentAddr, id string, progress func(Snapshot)) error
}

// ReverseRequest describes the transfer a peer runs against this agent's FTP server.
type ReverseRequest struct {
	PeerPath  string // path under the peer's root ("in/" with a trailing slash: into that directory)
	PeerSends bool   // true: the peer uploads PeerPath to us; false: it downloads into PeerPath
	FTPPort   int    // this agent's FTP port; the peer uses the address it sees the call from
	User      string // one-time credential on this agent's FTP server, scoped to LocalPath
	Password  string
	LocalPath string // path under this agent's root, as the peer's FTP path
	// RequestID makes the peer's start idempotent: asked again, it returns the same transfer.
	RequestID string
	// TLSPin is the SHA-256 of this agent's FTP server certificate, which the peer pins
	// (explicit FTPS); empty when this agent's FTP server has TLS off.
	TLSPin string
	// LimitRate is the transfer's bandwidth limit (bytes per second, 0 = none).
	LimitRate int64
	// Options are the job's own (filters, sync...), applied by the peer.
	Options Options
}

// LocalFTP issues one-time credentials on this agent's own FTP server, for reversed transfers.
type LocalFTP interface {
	LocalGrant(path string, write bool) (Grant, error)
}

// EventKind is what happened to a job.
type EventKind int

const (
	EventQueued EventKind = iota + 1
	EventStarted
	EventAttemptFailed
	EventSucceeded
	EventFailed
	EventCancelled
)

func (k EventKind) String() string {
	return [...]string{"", "queued", "started", "attempt_failed", "succeeded", "failed", "cancelled"}[k]
}

// Event is a job's change, as observers (hooks, metrics, the audit log) see it.
type Event struct {
	Kind     EventKind
	Transfer Snapshot
	Err      error // the attempt's or the job's error
}

// Observer receives job events. It is called on the job's goroutine: it must not block.
type Observer interface {
	Observe(Event)
}

// ProgressObserver is an Observer that also follows running jobs' bytes (the metrics count bytes
// as they move): Progress gets each new snapshot, at most once per Config.Tick, on the job's
// sampler goroutine. It must not block.
type ProgressObserver interface {
	Progress(Snapshot)
}

// Gate is an Observer that may veto: a transfer before it starts, and a received file before it
// is published under its final name (a scan, a naming policy). A non-nil error stops the job
// with that cause.
type Gate interface {
	BeforeStart(ctx context.Context, s Snapshot) error
	BeforePublish(ctx context.Context, s Snapshot, path string) error
}
