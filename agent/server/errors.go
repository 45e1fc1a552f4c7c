package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/ftpclient"
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
	var inv *transfer.InvalidError
	var reply *ftpclient.ReplyError
	var dce *ftpclient.DataConnError
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.Error())
	case errors.Is(err, transfer.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, transfer.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.As(err, &dce):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &reply) && reply.Code == 550:
		return status.Error(codes.NotFound, err.Error())
	case errors.As(err, &reply) && (reply.Code == 530 || reply.Code == 532):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}
