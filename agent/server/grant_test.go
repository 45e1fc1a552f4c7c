package server_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// grantCounter is a slog handler counting the credentials an agent's FTP server issued (one
// per GrantAccess) and the logins they allowed.
type grantCounter struct {
	mu     sync.Mutex
	logins []int64
}

func (g *grantCounter) Enabled(context.Context, slog.Level) bool { return true }
func (g *grantCounter) WithAttrs([]slog.Attr) slog.Handler       { return g }
func (g *grantCounter) WithGroup(string) slog.Handler            { return g }
func (g *grantCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "ftp credential issued" {
		return nil
	}
	var n int64
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "logins" {
			n = a.Value.Int64()
		}
		return true
	})
	g.mu.Lock()
	g.logins = append(g.logins, n)
	g.mu.Unlock()
	return nil
}

// take returns the logins of the credentials issued since the last call.
func (g *grantCounter) take() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.logins
	g.logins = nil
	return out
}

// TestOneGrantForParallelStreams: a file moving over 4 parallel streams to or from a peer
// agent takes one grant (one GrantAccess on the peer, for 4 logins), not one for the job's
// session and another for the other streams; the file arrives whole and verified.
func TestOneGrantForParallelStreams(t *testing.T) {
	t.Parallel()
	count := &grantCounter{}
	b := testagent.Start(t, func(c *daemon.Config) { c.Logger = slog.New(count) })
	a := testagent.Start(t)
	data, want := randomBytes(t, 6<<20+777)
	if err := os.WriteFile(filepath.Join(b.Root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src, dst, result string
	}{
		{"download", b.URL("big.bin"), "in/big.bin", filepath.Join(a.Root, "in/big.bin")},
		{"upload", "in/big.bin", b.URL("up/"), filepath.Join(b.Root, "up/big.bin")},
	} {
		count.take()
		// Bounded rate: every stream's session is up before the job's own could move it all.
		tr := start(t, a, &ferryv1.StartTransferRequest{Source: tc.src, Destination: tc.dst, Streams: 4,
			Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE, LimitRate: 10 << 20})
		tr = waitFor(t, a, tr.GetId(), 60*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
			return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
		})
		if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			t.Fatalf("%s: %v: %s", tc.name, tr.GetState(), tr.GetError())
		}
		if got := fileSHA(t, tc.result); got != want || !tr.GetVerified() || tr.GetStreams() != 4 {
			t.Errorf("%s: sha256 %s (verified %v, %d streams), want %s over 4 streams", tc.name, got, tr.GetVerified(), tr.GetStreams(), want)
		}
		if grants := count.take(); len(grants) != 1 || grants[0] != 4 {
			t.Errorf("%s: the peer issued credentials for %v logins, want one grant for 4", tc.name, grants)
		}
	}
	noParts(t, a.Root)
	noParts(t, b.Root)
}

