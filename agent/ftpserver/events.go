package ftpserver

import (
	"net/netip"
	"time"
)

// EventKind names what happened on the FTP server, as the audit log and hook plugins see it.
type EventKind string

const (
	EventLogin       EventKind = "login"        // a login was accepted
	EventLoginFailed EventKind = "login_failed" // a login was refused (Err says why)
	EventRead        EventKind = "read"         // a file was sent to the client (Bytes sent)
	EventWrite       EventKind = "write"        // a file was received and closed (Bytes received)
	EventDelete      EventKind = "delete"       // a file was removed
	EventRename      EventKind = "rename"       // Path was renamed to To
	EventMkdir       EventKind = "mkdir"        // a directory was made
	EventRmdir       EventKind = "rmdir"        // a directory was removed
)

// Event is one thing a session did. Paths are relative to the served root, with a leading "/";
// passwords never appear in an Event.
type Event struct {
	Time    time.Time
	Kind    EventKind
	Session uint32         // the server's session id (one control connection)
	User    string         // "" before a login
	Remote  netip.AddrPort // the client's control-connection address
	TLS     bool           // the control connection was under TLS
	Path    string
	To      string // for EventRename
	Bytes   int64  // for EventRead and EventWrite
	Mode    string // for EventRead and EventWrite: the data connection's "passive" or "active"
	Err     error  // for failures (a refused login, a failed operation)
}

// Events are emitted by the server (session.go): login and login_failed from the PASS
// command, read and write when the file of a RETR or STOR/APPE/STOU is closed (Bytes moved so
// far, Err set when the transfer failed), delete, rename, mkdir and rmdir once done (Err set
// when the operation failed). A permission refusal before the operation emits nothing.

// EventSink receives events. It is called on the session's goroutine: it must not block (queue
// and return).
type EventSink interface {
	FTPEvent(Event)
}
