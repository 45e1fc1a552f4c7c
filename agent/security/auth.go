package security

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Identity is an authenticated caller.
type Identity struct {
	Role Role
	// Name is stable and not secret: "token:<8 hex of its SHA-256>" or "cert:<subject CN>".
	Name string
}

type identityKey struct{}

// FromContext returns the caller's identity (RoleNone when the call was not authenticated).
func FromContext(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// WithIdentity returns ctx carrying id (for handlers called without the interceptor, in tests).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// CertRule maps client certificates whose subject CN matches Pattern (a path.Match glob) to Role.
type CertRule struct {
	Role    Role
	Pattern string
}

// ParseCertRule reads "ROLE=CN-GLOB", e.g. "peer=agent-*".
func ParseCertRule(s string) (CertRule, error) {
	r, pat, ok := strings.Cut(s, "=")
	if !ok || pat == "" {
		return CertRule{}, fmt.Errorf("want ROLE=CN-GLOB, got %q", s)
	}
	role, err := ParseRole(r)
	if err != nil {
		return CertRule{}, err
	}
	if _, err := path.Match(pat, ""); err != nil {
		return CertRule{}, fmt.Errorf("pattern %q: %v", pat, err)
	}
	return CertRule{Role: role, Pattern: pat}, nil
}

// Who may call what. Peers may also watch, get and cancel transfers; the handlers restrict
// those to the transfers the same peer started (OwnOnly).
var allowed = map[string]Role{
	ferryv1.AgentService_GetAgentInfo_FullMethodName:    RoleViewer,
	ferryv1.AgentService_GetTransfer_FullMethodName:     RoleViewer,
	ferryv1.AgentService_ListTransfers_FullMethodName:   RoleViewer,
	ferryv1.AgentService_WatchTransfer_FullMethodName:   RoleViewer,
	ferryv1.AgentService_ListFiles_FullMethodName:       RoleViewer,
	ferryv1.AgentService_StartTransfer_FullMethodName:   RoleAdmin,
	ferryv1.AgentService_CancelTransfer_FullMethodName:  RoleAdmin,
	ferryv1.AgentService_UpdateTransfer_FullMethodName:  RoleAdmin,
	ferryv1.AgentService_Diagnose_FullMethodName:        RoleAdmin,
	ferryv1.AgentService_GrantAccess_FullMethodName:     RolePeer,
	ferryv1.AgentService_ReverseTransfer_FullMethodName: RolePeer,
	// Fleet jobs make the coordinator act on other agents (with its peer token): starting and
	// cancelling one is an admin's decision; watching is a viewer's.
	ferryv1.FleetService_StartFleetJob_FullMethodName:  RoleAdmin,
	ferryv1.FleetService_CancelFleetJob_FullMethodName: RoleAdmin,
	ferryv1.FleetService_GetFleetJob_FullMethodName:    RoleViewer,
	ferryv1.FleetService_ListFleetJobs_FullMethodName:  RoleViewer,
	ferryv1.FleetService_WatchFleetJob_FullMethodName:  RoleViewer,
	// Server reflection (grpcurl list/describe): the API's shape, no data; viewers and up.
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      RoleViewer,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": RoleViewer,
}

// public are the methods anyone may call without a credential: the standard health service,
// for load balancers and kubelet probes, which carry no token. It tells SERVING or NOT_SERVING
// and nothing else. A credential, if sent, is still checked.
var public = map[string]bool{
	"/grpc.health.v1.Health/Check": true,
	"/grpc.health.v1.Health/Watch": true,
	"/grpc.health.v1.Health/List":  true,
}

// peerMay are the methods a peer may call besides those its role allows outright.
var peerMay = map[string]bool{
	ferryv1.AgentService_GetAgentInfo_FullMethodName:    true,
	ferryv1.AgentService_GrantAccess_FullMethodName:     true,
	ferryv1.AgentService_ReverseTransfer_FullMethodName: true,
	ferryv1.AgentService_GetTransfer_FullMethodName:     true, // own transfers only
	ferryv1.AgentService_WatchTransfer_FullMethodName:   true, // own transfers only
	ferryv1.AgentService_CancelTransfer_FullMethodName:  true, // own transfers only
	ferryv1.AgentService_UpdateTransfer_FullMethodName:  true, // own transfers only
}

// fleetMay are the methods a fleet coordinator may call besides a peer's: StartTransfer (only
// of an agent:// source to a local path, see fleetRequestOK).
var fleetMay = map[string]bool{
	ferryv1.AgentService_StartTransfer_FullMethodName: true,
}

// fleetRequestOK restricts a fleet coordinator's StartTransfer to a delivery: an agent://
// source into this agent's root, never an upload or an ftp:// endpoint.
func fleetRequestOK(method string, req any) error {
	if method != ferryv1.AgentService_StartTransfer_FullMethodName {
		return nil
	}
	r, ok := req.(*ferryv1.StartTransferRequest)
	if !ok || !strings.HasPrefix(r.GetSource(), "agent://") || strings.Contains(r.GetDestination(), "://") {
		return status.Error(codes.PermissionDenied, "role fleet may only start transfers from an agent:// source into this agent's root")
	}
	return nil
}

// OwnOnly reports whether id may only reach the transfers it started itself.
func OwnOnly(id Identity) bool { return id.Role == RolePeer || id.Role == RoleFleet }

// may reports whether role may call method.
func may(role Role, method string) bool {
	if role == RoleAdmin {
		return true
	}
	if role == RolePeer {
		return peerMay[method]
	}
	if role == RoleFleet {
		return peerMay[method] || fleetMay[method]
	}
	need, ok := allowed[method]
	return ok && need == RoleViewer && role == RoleViewer
}

// Authenticator checks every call. The zero value refuses everything.
type Authenticator struct {
	Tokens    *Tokens
	CertRules []CertRule
	// Disabled lets every caller in as admin (--no-auth, loopback experiments only).
	Disabled bool
}

// Unary and Stream are the server interceptors.
func (a *Authenticator) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		if id.Role == RoleFleet {
			if err := fleetRequestOK(info.FullMethod, req); err != nil {
				return nil, err
			}
		}
		return h(WithIdentity(ctx, id), req)
	}
}

