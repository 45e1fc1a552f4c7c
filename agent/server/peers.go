package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Peers implements transfer.Peers by calling GrantAccess on the peer agent. The FTP address is
// the host the peer was reached at, with the FTP port the peer announces.
type Peers struct {
	// Token is presented to peers (their token file lists it with the role peer).
	Token string
	// TLS, when set, secures peer connections (--peer-ca, --peer-cert/--peer-key); nil is
	// plaintext.
	TLS *tls.Config
	// DialOptions are added to every peer connection.
	DialOptions []grpc.DialOption
}

var _ transfer.Peers = (*Peers)(nil)

// Grant asks the agent at agentAddr (host:port) for a one-time credential.
func (p *Peers) Grant(ctx context.Context, agentAddr, path string, write bool) (transfer.Grant, error) {
	return p.GrantLogins(ctx, agentAddr, path, write, 0)
}

// GrantLogins asks the agent at agentAddr for a credential good for logins logins (0: one);
// Grant.Logins says how many the peer allows (1 from an agent without multi-login grants).
func (p *Peers) GrantLogins(ctx context.Context, agentAddr, path string, write bool, logins int) (transfer.Grant, error) {
	host, _, err := net.SplitHostPort(agentAddr)
	if err != nil {
		return transfer.Grant{}, err
	}
	conn, err := p.dial(agentAddr)
	if err != nil {
		return transfer.Grant{}, err
	}
	defer conn.Close()
	access := ferryv1.Access_ACCESS_READ
	if write {
		access = ferryv1.Access_ACCESS_WRITE
	}
	resp, err := ferryv1.NewAgentServiceClient(conn).GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: path, Access: access, Logins: int32(logins)})
	if err != nil {
		return transfer.Grant{}, fmt.Errorf("grant access to %s: %w", path, fromStatus(err))
	}
	g := transfer.Grant{
		FTPAddr:  net.JoinHostPort(host, strconv.Itoa(int(resp.GetFtpPort()))),
		User:     resp.GetUser(),
		Password: resp.GetPassword(),
		TLSPin:   resp.GetTlsCertSha256(),
		Logins:   max(1, int(resp.GetLogins())),
	}
	if gp := resp.GetGrantedPath(); gp != nil {
		g.Path = &transfer.GrantedPath{Exists: gp.GetExists(), IsDir: gp.GetIsDir(), Size: gp.GetSize()}
		if gp.GetModified() != nil {
			g.Path.ModTime = gp.GetModified().AsTime()
		}
	}
	if pr := resp.GetPassivePorts(); pr.GetLow() > 0 {
		g.PassivePorts = fmt.Sprintf("%d-%d", pr.GetLow(), pr.GetHigh())
	}
	return g, nil
}

func (p *Peers) dial(agentAddr string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if p.TLS != nil {
		creds = credentials.NewTLS(p.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if p.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(security.BearerToken(p.Token)))
	}
	return grpc.NewClient(agentAddr, append(opts, p.DialOptions...)...)
}

// Reverse starts the mirrored transfer on the peer (ReverseTransfer) and returns its first
// snapshot.
func (p *Peers) Reverse(ctx context.Context, agentAddr string, r transfer.ReverseRequest) (transfer.Snapshot, error) {
	conn, err := p.dial(agentAddr)
	if err != nil {
		return transfer.Snapshot{}, err
	}
	defer conn.Close()
	dir := ferryv1.Direction_DIRECTION_DOWNLOAD
	if r.PeerSends {
		dir = ferryv1.Direction_DIRECTION_UPLOAD
	}
	resp, err := ferryv1.NewAgentServiceClient(conn).ReverseTransfer(ctx, &ferryv1.ReverseTransferRequest{
		Path: r.PeerPath, Direction: dir, FtpPort: int32(r.FTPPort),
		User: r.User, Password: r.Password, RemotePath: r.LocalPath, RequestId: r.RequestID,
		TlsCertSha256: r.TLSPin, LimitRate: r.LimitRate, Options: optionsToProto(r.Options),
	})
	if err != nil {
		return transfer.Snapshot{}, fmt.Errorf("peer agent %s: reverse transfer: %w", agentAddr, fromStatus(err))
	}
	return snapshotFromProto(resp.GetTransfer()), nil
}

// Follow watches the peer's transfer id until its final state. If ctx ends first, the peer's
// transfer is cancelled — unless this agent is shutting down: then it goes on, and this agent
// re-attaches to it after its restart.
func (p *Peers) Follow(ctx context.Context, agentAddr, id string, progress func(transfer.Snapshot)) error {
	conn, err := p.dial(agentAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := ferryv1.NewAgentServiceClient(conn)
	defer func() {
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), transfer.ErrShutdown) {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = api.CancelTransfer(cctx, &ferryv1.CancelTransferRequest{Id: id})
		}
	}()
	stream, err := api.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: id})
	if err != nil {
		return fmt.Errorf("peer agent %s: watch transfer %s: %w", agentAddr, id, fromStatus(err))
	}
	var last *ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("peer agent %s: watch transfer %s: %w", agentAddr, id, fromStatus(err))
		}
		last = m.GetTransfer()
		progress(snapshotFromProto(last))
	}
	switch last.GetState() {
	case ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED:
		return nil
	case ferryv1.TransferState_TRANSFER_STATE_FAILED, ferryv1.TransferState_TRANSFER_STATE_CANCELLED:
		err := fmt.Errorf("peer agent %s: its transfer %s %s: %s", agentAddr, id,
			strings.TrimPrefix(strings.ToLower(last.GetState().String()), "transfer_state_"), last.GetError())
		return kindOfCode(last.GetErrorCode(), err)
	}
	return transfer.WithKind(transfer.ErrUnreachable, fmt.Errorf("peer agent %s: watch of transfer %s ended in state %v", agentAddr, id, last.GetState()))
}

// kindOfCode gives err the domain kind a peer reported in Transfer.error_code.
func kindOfCode(code string, err error) error {
	switch code {
	case "not_found":
		return transfer.WithKind(transfer.ErrNotFound, err)
	case "permission_denied":
		return transfer.WithKind(transfer.ErrAuth, err)
	case "no_space":
		return transfer.WithKind(transfer.ErrNoSpace, err)
	case "conflict":
		return transfer.WithKind(transfer.ErrConflict, err)
	case "checksum":
		return transfer.WithKind(transfer.ErrChecksum, err)
	case "unreachable":
		return transfer.WithKind(transfer.ErrUnreachable, err)
	}
	return err
}
