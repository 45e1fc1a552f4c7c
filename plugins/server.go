package plugins

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/ferry-dev/ferry/proto/ferry/plugin/v1"
)

// The plugin side: gRPC requests to the domain interfaces, the caller's context passed on (its
// deadline is the agent's timeout for the call).

type infoServer struct {
	pluginv1.UnimplementedInfoServiceServer
	impl Impl
}

func (s *infoServer) GetInfo(context.Context, *pluginv1.GetInfoRequest) (*pluginv1.GetInfoResponse, error) {
	r := &pluginv1.GetInfoResponse{Name: s.impl.Name, Version: s.impl.Version}
	if s.impl.Auth != nil {
		r.Kinds = append(r.Kinds, pluginv1.Kind_KIND_AUTH)
	}
	if s.impl.Hook != nil {
		r.Kinds = append(r.Kinds, pluginv1.Kind_KIND_HOOK)
	}
	return r, nil
}

type authServer struct {
	pluginv1.UnimplementedAuthServiceServer
	impl Authenticator
}

func (s *authServer) Authenticate(ctx context.Context, req *pluginv1.AuthenticateRequest) (*pluginv1.AuthenticateResponse, error) {
	r, err := s.impl.Authenticate(ctx, AuthRequest{
		User: req.GetUser(), Password: req.GetPassword(), Remote: req.GetRemoteAddress(), TLS: req.GetTls(),
	})
	if err != nil {
		return nil, err
	}
	out := &pluginv1.AuthenticateResponse{Reason: r.Reason}
	switch r.Result {
	case AuthAllow:
		out.Result, out.Home, out.ReadOnly = pluginv1.AuthResult_AUTH_RESULT_ALLOW, r.Home, r.ReadOnly
	case AuthDeny:
		out.Result = pluginv1.AuthResult_AUTH_RESULT_DENY
	default:
		out.Result = pluginv1.AuthResult_AUTH_RESULT_UNKNOWN_USER
	}
	return out, nil
}

type hookServer struct {
	pluginv1.UnimplementedHookServiceServer
	impl Hook
}

func (s *hookServer) Notify(ctx context.Context, req *pluginv1.NotifyRequest) (*pluginv1.NotifyResponse, error) {
	if err := s.impl.Notify(ctx, eventFromProto(req.GetEvent())); err != nil {
		return nil, err
	}
	return &pluginv1.NotifyResponse{}, nil
}

func (s *hookServer) Check(ctx context.Context, req *pluginv1.CheckRequest) (*pluginv1.CheckResponse, error) {
	d, err := s.impl.Check(ctx, eventFromProto(req.GetEvent()))
	if err != nil {
		return nil, err
	}
	return &pluginv1.CheckResponse{Allow: d.Allow, Reason: d.Reason}, nil
}

var kindToProto = map[EventKind]pluginv1.EventKind{
	KindQueued:        pluginv1.EventKind_EVENT_KIND_QUEUED,
	KindStarted:       pluginv1.EventKind_EVENT_KIND_STARTED,
	KindAttemptFailed: pluginv1.EventKind_EVENT_KIND_ATTEMPT_FAILED,
	KindSucceeded:     pluginv1.EventKind_EVENT_KIND_SUCCEEDED,
	KindFailed:        pluginv1.EventKind_EVENT_KIND_FAILED,
	KindCancelled:     pluginv1.EventKind_EVENT_KIND_CANCELLED,
	KindBeforeStart:   pluginv1.EventKind_EVENT_KIND_BEFORE_START,
	KindBeforePublish: pluginv1.EventKind_EVENT_KIND_BEFORE_PUBLISH,
	KindFTPUploaded:   pluginv1.EventKind_EVENT_KIND_FTP_UPLOADED,
	KindFTPDeleted:    pluginv1.EventKind_EVENT_KIND_FTP_DELETED,
	KindFTPRenamed:    pluginv1.EventKind_EVENT_KIND_FTP_RENAMED,
}

var kindFromProto = func() map[pluginv1.EventKind]EventKind {
	m := make(map[pluginv1.EventKind]EventKind, len(kindToProto))
	for k, v := range kindToProto {
		m[v] = k
	}
	return m
}()

func eventToProto(e Event) *pluginv1.Event {
	out := &pluginv1.Event{Kind: kindToProto[e.Kind], Path: e.Path, Error: e.Error}
	if !e.Time.IsZero() {
		out.Time = timestamppb.New(e.Time)
	}
	if t := e.Transfer; t != nil {
		out.Transfer = &pluginv1.Transfer{
			Id: t.ID, Source: t.Source, Destination: t.Destination, Direction: t.Direction, State: t.State,
			BytesDone: t.BytesDone, BytesTotal: t.BytesTotal, FilesDone: t.FilesDone, FilesTotal: t.FilesTotal,
			Attempt: int32(t.Attempt), Sha256: t.SHA256, Error: t.Error, Owner: t.Owner, RequestId: t.RequestID,
		}
	}
	if f := e.File; f != nil {
		out.File = &pluginv1.FileEvent{User: f.User, RemoteAddress: f.Remote, Tls: f.TLS, Path: f.Path, To: f.To, Bytes: f.Bytes}
	}
	return out
}

func eventFromProto(p *pluginv1.Event) Event {
	e := Event{Kind: kindFromProto[p.GetKind()], Path: p.GetPath(), Error: p.GetError()}
	if e.Kind == "" {
		e.Kind = EventKind(p.GetKind().String()) // a kind newer than this SDK
	}
	if p.GetTime() != nil {
		e.Time = p.GetTime().AsTime()
	}
	if t := p.GetTransfer(); t != nil {
		e.Transfer = &Transfer{
			ID: t.GetId(), Source: t.GetSource(), Destination: t.GetDestination(), Direction: t.GetDirection(),
			State: t.GetState(), BytesDone: t.GetBytesDone(), BytesTotal: t.GetBytesTotal(),
			FilesDone: t.GetFilesDone(), FilesTotal: t.GetFilesTotal(), Attempt: int(t.GetAttempt()),
			SHA256: t.GetSha256(), Error: t.GetError(), Owner: t.GetOwner(), RequestID: t.GetRequestId(),
		}
	}
	if f := p.GetFile(); f != nil {
		e.File = &FileEvent{User: f.GetUser(), Remote: f.GetRemoteAddress(), TLS: f.GetTls(), Path: f.GetPath(), To: f.GetTo(), Bytes: f.GetBytes()}
	}
	return e
}
