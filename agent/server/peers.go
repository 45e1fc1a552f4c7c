package server

import (
	"context"
	"fmt"
	"net"
	"strconv"

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
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, p.DialOptions...)
	conn, err := grpc.NewClient(agentAddr, opts...)
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
	return transfer.Grant{
		FTPAddr:  net.JoinHostPort(host, strconv.Itoa(int(resp.GetFtpPort()))),
		User:     resp.GetUser(),
		Password: resp.GetPassword(),
	}, nil
}
