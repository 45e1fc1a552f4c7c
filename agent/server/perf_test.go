package server_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/netopt"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestDataPathBytesAndHash moves a file whose size is no multiple of any chunk of the data path
// (8 MiB sendfile steps of an upload, 256 KiB stall chunks, 512 KiB pipeline buffers) both ways
// between agents, over plain FTP (the sendfile and splice paths) and FTPS (the buffered path):
// the bytes arrive intact, the SHA-256 the engine reports is the file's, and the peer's HASH
// (answered from the digest its server computed while moving the file) verified it.
func TestDataPathBytesAndHash(t *testing.T) {
	const size = 9<<20 + 12345
	for _, tc := range []struct {
		name string
		tls  string
	}{{"plain", "off"}, {"ftps", "optional"}} {
		t.Run(tc.name, func(t *testing.T) {
			a := testagent.Start(t)
			peer := testagent.Start(t, func(c *daemon.Config) { c.FTPTLS = tc.tls })
			want := writeRandom(t, filepath.Join(peer.Root, "src.bin"), size)
			upWant := writeRandom(t, filepath.Join(a.Root, "up.bin"), size)
			for _, c := range []struct{ src, dst, local, sum string }{
				{peer.URL("src.bin"), "got.bin", filepath.Join(a.Root, "got.bin"), want},
				{"up.bin", peer.URL("in/up.bin"), filepath.Join(peer.Root, "in/up.bin"), upWant},
			} {
				seen := run(t, a, c.src, c.dst, ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
				last := seen[len(seen)-1]
				if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
					t.Fatalf("%s -> %s: %v: %s", c.src, c.dst, last.GetState(), last.GetError())
				}
				if got := fileSHA(t, c.local); got != c.sum {
					t.Errorf("%s -> %s: the file's sha256 is %s, want %s", c.src, c.dst, got, c.sum)
				}
				if last.GetSha256() != c.sum || !last.GetVerified() {
					t.Errorf("%s -> %s: transfer sha256 %s verified %v, want %s verified", c.src, c.dst, last.GetSha256(), last.GetVerified(), c.sum)
				}
				if last.GetProgress().GetBytesDone() != size {
					t.Errorf("%s -> %s: bytes_done %d, want %d", c.src, c.dst, last.GetProgress().GetBytesDone(), size)
				}
			}
		})
	}
}

// TestRateLimit: a 4 MiB transfer limited to 2 MiB/s (per transfer on a download, per agent on
// an upload) takes at least 1.5 s, and shows its limit.
func TestRateLimit(t *testing.T) {
	const size, limit = 4 << 20, 2 << 20
	t.Run("transfer", func(t *testing.T) {
		a, peer := testagent.Start(t), testagent.Start(t)
		writeRandom(t, filepath.Join(peer.Root, "src.bin"), size)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: peer.URL("src.bin"), Destination: "got.bin", LimitRate: limit})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTransfer().GetLimitRate() != limit {
			t.Errorf("limit_rate %d, want %d", resp.GetTransfer().GetLimitRate(), limit)
		}
		seen := watch(t, ctx, a, resp.GetTransfer().GetId())
		checkLimited(t, seen[len(seen)-1], time.Since(start))
	})
	t.Run("agent", func(t *testing.T) {
		a := testagent.Start(t, func(c *daemon.Config) { c.LimitRate = limit })
		peer := testagent.Start(t)
		writeRandom(t, filepath.Join(a.Root, "up.bin"), size)
		info, err := a.Client.GetAgentInfo(context.Background(), &ferryv1.GetAgentInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetLimitRate() != limit {
			t.Errorf("agent info limit_rate %d, want %d", info.GetLimitRate(), limit)
		}
		start := time.Now()
		seen := run(t, a, "up.bin", peer.URL("up.bin"), ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
		checkLimited(t, seen[len(seen)-1], time.Since(start))
	})
}

func checkLimited(t *testing.T, last *ferryv1.Transfer, took time.Duration) {
	t.Helper()
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("transfer %v: %s", last.GetState(), last.GetError())
	}
	t.Logf("4 MiB at 2 MiB/s took %s", took.Round(time.Millisecond))
	if took < 1500*time.Millisecond {
		t.Errorf("4 MiB at 2 MiB/s took %s, want at least 1.5s", took)
	}
	if took > 30*time.Second {
		t.Errorf("4 MiB at 2 MiB/s took %s: far slower than the limit", took)
	}
}

