package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/ctl/render"
)

// Exit codes; documented in the root command's help. They are a contract for scripts.
const (
	exitOK          = 0
	exitFailure     = 1 // transfer failed or cancelled by someone else, or any other error
	exitUsage       = 2 // bad command line, or InvalidArgument from the agent
	exitUnreachable = 3 // the agent could not be reached
	exitNotFound    = 4 // no such transfer, file or directory
	exitInterrupted = 130
)

// exitError carries the exit code of a failed command. silent means the outcome is already on
// stdout (the result line of a transfer) and nothing more is printed on stderr.
type exitError struct {
	code   int
	err    error
	silent bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func interrupted(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errInterrupted)
}

// classify turns an error from a command into an exitError: the one place where gRPC codes
// become exit codes and messages become the one stderr line.
func (a *app) classify(ctx context.Context, err error) *exitError {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	var fe *render.FinalError
	if errors.As(err, &fe) {
		code := exitFailure
		if fe.Transfer.GetErrorCode() == "not_found" {
			code = exitNotFound // the same code however the not-found reached the agent
		}
		// JSON: the result event on stdout is the report. Text: the one stderr line.
		return &exitError{code: code, err: err, silent: a.format == render.JSON}
	}
	if interrupted(ctx) {
		return &exitError{code: exitInterrupted, err: errInterrupted}
	}
	st, ok := status.FromError(err)
	if !ok {
		return &exitError{code: exitFailure, err: err}
	}
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		return &exitError{code: exitUsage, err: remoteError{errors.New(msg)}}
	case codes.NotFound:
		return &exitError{code: exitNotFound, err: errors.New(msg)}
	case codes.Unavailable:
		if !a.reachedAgent() {
			if other := speaksOther(a.agent); other != "" {
				return &exitError{code: exitUnreachable,
					err: fmt.Errorf("is this a Ferry agent? %s speaks %s; --agent wants the agent's gRPC address (default port %s)", a.agent, other, defaultPort)}
			}
			return &exitError{code: exitUnreachable,
				err: fmt.Errorf("cannot reach agent at %s: %s", a.agent, dialCause(msg))}
		}
	case codes.DeadlineExceeded:
		if !a.reachedAgent() {
			return &exitError{code: exitUnreachable,
				err: fmt.Errorf("cannot reach agent at %s: no answer within %s", a.agent, a.timeout)}
		}
		return &exitError{code: exitFailure, err: fmt.Errorf("no answer from agent within %s (--timeout)", a.timeout)}
	case codes.Canceled:
		return &exitError{code: exitFailure, err: errors.New("request cancelled")}
	case codes.Unauthenticated:
		return &exitError{code: exitFailure, err: fmt.Errorf("the agent refused the call: %s; an agent started without --token-file keeps its admin token in <state-dir>/admin.token", msg)}
	case codes.PermissionDenied:
		return &exitError{code: exitFailure, err: fmt.Errorf("the agent refused the call: %s", msg)}
	}
	return &exitError{code: exitFailure, err: errors.New(msg)}
}

// dialCause trims grpc-go's wrapping of a dial error down to the network error.
func dialCause(msg string) string {
	const marker = "Error while dialing: "
	if i := strings.Index(msg, marker); i >= 0 {
		msg = strings.TrimRight(msg[i+len(marker):], `"`)
	}
	return msg
}
