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
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Peers implements transfer.Peers by calling GrantAccess on the peer agent. The FTP address is
// the host the peer was reached at, with the FTP port the peer announces.
//
// It keeps one gRPC connection per peer address and reuses it for every call (grants,
// reverse transfers, watches) of every job: a grant then costs one round trip instead of three
// or four (TCP, HTTP/2 setup, TLS). A connection whose last attempt failed is replaced by a
// fresh one at the next call instead of waiting out its reconnection backoff; idle
// connections drop their TCP connection after gRPC's idle timeout and reconnect on the next
// call. Set the fields before the first call; Close closes the connections.
type Peers struct {
	// Token is presented to peers (their token file lists it with the role peer), as per-call
	// credentials.
	Token string
	// TLS, when set, secures peer connections (--peer-ca, --peer-cert/--peer-key); nil is
	// plaintext.
	TLS *tls.Config
	// DialOptions are added to every peer connection.
	DialOptions []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*peerConn // by agent address
	closed bool
}

// maxIdlePeerConns bounds the connections kept for peers no call is using: beyond it the least
// recently used one is closed.
const maxIdlePeerConns = 64

// peerConn is a pooled connection and the calls using it.
type peerConn struct {
	addr    string
	cc      *grpc.ClientConn
	refs    int       // calls running on it
	retired bool      // out of the pool: closed when its last call ends
	used    time.Time // last taken
}

// errPeersClosed is returned by calls after Close.
var errPeersClosed = errors.New("peer connections are closed (the agent is stopping)")

// get returns the pooled connection to agentAddr, dialling one if there is none or if the one
// there is failing; release must follow.
func (p *Peers) get(agentAddr string) (*peerConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPeersClosed
	}
	if pc := p.conns[agentAddr]; pc != nil {
		switch pc.cc.GetState() {
		case connectivity.TransientFailure, connectivity.Shutdown:
			// Its last connection attempt failed: a call would fail at once until its
			// backoff ends (up to 2 minutes). A new connection tries now.
			p.retireLocked(pc)
		default:
			pc.refs++
			pc.used = time.Now()
			return pc, nil
		}
	}
	cc, err := p.dial(agentAddr)
	if err != nil {
		return nil, err
	}
	if p.conns == nil {
		p.conns = map[string]*peerConn{}
	}
	p.evictLocked()
	pc := &peerConn{addr: agentAddr, cc: cc, refs: 1, used: time.Now()}
	p.conns[agentAddr] = pc
	return pc, nil
}

// release ends a call on pc.
func (p *Peers) release(pc *peerConn) {
	p.mu.Lock()
	pc.refs--
	closeIt := pc.retired && pc.refs == 0
	p.mu.Unlock()
	if closeIt {
		pc.cc.Close()
	}
}

// retireLocked takes pc out of the pool; it is closed now if no call uses it, else by the last
// call's release.
func (p *Peers) retireLocked(pc *peerConn) {
	if p.conns[pc.addr] == pc {
		delete(p.conns, pc.addr)
	}
	pc.retired = true
	if pc.refs == 0 {
		pc.cc.Close()
	}
}

// evictLocked makes room for one more connection: when maxIdlePeerConns connections are idle,
// the least recently used one goes.
func (p *Peers) evictLocked() {
	var idle []*peerConn
	for _, pc := range p.conns {
		if pc.refs == 0 {
			idle = append(idle, pc)
		}
	}
	if len(idle) < maxIdlePeerConns {
		return
	}
	oldest := idle[0]
	for _, pc := range idle[1:] {
		if pc.used.Before(oldest.used) {
			oldest = pc
		}
	}
	p.retireLocked(oldest)
}

// call runs f with a client on the pooled connection to agentAddr.
func (p *Peers) call(agentAddr string, f func(ferryv1.AgentServiceClient) error) error {
	pc, err := p.get(agentAddr)
	if err != nil {
		return err
	}
	defer p.release(pc)
	return f(ferryv1.NewAgentServiceClient(pc.cc))
}

// Close closes the peer connections (calls still running on them fail); later calls fail. It is
// safe to call twice.
func (p *Peers) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	for _, pc := range conns {
		pc.cc.Close()
	}
	return nil
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
	access := ferryv1.Access_ACCESS_READ
	if write {
		access = ferryv1.Access_ACCESS_WRITE
	}
	var resp *ferryv1.GrantAccessResponse
	err = p.call(agentAddr, func(api ferryv1.AgentServiceClient) error {
		var err error
		resp, err = api.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: path, Access: access, Logins: int32(logins)})
		return err
	})
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
	dir := ferryv1.Direction_DIRECTION_DOWNLOAD
	if r.PeerSends {
		dir = ferryv1.Direction_DIRECTION_UPLOAD
	}
	var resp *ferryv1.ReverseTransferResponse
	err := p.call(agentAddr, func(api ferryv1.AgentServiceClient) error {
		var err error
		resp, err = api.ReverseTransfer(ctx, &ferryv1.ReverseTransferRequest{
			Path: r.PeerPath, Direction: dir, FtpPort: int32(r.FTPPort),
			User: r.User, Password: r.Password, RemotePath: r.LocalPath, RequestId: r.RequestID,
			TlsCertSha256: r.TLSPin, LimitRate: r.LimitRate, Options: optionsToProto(r.Options),
		})
		return err
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
	pc, err := p.get(agentAddr)
	if err != nil {
		return err
	}
	defer p.release(pc)
	api := ferryv1.NewAgentServiceClient(pc.cc)
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
