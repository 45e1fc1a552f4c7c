package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testcerts"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// client dials addr in plaintext with opts.
func client(t *testing.T, addr string, opts ...grpc.DialOption) ferryv1.AgentServiceClient {
	t.Helper()
	return tlsClient(t, addr, insecure.NewCredentials(), opts...)
}

func tlsClient(t *testing.T, addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) ferryv1.AgentServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ferryv1.NewAgentServiceClient(conn)
}

// ftpLogin logs in on a raw FTP control connection and returns the reply to PASS.
func ftpLogin(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line := func() string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "read: " + err.Error()
			}
			if len(l) >= 4 && l[3] == ' ' {
				return strings.TrimSpace(l)
			}
		}
	}
	line() // greeting
	fmt.Fprintf(c, "USER %s\r\n", user)
	if got := line(); !strings.HasPrefix(got, "331") {
		return got
	}
	fmt.Fprintf(c, "PASS %s\r\n", pass)
	return line()
}

func token(tok string) grpc.DialOption { return grpc.WithPerRPCCredentials(security.BearerToken(tok)) }

func wantCodeErr(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: %v, want %v", what, err, code)
	}
}

// TestAuthRefusals: no token, a wrong token and the wrong role are refused on every RPC family
// with the code named; each role reaches what it may.
func TestAuthRefusals(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	writeRandom(t, filepath.Join(b.Root, "f.bin"), 1000)
	ctx := context.Background()
	startReq := &ferryv1.StartTransferRequest{Source: b.URL("f.bin"), Destination: "f.bin"}

	none := client(t, a.GRPC)
	_, err := none.GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{})
	wantCodeErr(t, "no token: GetAgentInfo", err, codes.Unauthenticated)
	_, err = none.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: ".", Access: ferryv1.Access_ACCESS_WRITE})
	wantCodeErr(t, "no token: GrantAccess", err, codes.Unauthenticated)
	stream, err := none.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: "x"})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCodeErr(t, "no token: WatchTransfer", err, codes.Unauthenticated)

	wrong := client(t, a.GRPC, token(strings.Repeat("0", 64)))
	_, err = wrong.StartTransfer(ctx, startReq)
	wantCodeErr(t, "wrong token: StartTransfer", err, codes.Unauthenticated)

	peer := client(t, a.GRPC, token(testagent.PeerToken))
	_, err = peer.StartTransfer(ctx, startReq)
	wantCodeErr(t, "peer token: StartTransfer", err, codes.PermissionDenied)
	_, err = peer.ListTransfers(ctx, &ferryv1.ListTransfersRequest{})
	wantCodeErr(t, "peer token: ListTransfers", err, codes.PermissionDenied)
	if _, err := peer.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "f.bin", Access: ferryv1.Access_ACCESS_READ}); err != nil {
		t.Errorf("peer token: GrantAccess: %v", err)
	}

	viewer := client(t, a.GRPC, token(testagent.ViewerToken))
	_, err = viewer.StartTransfer(ctx, startReq)
	wantCodeErr(t, "viewer token: StartTransfer", err, codes.PermissionDenied)
	_, err = viewer.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: ".", Access: ferryv1.Access_ACCESS_READ})
	wantCodeErr(t, "viewer token: GrantAccess", err, codes.PermissionDenied)
	_, err = viewer.ReverseTransfer(ctx, &ferryv1.ReverseTransferRequest{})
	wantCodeErr(t, "viewer token: ReverseTransfer", err, codes.PermissionDenied)

	// The admin starts a transfer: the viewer may watch it, a peer (which did not start it)
	// may neither watch nor cancel it.
	tr := start(t, a, startReq)
	if _, err := viewer.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: tr.GetId()}); err != nil {
		t.Errorf("viewer: GetTransfer: %v", err)
	}
	_, err = peer.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: tr.GetId()})
	wantCodeErr(t, "peer: GetTransfer of another's transfer", err, codes.PermissionDenied)
	_, err = peer.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: tr.GetId()})
	wantCodeErr(t, "peer: CancelTransfer of another's transfer", err, codes.PermissionDenied)
	_, err = viewer.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: tr.GetId()})
	wantCodeErr(t, "viewer: CancelTransfer", err, codes.PermissionDenied)
	waitFor(t, a, tr.GetId(), 10*time.Second, "success", func(x *ferryv1.Transfer) bool {
		return x.GetState() == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	})
}

// TestSpentGrantIsRefused: a one-time FTP credential from GrantAccess logs in once; the second
// login with it is refused (530).
func TestSpentGrantIsRefused(t *testing.T) {
	a := testagent.Start(t)
	writeRandom(t, filepath.Join(a.Root, "f.bin"), 10)
	peer := client(t, a.GRPC, token(testagent.PeerToken))
	g, err := peer.GrantAccess(context.Background(), &ferryv1.GrantAccessRequest{Path: "f.bin", Access: ferryv1.Access_ACCESS_READ})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"230", "530"} {
		if got := ftpLogin(t, a.FTP, g.GetUser(), g.GetPassword()); !strings.HasPrefix(got, want) {
			t.Errorf("login %d with the grant: %q, want %s", i+1, got, want)
		}
	}
}

