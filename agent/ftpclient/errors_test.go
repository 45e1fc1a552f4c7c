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
	"testing"
	"time"
)

func TestNoSpace(t *testing.T) {
	tests := []struct {
		code int
		msg  string
		want bool
	}{
		{452, "Insufficient storage space", true},
		{552, "Exceeded storage allocation", true},
		{451, "Error writing file: No space left on device", true},
		{553, "write: no SPACE LEFT on device", true},
		{451, "Local error in processing", false},
		{550, "No such file", false},
		{226, "no space left (a success reply is never NoSpace)", false},
	}
	for _, tt := range tests {
		if got := (&ReplyError{Code: tt.code, Msg: tt.msg}).NoSpace(); got != tt.want {
			t.Errorf("NoSpace(%d %q) = %v, want %v", tt.code, tt.msg, got, tt.want)
		}
	}
}

func TestTransient(t *testing.T) {
	reply := func(code int, msg string) error {
		return fmt.Errorf("ftp STOR /f: %w", &ReplyError{Code: code, Msg: msg})
	}
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "write", Net: "tcp", Err: &os.SyscallError{Syscall: "write", Err: errno}}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"421", reply(421, "Timeout"), true},
		{"425", reply(425, "Can't open data connection"), true},
		{"426", reply(426, "Connection closed; transfer aborted"), true},
		{"450", reply(450, "File busy"), true},
		{"451", reply(451, "Local error"), true},
		{"451 no space", reply(451, "No space left on device"), false},
		{"452", reply(452, "Insufficient storage"), false},
		{"530", reply(530, "Not logged in"), false},
		{"550", reply(550, "No such file"), false},
		{"552", reply(552, "Quota exceeded"), false},
		{"553", reply(553, "Bad name"), false},
		{"500", reply(500, "Unknown command"), false},
		{"reply with reset", fmt.Errorf("ftp STOR /f: %w (data connection: %w)", &ReplyError{Code: 452}, opErr(syscall.ECONNRESET)), false},
		{"reset", fmt.Errorf("ftp RETR /f: %w", opErr(syscall.ECONNRESET)), true},
		{"broken pipe", opErr(syscall.EPIPE), true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}, true},
		{"EOF", fmt.Errorf("reading reply: %w", io.ErrUnexpectedEOF), true},
		{"plain EOF", io.EOF, true},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"reply timeout", fmt.Errorf("%w: no complete reply within 30s: %w", ErrReplyTimeout, os.ErrDeadlineExceeded), true},
		{"context deadline", fmt.Errorf("ftp dial: %w", context.DeadlineExceeded), true},
		{"stalled", fmt.Errorf("ftp RETR /f: %w: no data for 60s", ErrStalled), true},
		{"data conn", &DataConnError{Mode: ModePassive, Addr: "10.0.0.1:5000", Err: opErr(syscall.EHOSTUNREACH)}, true},
		{"data conn refused active", &DataConnError{Mode: ModeActive, Refused: true, Err: &ReplyError{Code: 500}}, false},
		{"broken after reset", fmt.Errorf("ftp SIZE: %w: %w", errBroken, opErr(syscall.ECONNRESET)), true},
		{"canceled", fmt.Errorf("ftp RETR /f: %w", context.Canceled), false},
		{"unsupported", fmt.Errorf("ftp HASH /f: %w (%w)", ErrUnsupported, &ReplyError{Code: 502}), false},
		{"reply too long", fmt.Errorf("%w: 1 MiB", ErrReplyTooLong), false},
		{"list too large", fmt.Errorf("ftp MLSD /: %w", ErrListTooLarge), false},
		{"other", errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := Transient(tt.err); got != tt.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestExcerpt: remote text in errors is printable ASCII, cut short.
func TestExcerpt(t *testing.T) {
	if got := excerpt("ok\x1b[31mred\xff", 120); got != "ok?[31mred?" {
		t.Errorf("excerpt = %q", got)
	}
	long := strings.Repeat("a", 500)
	if got := excerpt(long, 120); got != long[:120]+"..." {
		t.Errorf("excerpt(long) = %q", got)
	}
	re := &ReplyError{Code: 550, Msg: strings.Repeat("\x07x", 1000)}
	if msg := re.Error(); len(msg) > 260 || strings.ContainsRune(msg, '\x07') {
		t.Errorf("ReplyError.Error() = %d bytes %q", len(msg), msg)
	}
}

func TestHashTimeout(t *testing.T) {
	c := &Client{cfg: Config{ReplyTimeout: 30 * time.Second, HashRate: defaultHashRate}}
	if got := c.hashTimeout(10_000_000_000); got != 230*time.Second {
		t.Errorf("hashTimeout(10 GB) = %v, want 230s", got)
	}
	if got := c.hashTimeout(0); got != 30*time.Second {
		t.Errorf("hashTimeout(0) = %v", got)
	}
}
