package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ferry-dev/ferry/agent/transfer"
)

// Size limits of the API's requests. Every string, bytes and repeated field of every request
// has one (TestLimitsCoverEveryField proves it): a field over its limit is refused with
// InvalidArgument before anything is stored or logged.
const (
	MaxPathBytes      = 4096                  // paths and URLs
	MaxIDBytes        = 64                    // transfer ids (the agent makes 16 hex digits)
	MaxRequestIDBytes = transfer.MaxRequestID // idempotency keys (the engine's own bound)
	MaxUserBytes      = 256                   // FTP user names and passwords
	MaxStates         = 8                     // ListTransfersRequest.states entries
	// MaxPageTokenBytes bounds page tokens; a ListFiles token holds the last name returned.
	MaxPageTokenBytes = 8192

	// MaxRecvMsgSize is the gRPC server's limit on one request message: no request needs more
	// than a few KiB, so a larger one is refused (ResourceExhausted) before it is even decoded.
	MaxRecvMsgSize = 1 << 20
	// maxHeaderListSize bounds the metadata of one call (tokens and the like).
	maxHeaderListSize = 256 << 10
)

// fieldLimits maps the full name of every bounded request field to its limit: bytes for
// strings and bytes, entries for repeated fields.
var fieldLimits = map[protoreflect.FullName]int{
	"ferry.v1.StartTransferRequest.source":        MaxPathBytes,
	"ferry.v1.StartTransferRequest.destination":   MaxPathBytes,
	"ferry.v1.StartTransferRequest.request_id":    MaxRequestIDBytes,
	"ferry.v1.GetTransferRequest.id":              MaxIDBytes,
	"ferry.v1.ListTransfersRequest.states":        MaxStates,
	"ferry.v1.ListTransfersRequest.page_token":    MaxPageTokenBytes,
	"ferry.v1.WatchTransferRequest.id":            MaxIDBytes,
	"ferry.v1.CancelTransferRequest.id":           MaxIDBytes,
	"ferry.v1.UpdateTransferRequest.id":           MaxIDBytes,
	"ferry.v1.ListFilesRequest.url":               MaxPathBytes,
	"ferry.v1.ListFilesRequest.page_token":        MaxPageTokenBytes,
	"ferry.v1.GrantAccessRequest.path":            MaxPathBytes,
	"ferry.v1.DiagnoseRequest.url":                MaxPathBytes,
	"ferry.v1.ReverseTransferRequest.path":        MaxPathBytes,
	"ferry.v1.ReverseTransferRequest.user":        MaxUserBytes,
	"ferry.v1.ReverseTransferRequest.password":    MaxUserBytes,
	"ferry.v1.ReverseTransferRequest.remote_path": MaxPathBytes,
	"ferry.v1.ReverseTransferRequest.request_id":  MaxRequestIDBytes,
	"ferry.v1.TransferOptions.include":            transfer.MaxPatterns,
	"ferry.v1.TransferOptions.exclude":            transfer.MaxPatterns,
	// 64 hex digits; anything longer is refused here, the form by the handler.
	"ferry.v1.ReverseTransferRequest.tls_cert_sha256": 64,
	// Fleet jobs (proto/ferry/v1/fleet.proto; the coordinator checks names and forms).
	"ferry.v1.StartFleetJobRequest.source_path":      MaxPathBytes,
	"ferry.v1.StartFleetJobRequest.destination_path": MaxPathBytes,
	"ferry.v1.StartFleetJobRequest.targets":          MaxFleetTargets,
	"ferry.v1.StartFleetJobRequest.request_id":       MaxRequestIDBytes,
	"ferry.v1.FleetAgent.name":                       64,
	"ferry.v1.FleetAgent.address":                    255,
	"ferry.v1.GetFleetJobRequest.id":                 MaxIDBytes,
	"ferry.v1.WatchFleetJobRequest.id":               MaxIDBytes,
	"ferry.v1.CancelFleetJobRequest.id":              MaxIDBytes,
}

// MaxFleetTargets bounds the hosts of one fleet job (StartFleetJobRequest.targets).
const MaxFleetTargets = 10000

// defaultFieldLimit applies to a string or bytes field missing from fieldLimits (a field added
// later without a thought); defaultRepeatedLimit to such a repeated field.
const (
	defaultFieldLimit    = 1024
	defaultRepeatedLimit = 16
)

// checkLimits refuses a request with a field over its limit. The error names the field first,
// as every InvalidArgument of the API does: "source: 3145728 bytes; at most 4096". Unknown
// fields (from a newer client) are dropped: nothing keeps them.
func checkLimits(m proto.Message) error {
	return checkMessage(m.ProtoReflect(), "")
}

func checkMessage(m protoreflect.Message, prefix string) error {
	if len(m.GetUnknown()) > 0 && m.IsValid() {
		m.SetUnknown(nil)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		limit, ok := fieldLimits[fd.FullName()]
		switch {
		case fd.IsList():
			if !ok {
				limit = defaultRepeatedLimit
			}
			l := v.List()
			if l.Len() > limit {
				err = invalidf("%s: %d entries; at most %d", name, l.Len(), limit)
				return false
			}
			if fd.Kind() == protoreflect.MessageKind {
				for i := 0; i < l.Len() && err == nil; i++ {
					err = checkMessage(l.Get(i).Message(), fmt.Sprintf("%s[%d].", name, i))
				}
			} else if fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind {
				for i := 0; i < l.Len() && err == nil; i++ {
					err = checkScalar(fmt.Sprintf("%s[%d]", name, i), l.Get(i), fd.Kind(), defaultFieldLimit)
				}
			}
		case fd.IsMap():
			if !ok {
				limit = defaultRepeatedLimit
			}
			if v.Map().Len() > limit {
				err = invalidf("%s: %d entries; at most %d", name, v.Map().Len(), limit)
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			err = checkMessage(v.Message(), name+".")
		case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
			if !ok {
				limit = defaultFieldLimit
			}
			err = checkScalar(name, v, fd.Kind(), limit)
		}
		return err == nil
	})
	return err
}

func checkScalar(name string, v protoreflect.Value, k protoreflect.Kind, limit int) error {
	n := 0
	if k == protoreflect.StringKind {
		n = len(v.String())
	} else {
		n = len(v.Bytes())
	}
	if n > limit {
		return invalidf("%s: %d bytes; at most %d", name, n, limit)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// ServerOptions are the gRPC server options the API needs: the message and metadata size
// limits, and interceptors that check every request's fields against their limits before a
// handler sees it. Chain authentication before them (a caller without credentials learns
// nothing about the limits).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.ChainUnaryInterceptor(LimitsUnaryInterceptor),
		grpc.ChainStreamInterceptor(LimitsStreamInterceptor),
	}
}

// LimitsUnaryInterceptor refuses a unary request with a field over its limit.
func LimitsUnaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := checkLimits(m); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// LimitsStreamInterceptor refuses a streaming call's request with a field over its limit.
func LimitsStreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &limitedStream{ServerStream: ss})
}

type limitedStream struct{ grpc.ServerStream }

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		return checkLimits(pm)
	}
	return nil
}