func (a *Authenticator) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		id, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &identityStream{ServerStream: ss, ctx: WithIdentity(ss.Context(), id)})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// check authenticates the caller and authorizes the method.
func (a *Authenticator) check(ctx context.Context, method string) (Identity, error) {
	id, err := a.authenticate(ctx)
	if public[method] {
		if md, _ := metadata.FromIncomingContext(ctx); err != nil && len(md.Get("authorization")) == 0 &&
			status.Code(err) == codes.Unauthenticated {
			return Identity{}, nil // no credential at all: anonymous
		}
		return id, err
	}
	if err != nil {
		return Identity{}, err
	}
	if !may(id.Role, method) {
		return Identity{}, status.Errorf(codes.PermissionDenied, "role %s may not call %s", id.Role, method[strings.LastIndexByte(method, '/')+1:])
	}
	return id, nil
}

func (a *Authenticator) authenticate(ctx context.Context) (Identity, error) {
	if a.Disabled {
		return Identity{Role: RoleAdmin, Name: "no-auth"}, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		scheme, tok, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "bearer") {
			return Identity{}, status.Error(codes.Unauthenticated, "authorization: want \"Bearer TOKEN\"")
		}
		role, name := a.Tokens.Lookup(strings.TrimSpace(tok))
		if role == RoleNone {
			return Identity{}, status.Error(codes.Unauthenticated, "invalid token")
		}
		return Identity{Role: role, Name: name}, nil
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			cert := ti.State.VerifiedChains[0][0]
			role := a.certRole(cert)
			name := "cert:" + cert.Subject.CommonName
			if role == RoleNone {
				return Identity{}, status.Errorf(codes.PermissionDenied, "client certificate %q maps to no role", cert.Subject.CommonName)
			}
			return Identity{Role: role, Name: name}, nil
		}
	}
	return Identity{}, status.Error(codes.Unauthenticated, "no credentials: send a bearer token (FERRY_TOKEN or --token-file) or a client certificate")
}

// certRole applies the rules (first match wins); without rules the certificate's OU names the
// role ("admin", "peer" or "viewer").
func (a *Authenticator) certRole(c *x509.Certificate) Role {
	for _, r := range a.CertRules {
		if ok, _ := path.Match(r.Pattern, c.Subject.CommonName); ok {
			return r.Role
		}
	}
	if len(a.CertRules) > 0 {
		return RoleNone
	}
	for _, ou := range c.Subject.OrganizationalUnit {
		if role, err := ParseRole(ou); err == nil {
			return role
		}
	}
	return RoleNone
}

// BearerToken sends token with every call. It does not insist on TLS: the agent refuses
// plaintext on anything but loopback or a unix socket unless told --insecure.
type BearerToken string

func (t BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (t BearerToken) RequireTransportSecurity() bool { return false }

// ServerTLS is the API's TLS configuration. With clientCA, client certificates are verified
// against it when presented (a caller may still use a token instead).
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls-client-ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// ClientTLS is a client's TLS configuration: the server verified against caFile (system roots
// when empty), and certFile/keyFile presented when given.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