// TestGrantDescribesPath: a grant tells what is at the granted path (a file's size and time, a
// directory, nothing yet), from inside the granting agent's root only.
func TestGrantDescribesPath(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	peer := ferryv1.NewAgentServiceClient(testagent.Dial(t, b.GRPC, testagent.PeerToken))
	if err := os.MkdirAll(filepath.Join(b.Root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 800_000_000, time.UTC)
	p := filepath.Join(b.Root, "dir", "f.bin")
	if err := os.WriteFile(p, make([]byte, 12345), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	// A link out of the root: its target is not described (nor reachable over FTP).
	outside := filepath.Join(t.TempDir(), "secret.bin")
	if err := os.WriteFile(outside, make([]byte, 999), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(b.Root, "out.bin")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		access ferryv1.Access
		want   *ferryv1.GrantedPath
	}{
		{"dir/f.bin", ferryv1.Access_ACCESS_READ, &ferryv1.GrantedPath{Exists: true, Size: 12345}},
		{"dir", ferryv1.Access_ACCESS_READ, &ferryv1.GrantedPath{Exists: true, IsDir: true}},
		{"new/dir", ferryv1.Access_ACCESS_WRITE, &ferryv1.GrantedPath{}},
		{"out.bin", ferryv1.Access_ACCESS_READ, &ferryv1.GrantedPath{}},
	} {
		g, err := peer.GrantAccess(context.Background(), &ferryv1.GrantAccessRequest{Path: tc.path, Access: tc.access})
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		got := g.GetGrantedPath()
		if got == nil {
			t.Fatalf("%s: no granted_path", tc.path)
		}
		if tc.want.GetSize() > 0 {
			if m := got.GetModified().AsTime(); !m.Equal(mtime.Truncate(time.Second)) {
				t.Errorf("%s: modified %v, want %v", tc.path, m, mtime.Truncate(time.Second))
			}
		}
		got.Modified = nil
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s: granted_path %v, want %v", tc.path, got, tc.want)
		}
	}
}

// oldPeer is a stand-in for an agent of an earlier version, which cannot run here: a gRPC
// service whose GrantAccess forwards to a real agent but answers as the old one did, without
// granted_path and, when singleUse, with single-use credentials only (logins 0).
type oldPeer struct {
	ferryv1.UnimplementedAgentServiceServer
	real      ferryv1.AgentServiceClient
	singleUse bool
	calls     atomic.Int32
}

func (o *oldPeer) GrantAccess(ctx context.Context, req *ferryv1.GrantAccessRequest) (*ferryv1.GrantAccessResponse, error) {
	o.calls.Add(1)
	req = proto.Clone(req).(*ferryv1.GrantAccessRequest)
	if o.singleUse {
		req.Logins = 0
	}
	resp, err := o.real.GrantAccess(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.GrantedPath = nil
	if o.singleUse {
		resp.Logins = 0
	}
	return resp, nil
}

func startOldPeer(t *testing.T, real *testagent.Agent, singleUse bool) (*oldPeer, string) {
	t.Helper()
	o := &oldPeer{real: ferryv1.NewAgentServiceClient(testagent.Dial(t, real.GRPC, testagent.PeerToken)), singleUse: singleUse}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ferryv1.RegisterAgentServiceServer(srv, o)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return o, ln.Addr().String()
}

// TestOldPeerGrants: against agents of earlier versions (no granted_path; or single-use
// credentials only) a segmented download and upload still work: the streams ask the FTP
// server and, from a single-use granter, get a grant each; a multi-login granter's first
// grant still serves every stream.
func TestOldPeerGrants(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	a := testagent.Start(t)
	data, want := randomBytes(t, 5<<20+99)
	if err := os.WriteFile(filepath.Join(b.Root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, singleUse := range []bool{false, true} {
		o, addr := startOldPeer(t, b, singleUse)
		url := func(p string) string { return "agent://" + addr + "/" + p }
		for _, tc := range []struct {
			name, src, dst, result string
		}{
			{"download", url("big.bin"), "old/big.bin", filepath.Join(a.Root, "old/big.bin")},
			{"upload", "old/big.bin", url("old/"), filepath.Join(b.Root, "old/big.bin")},
		} {
			o.calls.Store(0)
			tr := start(t, a, &ferryv1.StartTransferRequest{Source: tc.src, Destination: tc.dst, Streams: 3,
				Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE, LimitRate: 10 << 20})
			tr = waitFor(t, a, tr.GetId(), 60*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
				return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
			})
			if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
				t.Fatalf("single-use %v, %s: %v: %s", singleUse, tc.name, tr.GetState(), tr.GetError())
			}
			if got := fileSHA(t, tc.result); got != want || !tr.GetVerified() || tr.GetStreams() != 3 {
				t.Errorf("single-use %v, %s: sha256 %s (verified %v, %d streams), want %s over 3 streams",
					singleUse, tc.name, got, tr.GetVerified(), tr.GetStreams(), want)
			}
			// Single-use: the job's grant, a multi-login grant asked for (answered with one
			// login), then one per other stream. Multi-login: the first grant serves all.
			wantCalls := int32(1)
			if singleUse {
				wantCalls = 4
			}
			if n := o.calls.Load(); n != wantCalls {
				t.Errorf("single-use %v, %s: %d GrantAccess calls, want %d", singleUse, tc.name, n, wantCalls)
			}
		}
	}
	noParts(t, a.Root)
	noParts(t, b.Root)
}
