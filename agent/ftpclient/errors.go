package ftpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrUnsupported is returned (wrapped) when the server does not implement a
// command the caller asked for, for example HASH.
var ErrUnsupported = errors.New("ftp: command not supported by the server")

// ErrReplyTooLong is returned (wrapped) when a control reply exceeds the
// client's limits: 8 KiB per line, 1 MiB per (multi-line) reply. The session
// is broken afterwards.
var ErrReplyTooLong = errors.New("ftp: reply too long")

// ErrReplyTimeout is returned (wrapped, together with the I/O timeout) when a
// complete reply does not arrive within the reply timeout (Config.ReplyTimeout,
// or the longer one of HashSize and HashRange). The deadline covers the
// whole reply, however slowly its lines trickle in. The session is broken
// afterwards.
var ErrReplyTimeout = errors.New("ftp: reply timed out")

// ErrListTooLarge is returned (wrapped) when a listing (List, ListFunc,
// NameList) exceeds Config.MaxListEntries or Config.MaxListBytes, or has a
// line longer than 64 KiB. The listing is aborted; the session stays usable
// when the server answers the abort properly.
var ErrListTooLarge = errors.New("ftp: listing too large")

// ErrStalled is returned (wrapped) when no byte moved on a data connection
// for Config.StallTimeout.
var ErrStalled = errors.New("ftp: data connection stalled")

// errBroken is returned by every call on a Client whose control connection is
// no longer usable.
var errBroken = errors.New("ftp: control connection is broken")

// ReplyError is an unexpected reply from the server.
type ReplyError struct {
	Code int    // reply code, e.g. 550
	Msg  string // reply text; lines of a multi-line reply are joined with "\n"
	// Hint, when set, is the client's reading of the likely cause and fix.
	Hint string
}

// replyErrorLen bounds the reply text quoted by ReplyError.Error.
const replyErrorLen = 240

func (e *ReplyError) Error() string {
	s := fmt.Sprintf("ftp %d: %s", e.Code, excerpt(strings.ReplaceAll(e.Msg, "\n", "; "), replyErrorLen))
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// NoSpace reports whether the reply says the server is out of storage: 452
// or 552, or any 4xx/5xx reply whose text contains "no space left".
func (e *ReplyError) NoSpace() bool {
	switch {
	case e.Code == 452 || e.Code == 552:
		return true
	case e.Code >= 400 && e.Code <= 599:
		return strings.Contains(strings.ToLower(e.Msg), "no space left")
	}
	return false
}

// Transient reports whether err is worth retrying with a new session
// (after a pause): the failure lies with the network or a temporary state
// of the server, not with the request.
//
// True for: network timeouts (including ErrReplyTimeout and context
// deadlines), refused, reset, aborted or closed connections, an unexpected
// EOF on the control or a data connection, ErrStalled, *DataConnError
// (except an active-mode Refused one, which carries the server's 5xx refusal
// of the announced address: retrying the same mode cannot help), and 4xx
// replies (421, 425, 426, 450, 451...) unless they say the server is out of
// space (NoSpace).
//
// False for: nil, context.Canceled, ErrUnsupported, ErrReplyTooLong,
// ErrListTooLarge, 5xx replies (530 not logged in, 550 no such file, 553...)
// and 4xx/5xx replies for which NoSpace is true: a full disk does not free
// itself by retrying. When err carries a *ReplyError together with an I/O
// error (an upload whose data connection was reset, with the server's
// reply), the reply decides.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, perm := range []error{ErrUnsupported, ErrReplyTooLong, ErrListTooLarge} {
		if errors.Is(err, perm) {
			return false
		}
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Code >= 400 && re.Code <= 499 && !re.NoSpace()
	}
	var de *DataConnError
	if errors.As(err, &de) || errors.Is(err, ErrStalled) || errors.Is(err, ErrReplyTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	for _, t := range []error{io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, t) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns) && (dns.IsTimeout || dns.IsTemporary)
}

// IsPermanent reports whether err is, or wraps, a 5xx *ReplyError: retrying
// the same command will fail again.
func IsPermanent(err error) bool {
	var re *ReplyError
	return errors.As(err, &re) && re.Code >= 500 && re.Code <= 599
}

// DataConnError reports a data connection that could not be established.
// Its message names the most likely cause and the fix.
type DataConnError struct {
	Mode    Mode
	Addr    string // passive: address dialled; active: address announced to the server
	Timeout bool   // the connection timed out (typical of a firewall dropping packets)
	// Refused: active mode only, the server refused the announced address
	// (PORT/EPRT answered 5xx), typically because this client is behind NAT.
	Refused bool
	Err     error
}

func (e *DataConnError) Error() string {
	if e.Mode == ModeActive {
		if e.Refused {
			return fmt.Sprintf("active data connection: the server refused to connect back to %s (%v): "+
				"it accepts only the address it sees this client at, so this client is probably behind NAT; "+
				"use passive mode, or announce the NAT's public address (--active-addr) and forward the active port range (--active-ports) to this host",
				e.Addr, e.Err)
		}
		if e.Timeout {
			return fmt.Sprintf("active data connection: the server did not connect back to %s %s: "+
				"a firewall or NAT in front of this client blocks inbound connections; "+
				"use passive mode, or open/forward the active port range (--active-ports) and announce the reachable address (--active-addr)",
				e.Addr, withinText(e.Err))
		}
		return fmt.Sprintf("active data connection: the server could not connect back to %s: %v: "+
			"a firewall or NAT in front of this client blocks inbound connections, or the announced address is wrong; "+
			"use passive mode, or open/forward the active port range (--active-ports) and announce the reachable address (--active-addr)",
			e.Addr, e.Err)
	}
	return fmt.Sprintf("passive data connection to %s failed: %v: the data port is unreachable: "+
		"the server's firewall probably blocks its passive port range (or the server announces a wrong address); "+
		"open the server's passive port range on its firewall, or use active mode", e.Addr, e.Err)
}

func (e *DataConnError) Unwrap() error { return e.Err }

// timeoutError is the cause of a DataConnError that timed out.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.after) }
func (e *timeoutError) Timeout() bool { return true }
func (e *timeoutError) Unwrap() error { return os.ErrDeadlineExceeded }

func withinText(err error) string {
	var te *timeoutError
	if errors.As(err, &te) {
		return "within " + te.after.String()
	}
	return fmt.Sprintf("(%v)", err)
}