// TestAdminTokenCreated: without a token file the agent creates an admin token (0600) in its
// state directory, keeps it across restarts, and accepts only it.
func TestAdminTokenCreated(t *testing.T) {
	dir := t.TempDir()
	a := testagent.Start(t, func(c *daemon.Config) { c.Tokens, c.StateDir = nil, dir })
	path := filepath.Join(dir, security.AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v", err, fi.Mode().Perm())
	}
	tok, err := security.ReadClientToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, a.GRPC, token(tok)).GetAgentInfo(context.Background(), &ferryv1.GetAgentInfoRequest{}); err != nil {
		t.Fatalf("admin token refused: %v", err)
	}
	_, err = client(t, a.GRPC, token(testagent.AdminToken)).GetAgentInfo(context.Background(), &ferryv1.GetAgentInfoRequest{})
	wantCodeErr(t, "a token the agent does not list", err, codes.Unauthenticated)
	a2 := a.Restart(t)
	if _, err := client(t, a2.GRPC, token(tok)).GetAgentInfo(context.Background(), &ferryv1.GetAgentInfoRequest{}); err != nil {
		t.Fatalf("admin token refused after a restart: %v", err)
	}
}

// TestExposureRefused: plaintext gRPC on a network address needs --insecure; --no-auth only on
// loopback; a token file others can read is refused.
func TestExposureRefused(t *testing.T) {
	base := func() daemon.Config {
		return daemon.Config{Root: t.TempDir(), FTPListen: "127.0.0.1:0", StateDir: t.TempDir()}
	}
	for _, tc := range []struct {
		name string
		mod  func(*daemon.Config)
		want string
	}{
		{"plaintext on 0.0.0.0", func(c *daemon.Config) { c.GRPCListen = "0.0.0.0:0" }, "--insecure"},
		{"no-auth on 0.0.0.0", func(c *daemon.Config) { c.GRPCListen = "0.0.0.0:0"; c.NoAuth = true; c.Insecure = true }, "no-auth: only on a loopback"},
		{"token file readable by others", func(c *daemon.Config) {
			c.GRPCListen = "127.0.0.1:0"
			c.TokenFile = filepath.Join(t.TempDir(), "tokens")
			os.WriteFile(c.TokenFile, []byte("admin "+testagent.AdminToken+"\n"), 0o644)
		}, "chmod 600"},
	} {
		cfg := base()
		tc.mod(&cfg)
		d, err := daemon.New(cfg)
		if err == nil {
			d.Close()
			t.Errorf("%s: the agent started", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	// With --insecure it starts (and says so in its log).
	cfg := base()
	cfg.GRPCListen, cfg.Insecure = "0.0.0.0:0", true
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatalf("--insecure on 0.0.0.0: %v", err)
	}
	d.Close()
}

// TestMutualTLS: with --tls-client-ca, a client certificate from that CA maps to its role (OU);
// one from another CA fails the handshake; one whose CN matches no --tls-client-role rule is
// refused; a plaintext client cannot talk to a TLS agent.
func TestMutualTLS(t *testing.T) {
	ca, other := testcerts.NewCA(t, "fleet"), testcerts.NewCA(t, "rogue")
	srvCert, srvKey := ca.Issue(t, "agent-a")
	adminCert, adminKey := ca.Issue(t, "ops-1", "admin")
	viewerCert, viewerKey := ca.Issue(t, "dash-1", "viewer")
	rogueCert, rogueKey := other.Issue(t, "ops-2", "admin")
	a := testagent.Start(t, func(c *daemon.Config) {
		c.TLSCert, c.TLSKey, c.TLSClientCA = srvCert, srvKey, ca.CertPEM
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(cert, key string) ferryv1.AgentServiceClient {
		tc, err := security.ClientTLS(ca.CertPEM, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return tlsClient(t, a.GRPC, credentials.NewTLS(tc))
	}
	if _, err := dial(adminCert, adminKey).StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: "ftp://127.0.0.1:1/x", Destination: "x"}); err != nil {
		t.Errorf("admin certificate: StartTransfer: %v", err)
	}
	_, err := dial(viewerCert, viewerKey).StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: "ftp://127.0.0.1:1/x", Destination: "y"})
	wantCodeErr(t, "viewer certificate: StartTransfer", err, codes.PermissionDenied)
	if _, err := dial(viewerCert, viewerKey).ListTransfers(ctx, &ferryv1.ListTransfersRequest{}); err != nil {
		t.Errorf("viewer certificate: ListTransfers: %v", err)
	}
	// Go's client offers only a certificate the server's CA list accepts: force the rogue one
	// onto the server, which must fail the handshake.
	rtc, err := security.ClientTLS(ca.CertPEM, rogueCert, rogueKey)
	if err != nil {
		t.Fatal(err)
	}
	rogue := rtc.Certificates[0]
	rtc.Certificates = nil
	rtc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogue, nil }
	_, err = tlsClient(t, a.GRPC, credentials.NewTLS(rtc)).GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{})
	wantCodeErr(t, "certificate from another CA", err, codes.Unavailable) // the handshake fails
	_, err = dial("", "").GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{})
	wantCodeErr(t, "TLS without a certificate or token", err, codes.Unauthenticated)
	_, err = client(t, a.GRPC, token(testagent.AdminToken)).GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{})
	wantCodeErr(t, "plaintext client to a TLS agent", err, codes.Unavailable)

	// With a rule, only matching CNs get a role.
	b := testagent.Start(t, func(c *daemon.Config) {
		c.TLSCert, c.TLSKey, c.TLSClientCA = srvCert, srvKey, ca.CertPEM
		c.CertRules = []security.CertRule{{Role: security.RoleAdmin, Pattern: "ops-*"}}
	})
	tc, _ := security.ClientTLS(ca.CertPEM, viewerCert, viewerKey)
	_, err = tlsClient(t, b.GRPC, credentials.NewTLS(tc)).GetAgentInfo(ctx, &ferryv1.GetAgentInfoRequest{})
	wantCodeErr(t, "certificate whose CN matches no rule", err, codes.PermissionDenied)
}
