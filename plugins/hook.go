package plugins

import (
	"context"
	"time"
)

// Hook is the hook kind: it receives events and answers checks. The agent calls both with a
// deadline (its --plugin-timeout); honour ctx.
type Hook interface {
	// Notify tells of an event; the agent sends them one at a time, in order. An error is
	// logged by the agent, nothing else.
	Notify(ctx context.Context, e Event) error
	// Check decides whether a transfer may start (KindBeforeStart) or a received file may
	// take its final name (KindBeforePublish). An error counts as the hook being down: the
	// agent applies the hook's fail-open or fail-closed setting.
	Check(ctx context.Context, e Event) (Decision, error)
}

// EventKind is what happened, or what a check asks. Its string form is the one hooks show
// outside (JSON "kind", FERRY_EVENT).
type EventKind string

// Event kinds.
const (
	KindQueued        EventKind = "queued"
	KindStarted       EventKind = "started"
	KindAttemptFailed EventKind = "attempt_failed"
	KindSucceeded     EventKind = "succeeded"
	KindFailed        EventKind = "failed"
	KindCancelled     EventKind = "cancelled"
	KindBeforeStart   EventKind = "before_start"   // a check
	KindBeforePublish EventKind = "before_publish" // a check
	KindFTPUploaded   EventKind = "ftp_uploaded"
	KindFTPDeleted    EventKind = "ftp_deleted"
	KindFTPRenamed    EventKind = "ftp_renamed"
)

// IsCheck reports whether k is asked through Check rather than told through Notify.
func (k EventKind) IsCheck() bool { return k == KindBeforeStart || k == KindBeforePublish }

// Event is what a hook receives. Transfer is set for transfer events and checks, File for FTP
// file events.
type Event struct {
	Kind     EventKind  `json:"kind"`
	Time     time.Time  `json:"time"`
	Transfer *Transfer  `json:"transfer,omitempty"`
	File     *FileEvent `json:"file,omitempty"`
	// Path is, for KindBeforePublish, the root-relative final name the file is about to take.
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
}

// Transfer is a transfer as hooks see it (passwords redacted from URLs).
type Transfer struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Direction   string `json:"direction"` // "download" or "upload"
	State       string `json:"state"`     // "queued", "running", "succeeded", "failed", "cancelled"
	BytesDone   int64  `json:"bytes_done"`
	BytesTotal  int64  `json:"bytes_total"`
	FilesDone   int64  `json:"files_done"`
	FilesTotal  int64  `json:"files_total"`
	Attempt     int    `json:"attempt"`
	SHA256      string `json:"sha256,omitempty"`
	Error       string `json:"error,omitempty"`
	Owner       string `json:"owner,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
}

// FileEvent is an FTP client's file operation on the agent's FTP server.
type FileEvent struct {
	User   string `json:"user"`
	Remote string `json:"remote"`
	TLS    bool   `json:"tls"`
	Path   string `json:"path"` // root-relative with a leading "/"
	To     string `json:"to,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
}

// Decision is a check's answer.
type Decision struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
}
