package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestSegmentedBetweenAgents: a file moves as 4 byte ranges over 4 sessions at once, down from
// a peer agent and back up to it, and arrives byte for byte (the whole file's SHA-256, checked
// by the agent against the server's and here against the source).
func TestSegmentedBetweenAgents(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	a := testagent.Start(t)
	data, want := randomBytes(t, 9<<20+12345) // ranges of uneven length
	if err := os.WriteFile(filepath.Join(b.Root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src, dst, result string
	}{
		{"download", b.URL("big.bin"), "in/big.bin", filepath.Join(a.Root, "in/big.bin")},
		{"upload", "in/big.bin", b.URL("up/big.bin"), filepath.Join(b.Root, "up/big.bin")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := start(t, a, &ferryv1.StartTransferRequest{Source: tc.src, Destination: tc.dst, Streams: 4,
				Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
			tr = waitFor(t, a, tr.GetId(), 60*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
				return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
			})
			if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
				t.Fatalf("%v: %s", tr.GetState(), tr.GetError())
			}
			if got := fileSHA(t, tc.result); got != want || tr.GetSha256() != want || !tr.GetVerified() {
				t.Errorf("sha256 %s (reported %s, verified %v), want %s", got, tr.GetSha256(), tr.GetVerified(), want)
			}
			if tr.GetStreams() != 4 {
				t.Errorf("streams %d, want 4", tr.GetStreams())
			}
			noParts(t, a.Root)
			noParts(t, b.Root)
		})
	}
}

// TestSegmentedFromFTP: a download from a plain FTP account (the agent's own FTP server, not a
// peer grant) goes segmented too, within --max-sessions-per-host: 3 sessions at most.
func TestSegmentedFromFTP(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	a := testagent.Start(t, func(c *daemon.Config) { c.MaxSessionsPerHost = 3 })
	data, want := randomBytes(t, 6<<20)
	if err := os.WriteFile(filepath.Join(b.Root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	src := "ftp://" + testagent.User + ":" + testagent.Password + "@" + b.FTP + "/big.bin"
	tr := start(t, a, &ferryv1.StartTransferRequest{Source: src, Destination: "big.bin", Streams: 6,
		Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	tr = waitFor(t, a, tr.GetId(), 60*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
		return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
	})
	if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("%v: %s", tr.GetState(), tr.GetError())
	}
	if got := fileSHA(t, filepath.Join(a.Root, "big.bin")); got != want {
		t.Errorf("sha256 %s, want %s", got, want)
	}
	if tr.GetStreams() != 3 {
		t.Errorf("streams %d, want 3 (the per-host session limit)", tr.GetStreams())
	}
}

// TestStreamsValidated: streams out of range is refused, naming the field.
func TestStreamsValidated(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	_, err := a.Client.StartTransfer(context.Background(), &ferryv1.StartTransferRequest{
		Source: "ftp://h.example/x", Destination: "x", Streams: 17})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "streams:") {
		t.Fatalf("streams 17: %v, want InvalidArgument naming streams", err)
	}
}

// TestGrantLogins: a grant for 3 logins lets exactly 3 sessions in; the 4th is refused, and a
// grant's logins are bounded.
func TestGrantLogins(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	peer := ferryv1.NewAgentServiceClient(testagent.Dial(t, b.GRPC, testagent.PeerToken))
	ctx := context.Background()
	if _, err := peer.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: ".", Access: ferryv1.Access_ACCESS_READ, Logins: 17}); status.Code(err) != codes.InvalidArgument ||
		!strings.HasPrefix(status.Convert(err).Message(), "logins:") {
		t.Fatalf("logins 17: %v, want InvalidArgument naming logins", err)
	}
	g, err := peer.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: ".", Access: ferryv1.Access_ACCESS_READ, Logins: 3})
	if err != nil {
		t.Fatal(err)
	}
	if g.GetLogins() != 3 {
		t.Fatalf("grant allows %d logins, want 3", g.GetLogins())
	}
	for i := range 4 {
		c, err := ftpclient.Dial(ctx, ftpclient.Config{Addr: b.FTP, User: g.GetUser(), Password: g.GetPassword()})
		if i < 3 {
			if err != nil {
				t.Fatalf("login %d of 3: %v", i+1, err)
			}
			defer c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Fatalf("login 4 with a 3-login grant succeeded")
		}
		t.Logf("login 4: %v", err)
	}
}
