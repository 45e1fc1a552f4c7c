package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// InvalidError is a request the engine refuses before doing anything. Field names the request
// field ("source", "destination", "mode", "id") so the API edge can tell the caller which one.
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, msg string) error { return &InvalidError{Field: field, Msg: msg} }

// Domain errors: the kinds of failure the layers above tell apart. They are made here, from FTP
// replies and network errors, and by Peers from a peer agent's answer; agent/server maps them to
// gRPC codes in one function. Test with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrAuth        = errors.New("permission denied")
	ErrUnreachable = errors.New("unreachable")
	ErrNoSpace     = errors.New("no space left on the destination")
	ErrConflict    = errors.New("conflict")
	ErrChecksum    = errors.New("checksum mismatch")
	// ErrClosed is returned when the manager is shutting down.
	ErrClosed = errors.New("transfer manager is shutting down")
	// ErrShutdown is the cause with which the agent's shutdown interrupts jobs: they are
	// checkpointed, not cancelled, and go on after the restart.
	ErrShutdown = errors.New("the agent is shutting down; the transfer goes on when it restarts")
)

// kindError marks err with a domain kind without changing its message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// WithKind marks err as being of a domain kind (ErrNotFound...), keeping its message.
func WithKind(kind, err error) error {
	if err == nil || errors.Is(err, kind) {
		return err
	}
	return &kindError{kind: kind, err: err}
}

func notFound(id string) error { return fmt.Errorf("transfer %q: %w", id, ErrNotFound) }

// classify gives an error from a session or a peer its domain kind (kept if it has one).
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range []error{ErrPolicy, ErrNotFound, ErrAuth, ErrUnreachable, ErrNoSpace, ErrConflict, ErrChecksum} {
		if errors.Is(err, k) {
			return err
		}
	}
	var re *ftpclient.ReplyError
	var ce *controlError
	var dce *ftpclient.DataConnError
	switch {
	case errors.As(err, &re) && re.NoSpace(), errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	case errors.As(err, &re) && (re.Code == 530 || re.Code == 532):
		return WithKind(ErrAuth, err)
	case errors.As(err, &re) && re.Code == 550:
		return WithKind(ErrNotFound, err)
	case errors.As(err, &ce) && ce.unreachable(), errors.As(err, &dce):
		return WithKind(ErrUnreachable, err)
	}
	return err
}

// ErrorCode is the machine-readable kind of err ("not_found"...), "" for other errors.
func ErrorCode(err error) string {
	var inv *InvalidError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &inv):
		return "invalid"
	case errors.Is(err, ErrPolicy):
		return "permission_denied"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrAuth):
		return "permission_denied"
	case errors.Is(err, ErrNoSpace):
		return "no_space"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	}
	return ""
}

// transient reports whether another attempt may succeed: network faults, timeouts, stalls,
// FTP's 4xx "try again" replies, a peer agent that is down (ftpclient.Transient decides for the
// FTP session's errors). Refused logins, missing files, a full disk, a conflict, invalid
// requests and cancellation are permanent.
func transient(err error) bool {
	var inv *InvalidError
	var re *ftpclient.ReplyError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.As(err, &inv),
		errors.Is(err, ErrAuth), errors.Is(err, ErrPolicy), errors.Is(err, ErrNotFound), errors.Is(err, ErrNoSpace),
		errors.Is(err, ErrConflict), errors.Is(err, ftpclient.ErrReplyTooLong),
		errors.Is(err, ftpclient.ErrListTooLarge), errors.Is(err, ftpclient.ErrUnsupported):
		return false // the server answered, and will answer the same again
	case ftpclient.Transient(err):
		return true
	case errors.As(err, &re) && strings.HasPrefix(re.Msg, "OOPS:"):
		return true // vsftpd's notice that its session process failed (killed, restarted)
	case errors.Is(err, ErrChecksum):
		return true // one clean retry (see job.started)
	case errors.Is(err, ErrUnreachable):
		return !errors.As(err, &re) // unless the server said no (an active-mode PORT refused)
	}
	return false
}
