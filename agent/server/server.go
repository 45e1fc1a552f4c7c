// Package server is the gRPC edge of ferry-agent: it validates requests, calls the transfer engine
// and maps its errors to gRPC codes (errors.go). It also implements the engine's Peers interface
// over gRPC (peers.go), for agent:// endpoints.
package server

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Granter issues one-time FTP credentials scoped to a root-relative path (the agent's FTP server).
type Granter interface {
	Grant(path string, write bool) (user, password string, expires time.Time, err error)
	FTPPort() int
	PassivePorts() (lo, hi int) // zero when any port
}

// TLSPinner is a Granter whose FTP server has TLS on: grants carry its certificate's SHA-256
// (hex), which the peer pins. An empty fingerprint means TLS is off.
type TLSPinner interface {
	FTPTLSFingerprint() string
}

// Config wires the service to the rest of the agent.
type Config struct {
	Manager *transfer.Manager
	Granter Granter
	// Info returns the static part of GetAgentInfo.
	Info func() *ferryv1.GetAgentInfoResponse
	// CancelWait bounds how long CancelTransfer waits for the final state.
	CancelWait time.Duration
}

// Service implements ferryv1.AgentServiceServer.
type Service struct {
	ferryv1.UnimplementedAgentServiceServer
	cfg Config
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.CancelWait <= 0 {
		cfg.CancelWait = 10 * time.Second
	}
	return &Service{cfg: cfg}
}

func (s *Service) GetAgentInfo(context.Context, *ferryv1.GetAgentInfoRequest) (*ferryv1.GetAgentInfoResponse, error) {
	return s.cfg.Info(), nil
}

func (s *Service) StartTransfer(ctx context.Context, req *ferryv1.StartTransferRequest) (*ferryv1.StartTransferResponse, error) {
	mode, set, ok := modeFromProto(req.GetMode())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "mode: unknown value %d", req.GetMode())
	}
	snap, err := s.cfg.Manager.Start(transfer.Spec{
		Source: req.GetSource(), Destination: req.GetDestination(), Mode: mode, ModeSet: set,
		RequestID: req.GetRequestId(), Restart: req.GetRestart(), Owner: security.FromContext(ctx).Name,
		LimitRate: req.GetLimitRate(),
		Streams:   int(req.GetStreams()),
		Options:   optionsFromProto(req.GetOptions()),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.StartTransferResponse{Transfer: transferToProto(snap)}, nil
}

func (s *Service) GetTransfer(ctx context.Context, req *ferryv1.GetTransferRequest) (*ferryv1.GetTransferResponse, error) {
	snap, err := s.own(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &ferryv1.GetTransferResponse{Transfer: transferToProto(snap)}, nil
}

// own returns the transfer's snapshot if the caller may reach it: a peer agent only the
// transfers it started itself.
func (s *Service) own(ctx context.Context, id string) (transfer.Snapshot, error) {
	snap, err := s.cfg.Manager.Get(id)
	if err != nil {
		return transfer.Snapshot{}, toStatus(err)
	}
	if who := security.FromContext(ctx); security.OwnOnly(who) && snap.Owner != who.Name {
		return transfer.Snapshot{}, status.Errorf(codes.PermissionDenied, "id: transfer %s was not started by this peer", id)
	}
	return snap, nil
}

// WatchTransfer sends the current snapshot, then the newest one after each change, and returns
// once the final state is sent. A watcher that goes away only drops its own subscription.
func (s *Service) WatchTransfer(req *ferryv1.WatchTransferRequest, stream ferryv1.AgentService_WatchTransferServer) error {
	if _, err := s.own(stream.Context(), req.GetId()); err != nil {
		return err
	}
	ch, stop, err := s.cfg.Manager.Watch(req.GetId())
	if err != nil {
		return toStatus(err)
	}
	defer stop()
	var last transfer.Snapshot
	for {
		select {
		case snap, ok := <-ch:
			if !ok {
				if !last.State.Final() {
					// The agent is shutting down; the transfer goes on when it restarts.
					return status.Error(codes.Unavailable, transfer.ErrShutdown.Error())
				}
				return nil
			}
			last = snap
			if err := stream.Send(&ferryv1.WatchTransferResponse{Transfer: transferToProto(snap)}); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		}
	}
}

func (s *Service) CancelTransfer(ctx context.Context, req *ferryv1.CancelTransferRequest) (*ferryv1.CancelTransferResponse, error) {
	if _, err := s.own(ctx, req.GetId()); err != nil {
		return nil, err
	}
	snap, err := s.cfg.Manager.Cancel(req.GetId(), s.cfg.CancelWait)
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.CancelTransferResponse{Transfer: transferToProto(snap)}, nil
}

// GrantAccess gives a peer agent a one-time FTP credential for one path and direction.
// The API is unauthenticated until the API-auth issue lands, so the agent listens on loopback
// by default; the credential is scoped, single-use and short-lived.
func (s *Service) GrantAccess(_ context.Context, req *ferryv1.GrantAccessRequest) (*ferryv1.GrantAccessResponse, error) {
	if s.cfg.Granter == nil {
		return nil, status.Error(codes.FailedPrecondition, "this agent has no FTP server")
	}
	var write bool
	switch req.GetAccess() {
	case ferryv1.Access_ACCESS_READ:
	case ferryv1.Access_ACCESS_WRITE:
		write = true
	default:
		return nil, status.Error(codes.InvalidArgument, "access: must be ACCESS_READ or ACCESS_WRITE")
	}
	e, err := transfer.ParseEndpoint("path", req.GetPath())
	if err != nil {
		return nil, toStatus(err)
	}
	if e.Kind != transfer.KindLocal {
		return nil, status.Error(codes.InvalidArgument, "path: must be a path under the agent root, not a URL")
	}
	user, pass, exp, logins, err := s.grant(e.Path, write, req.GetLogins())
	if err != nil {
		return nil, err
	}
	resp := &ferryv1.GrantAccessResponse{
		FtpPort: int32(s.cfg.Granter.FTPPort()), User: user, Password: pass, ExpiresAt: timestamppb.New(exp),
		Logins: int32(logins),
	}
	if lo, hi := s.cfg.Granter.PassivePorts(); lo > 0 {
		resp.PassivePorts = &ferryv1.PortRange{Low: int32(lo), High: int32(hi)}
	}
	if p, ok := s.cfg.Granter.(TLSPinner); ok {
		resp.TlsCertSha256 = p.FTPTLSFingerprint()
	}
	if s.cfg.Manager != nil {
		// What the peer would ask the FTP server first (MLST), answered now: it plans its
		// parallel streams before its session is up.
		d := s.cfg.Manager.DescribeGrant(e.Path)
		resp.GrantedPath = &ferryv1.GrantedPath{Exists: d.Exists, IsDir: d.IsDir, Size: d.Size}
		if !d.ModTime.IsZero() {
			resp.GrantedPath.Modified = timestamppb.New(d.ModTime)
		}
	}
	return resp, nil
}

// Diagnose probes the FTP server of an ftp:// or agent:// URL from this agent.
func (s *Service) Diagnose(ctx context.Context, req *ferryv1.DiagnoseRequest) (*ferryv1.DiagnoseResponse, error) {
	var timeout time.Duration
	if req.GetTimeout() != nil {
		if err := req.GetTimeout().CheckValid(); err != nil || req.GetTimeout().AsDuration() <= 0 || req.GetTimeout().AsDuration() > time.Minute {
			return nil, status.Error(codes.InvalidArgument, "timeout: want more than 0 and at most 1m")
		}
		timeout = req.GetTimeout().AsDuration()
	}
	rep, err := s.cfg.Manager.Diagnose(ctx, req.GetUrl(), timeout)
	if err != nil {
		return nil, toStatus(err)
	}
	e, _ := transfer.ParseEndpoint("url", req.GetUrl())
	resp := &ferryv1.DiagnoseResponse{
		Url: e.String(), FtpAddress: rep.Addr, Recommendation: rep.Recommendation,
		SuggestedMode: suggestedToProto(rep.Suggested),
	}
	if s.cfg.Info != nil {
		resp.Agent = s.cfg.Info().GetGrpcAddress()
	}
	for _, c := range rep.Checks {
		resp.Checks = append(resp.Checks, &ferryv1.Check{
			Name: c.Name, Status: checkStatusToProto(c.Status), Duration: durationpb.New(c.Duration), Detail: c.Detail,
		})
	}
	return resp, nil
}

// ReverseTransfer runs, for a peer agent, the mirror of its transfer against its FTP server.
func (s *Service) ReverseTransfer(ctx context.Context, req *ferryv1.ReverseTransferRequest) (*ferryv1.ReverseTransferResponse, error) {
	mode, set, ok := modeFromProto(req.GetMode())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "mode: unknown value %d", req.GetMode())
	}
	if req.GetFtpPort() < 1 || req.GetFtpPort() > 65535 {
		return nil, status.Error(codes.InvalidArgument, "ftp_port: want 1-65535")
	}
	if req.GetUser() == "" {
		return nil, status.Error(codes.InvalidArgument, "user: is empty")
	}
	if req.GetRemotePath() == "" {
		return nil, status.Error(codes.InvalidArgument, "remote_path: is empty")
	}
	if e, err := transfer.ParseEndpoint("path", req.GetPath()); err != nil {
		return nil, toStatus(err)
	} else if e.Kind != transfer.KindLocal {
		return nil, status.Error(codes.InvalidArgument, "path: must be a path under the agent root, not a URL")
	}
	var ta *net.TCPAddr
	if p, ok := peer.FromContext(ctx); ok {
		ta, _ = p.Addr.(*net.TCPAddr)
	}
	if ta == nil {
		return nil, status.Error(codes.FailedPrecondition, "reverse transfers need a caller on TCP (its address is where this agent connects)")
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	u := url.URL{
		Scheme: "ftp",
		User:   url.UserPassword(req.GetUser(), req.GetPassword()),
		Host:   net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(int(req.GetFtpPort()))),
		Path:   "/" + strings.TrimPrefix(req.GetRemotePath(), "/"),
	}
	r := transfer.Spec{Mode: mode, ModeSet: set, RequestID: req.GetRequestId(), Owner: security.FromContext(ctx).Name, LimitRate: req.GetLimitRate(),
		Options: optionsFromProto(req.GetOptions())}
	if pin := req.GetTlsCertSha256(); pin != "" {
		// The caller's FTP server has TLS: explicit FTPS, trusting only its certificate.
		if _, err := ftpclient.ParseFingerprint(pin); err != nil {
			return nil, status.Error(codes.InvalidArgument, "tls_cert_sha256: want the SHA-256 of a certificate, 64 hex digits")
		}
		u.Scheme, r.TLSPin = "ftpes", pin
	}
	switch req.GetDirection() {
	case ferryv1.Direction_DIRECTION_UPLOAD:
		r.Source, r.Destination = req.GetPath(), u.String()
	case ferryv1.Direction_DIRECTION_DOWNLOAD:
		r.Source, r.Destination = u.String(), req.GetPath()
	default:
		return nil, status.Error(codes.InvalidArgument, "direction: must be DIRECTION_UPLOAD or DIRECTION_DOWNLOAD")
	}
	snap, err := s.cfg.Manager.Start(r)
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.ReverseTransferResponse{Transfer: transferToProto(snap)}, nil
}

// UpdateTransfer changes a queued or running transfer's bandwidth limit. A peer agent may change
// only the transfers it started (as CancelTransfer).
func (s *Service) UpdateTransfer(ctx context.Context, req *ferryv1.UpdateTransferRequest) (*ferryv1.UpdateTransferResponse, error) {
	if req.GetLimitRate() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "limit_rate: is %d; want bytes per second, 0 for no limit", req.GetLimitRate())
	}
	if _, err := s.own(ctx, req.GetId()); err != nil {
		return nil, err
	}
	snap, err := s.cfg.Manager.Update(req.GetId(), req.GetLimitRate())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.UpdateTransferResponse{Transfer: transferToProto(snap)}, nil
}