// TestUpdateTransferLimit: a transfer crawling at 64 KiB/s (8 MiB would take two minutes)
// finishes within seconds once UpdateTransfer lifts its limit; the new limit shows in the
// snapshot. Bad requests get InvalidArgument and NotFound.
func TestUpdateTransferLimit(t *testing.T) {
	const size = 8 << 20
	a, peer := testagent.Start(t), testagent.Start(t)
	want := writeRandom(t, filepath.Join(peer.Root, "src.bin"), size)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: peer.URL("src.bin"), Destination: "got.bin", LimitRate: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTransfer().GetId()
	// Wait until data moves under the low limit.
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := a.Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if g.GetTransfer().GetProgress().GetBytesDone() > 0 {
			if g.GetTransfer().GetProgress().GetBytesDone() >= size/2 {
				t.Fatalf("%d bytes done already: the 64 KiB/s limit does not hold", g.GetTransfer().GetProgress().GetBytesDone())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no byte moved within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, bad := range []struct {
		req  *ferryv1.UpdateTransferRequest
		code codes.Code
	}{
		{&ferryv1.UpdateTransferRequest{Id: id, LimitRate: -1}, codes.InvalidArgument},
		{&ferryv1.UpdateTransferRequest{Id: "0123456789abcdef", LimitRate: 1 << 20}, codes.NotFound},
		{&ferryv1.UpdateTransferRequest{LimitRate: 1 << 20}, codes.InvalidArgument},
	} {
		_, err := a.Client.UpdateTransfer(ctx, bad.req)
		if status.Code(err) != bad.code {
			t.Errorf("UpdateTransfer(%v): %v, want %s", bad.req, err, bad.code)
		}
	}
	// A viewer may not change it.
	viewer := ferryv1.NewAgentServiceClient(testagent.Dial(t, a.GRPC, testagent.ViewerToken))
	if _, err := viewer.UpdateTransfer(ctx, &ferryv1.UpdateTransferRequest{Id: id}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("UpdateTransfer as viewer: %v, want PermissionDenied", err)
	}
	start := time.Now()
	u, err := a.Client.UpdateTransfer(ctx, &ferryv1.UpdateTransferRequest{Id: id, LimitRate: 0})
	if err != nil {
		t.Fatal(err)
	}
	if u.GetTransfer().GetLimitRate() != 0 {
		t.Errorf("after the update limit_rate = %d, want 0", u.GetTransfer().GetLimitRate())
	}
	seen := watch(t, ctx, a, id)
	last := seen[len(seen)-1]
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("transfer %v: %s", last.GetState(), last.GetError())
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the rest of 8 MiB took %s after the limit was lifted", took)
	}
	if got := fileSHA(t, filepath.Join(a.Root, "got.bin")); got != want {
		t.Errorf("sha256 %s, want %s", got, want)
	}
	if _, err := a.Client.UpdateTransfer(ctx, &ferryv1.UpdateTransferRequest{Id: id, LimitRate: 1}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("UpdateTransfer of a finished transfer: %v, want FailedPrecondition", err)
	}
}

// TestTCPCongestionInfo: --tcp-congestion shows in agent info and in a transfer's details;
// by default the agent picks bbr where the kernel offers it; a name the kernel lacks is refused.
func TestTCPCongestionInfo(t *testing.T) {
	def, _, err := netopt.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(netopt.Available(), "bbr") && def != "bbr" {
		t.Logf("bbr is listed but a socket refuses it; default %q", def)
	}
	for _, tc := range []struct{ flag, want string }{{"", def}, {"reno", "reno"}, {"system", ""}} {
		a := testagent.Start(t, func(c *daemon.Config) { c.TCPCongestion = tc.flag })
		info, err := a.Client.GetAgentInfo(context.Background(), &ferryv1.GetAgentInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetTcpCongestion() != tc.want {
			t.Errorf("--tcp-congestion %q: agent info says %q, want %q", tc.flag, info.GetTcpCongestion(), tc.want)
		}
		if tc.flag == "reno" {
			peer := testagent.Start(t)
			writeRandom(t, filepath.Join(a.Root, "up.bin"), 1<<20)
			seen := run(t, a, "up.bin", peer.URL("up.bin"), ferryv1.TransferMode_TRANSFER_MODE_PASSIVE)
			if got := seen[len(seen)-1].GetTcpCongestion(); got != "reno" {
				t.Errorf("transfer tcp_congestion %q, want reno", got)
			}
		}
	}
	_, err = daemon.New(daemon.Config{Root: t.TempDir(), GRPCListen: "127.0.0.1:0", FTPListen: "127.0.0.1:0", NoAuth: true, TCPCongestion: "nosuchcc"})
	if err == nil {
		t.Fatal("daemon.New accepted --tcp-congestion nosuchcc")
	}
	if !strings.HasPrefix(err.Error(), "tcp-congestion:") {
		t.Errorf("error %q does not name the field tcp-congestion", err)
	}
}
