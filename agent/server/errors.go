package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/transfer"
)

// toStatus is the one place where domain errors become gRPC codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	var inv *transfer.InvalidError
	switch {
	case errors.As(err, &inv):
		return codes.InvalidArgument
	case errors.Is(err, transfer.ErrPolicy):
		return codes.PermissionDenied
	case errors.Is(err, transfer.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, transfer.ErrConflict):
		return codes.FailedPrecondition
	case errors.Is(err, transfer.ErrAuth):
		return codes.PermissionDenied
	case errors.Is(err, transfer.ErrNoSpace):
		return codes.ResourceExhausted
	case errors.Is(err, transfer.ErrClosed), errors.Is(err, transfer.ErrShutdown), errors.Is(err, transfer.ErrUnreachable):
		return codes.Unavailable
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}

// fromStatus turns a peer agent's gRPC error into a domain error with the same kind, so its
// code survives the hop (a NotFound there is a NotFound here); the message is the peer's.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := errors.New(st.Message())
	switch st.Code() {
	case codes.NotFound:
		return transfer.WithKind(transfer.ErrNotFound, e)
	case codes.PermissionDenied, codes.Unauthenticated:
		return transfer.WithKind(transfer.ErrAuth, e)
	case codes.FailedPrecondition:
		return transfer.WithKind(transfer.ErrConflict, e)
	case codes.ResourceExhausted:
		return transfer.WithKind(transfer.ErrNoSpace, e)
	case codes.Unavailable, codes.DeadlineExceeded:
		return transfer.WithKind(transfer.ErrUnreachable, e)
	case codes.Canceled:
		return errors.Join(e, context.Canceled)
	}
	return e
}
