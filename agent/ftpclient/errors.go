package ftpclient

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrUnsupported is returned (wrapped) when the server does not implement a
// command the caller asked for, for example HASH.
var ErrUnsupported = errors.New("ftp: command not supported by the server")

// errBroken is returned by every call on a Client whose control connection is
// no longer usable.
var errBroken = errors.New("ftp: control connection is broken")

// ReplyError is an unexpected reply from the server.
type ReplyError struct {
	Code int    // reply code, e.g. 550
	Msg  string // reply text; lines of a multi-line reply are joined with "\n"
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("ftp %d: %s", e.Code, strings.ReplaceAll(e.Msg, "\n", "; "))
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
