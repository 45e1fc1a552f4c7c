package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Peers implements transfer.Peers by calling GrantAccess on the peer agent. The FTP address is
// the host the peer was reached at, with the FTP port the peer announces.
type Peers struct {
	// DialOptions are added to every peer connection (TLS comes with the security issue).
	DialOptions []grpc.DialOption
}

var _ transfer.Peers = (*Peers)(nil)

// Grant asks the agent at agentAddr (host:port) for a one-time credential.
func (p *Peers) Grant(ctx context.Context, agentAddr, path string, write bool) (transfer.Grant, error) {
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
	resp, err := ferryv1.NewAgentServiceClient(conn).GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: path, Access: access})
	if err != nil {
		return transfer.Grant{}, fmt.Errorf("grant access to %s: %s", path, status.Convert(err).Message())
	}
	g := transfer.Grant{
		FTPAddr:  net.JoinHostPort(host, strconv.Itoa(int(resp.GetFtpPort()))),
		User:     resp.GetUser(),
		Password: resp.GetPassword(),
	}
	if pr := resp.GetPassivePorts(); pr.GetLow() > 0 {
		g.PassivePorts = fmt.Sprintf("%d-%d", pr.GetLow(), pr.GetHigh())
	}
	return g, nil
}

func (p *Peers) dial(agentAddr string) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, p.DialOptions...)
	return grpc.NewClient(agentAddr, opts...)
}

// Reverse starts the mirrored transfer on the peer (ReverseTransfer) and follows it with
// WatchTransfer until its final state. If ctx ends first, the peer's transfer is cancelled.
func (p *Peers) Reverse(ctx context.Context, agentAddr string, r transfer.ReverseRequest, progress func(transfer.Snapshot)) error {
	conn, err := p.dial(agentAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := ferryv1.NewAgentServiceClient(conn)
	dir := ferryv1.Direction_DIRECTION_DOWNLOAD
	if r.PeerSends {
		dir = ferryv1.Direction_DIRECTION_UPLOAD
	}
	resp, err := api.ReverseTransfer(ctx, &ferryv1.ReverseTransferRequest{
		Path: r.PeerPath, Direction: dir, FtpPort: int32(r.FTPPort),
		User: r.User, Password: r.Password, RemotePath: r.LocalPath,
	})
	if err != nil {
		return fmt.Errorf("peer agent %s: reverse transfer: %s", agentAddr, status.Convert(err).Message())
	}
	id := resp.GetTransfer().GetId()
	progress(snapshotFromProto(resp.GetTransfer()))
	defer func() {
		if ctx.Err() != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = api.CancelTransfer(cctx, &ferryv1.CancelTransferRequest{Id: id})
		}
	}()
	stream, err := api.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: id})
	if err != nil {
		return fmt.Errorf("peer agent %s: watch transfer %s: %s", agentAddr, id, status.Convert(err).Message())
	}
	var last *ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("peer agent %s: watch transfer %s: %s", agentAddr, id, status.Convert(err).Message())
		}
		last = m.GetTransfer()
		progress(snapshotFromProto(last))
	}
	switch last.GetState() {
	case ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED:
		return nil
	case ferryv1.TransferState_TRANSFER_STATE_FAILED, ferryv1.TransferState_TRANSFER_STATE_CANCELLED:
		return fmt.Errorf("peer agent %s: its transfer %s %s: %s", agentAddr, id,
			strings.TrimPrefix(strings.ToLower(last.GetState().String()), "transfer_state_"), last.GetError())
	}
	return fmt.Errorf("peer agent %s: watch of transfer %s ended in state %v", agentAddr, id, last.GetState())
}
