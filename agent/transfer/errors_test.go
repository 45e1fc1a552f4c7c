package transfer

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

func TestTransient(t *testing.T) {
	reply := func(code int, msg string) error { return &ftpclient.ReplyError{Code: code, Msg: msg} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"reset", fmt.Errorf("retrieve x: %w", syscall.ECONNRESET), true},
		{"421", reply(421, "Service not available"), true},
		{"426", reply(426, "Connection closed; transfer aborted"), true},
		{"vsftpd OOPS", reply(500, "OOPS: priv_sock_get_cmd"), true},
		{"peer agent down", WithKind(ErrUnreachable, errors.New("connection refused")), true},
		{"checksum (one clean retry)", fmt.Errorf("%w for x", ErrChecksum), true},
		{"530", classify(reply(530, "Login incorrect")), false},
		{"550", classify(reply(550, "No such file")), false},
		{"553", reply(553, "Could not create file"), false},
		{"452 full disk", classify(reply(452, "Insufficient storage space")), false},
		{"551 with no space text", classify(reply(551, "write: no space left on device")), false},
		{"reply too long", fmt.Errorf("greeting: %w", ftpclient.ErrReplyTooLong), false},
		{"reply too long at dial", classify(&controlError{addr: "h:21", err: ftpclient.ErrReplyTooLong}), false},
		{"listing too large", ftpclient.ErrListTooLarge, false},
		{"cancelled", context.Canceled, false},
		{"invalid", invalid("source", "bad"), false},
		{"conflict", WithKind(ErrConflict, errors.New("busy")), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("%s: transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if !errors.Is(classify(reply(452, "x")), ErrNoSpace) || ErrorCode(classify(reply(530, "x"))) != "permission_denied" {
		t.Error("classify does not give replies their kinds")
	}
}
