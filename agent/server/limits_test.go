package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/server"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

type limitCase struct {
	field string
	limit int
	unit  string
	call  func(n int) error
}

// TestOversizedFields: each bounded field, one byte (or entry) over its limit, is refused with
// InvalidArgument and a message that starts with the field's name, its size and the limit;
// at the limit it passes the check (and fails, if at all, for another reason).
func TestOversizedFields(t *testing.T) {
	a := testagent.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := a.Client
	s := func(n int) string { return strings.Repeat("a", n) }
	watch := func(ctx context.Context, id string) error {
		st, err := c.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: id})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	states := func(n int) []ferryv1.TransferState {
		out := make([]ferryv1.TransferState, n)
		for i := range out {
			out[i] = ferryv1.TransferState_TRANSFER_STATE_FAILED
		}
		return out
	}
	cases := []limitCase{
		{"source", server.MaxPathBytes, "bytes", func(n int) error {
			_, err := c.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: s(n), Destination: "x"})
			return err
		}},
		{"destination", server.MaxPathBytes, "bytes", func(n int) error {
			_, err := c.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: "x", Destination: s(n)})
			return err
		}},
		{"request_id", server.MaxRequestIDBytes, "bytes", func(n int) error {
			_, err := c.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: "x", Destination: "y", RequestId: s(n)})
			return err
		}},
		{"id", server.MaxIDBytes, "bytes", func(n int) error {
			_, err := c.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: s(n)})
			return err
		}},
		{"id", server.MaxIDBytes, "bytes", func(n int) error {
			_, err := c.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: s(n)})
			return err
		}},
		{"id", server.MaxIDBytes, "bytes", func(n int) error { return watch(ctx, s(n)) }},
		{"states", server.MaxStates, "entries", func(n int) error {
			_, err := c.ListTransfers(ctx, &ferryv1.ListTransfersRequest{States: states(n)})
			return err
		}},
		{"page_token", server.MaxPageTokenBytes, "bytes", func(n int) error {
			_, err := c.ListTransfers(ctx, &ferryv1.ListTransfersRequest{PageToken: s(n)})
			return err
		}},
		{"url", server.MaxPathBytes, "bytes", func(n int) error {
			_, err := c.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: s(n)})
			return err
		}},
		{"page_token", server.MaxPageTokenBytes, "bytes", func(n int) error {
			_, err := c.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: ".", PageToken: s(n)})
			return err
		}},
		{"path", server.MaxPathBytes, "bytes", func(n int) error {
			_, err := c.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: s(n), Access: ferryv1.Access_ACCESS_READ})
			return err
		}},
		{"url", server.MaxPathBytes, "bytes", func(n int) error {
			_, err := c.Diagnose(ctx, &ferryv1.DiagnoseRequest{Url: s(n)})
			return err
		}},
	}
	rev := func(mod func(r *ferryv1.ReverseTransferRequest, v string)) func(n int) error {
		return func(n int) error {
			r := &ferryv1.ReverseTransferRequest{Path: "x", Direction: ferryv1.Direction_DIRECTION_UPLOAD,
				FtpPort: 1, User: "u", Password: "p", RemotePath: "r"}
			mod(r, s(n))
			_, err := c.ReverseTransfer(ctx, r)
			return err
		}
	}
	cases = append(cases,
		limitCase{"path", server.MaxPathBytes, "bytes", rev(func(r *ferryv1.ReverseTransferRequest, v string) { r.Path = v })},
		limitCase{"user", server.MaxUserBytes, "bytes", rev(func(r *ferryv1.ReverseTransferRequest, v string) { r.User = v })},
		limitCase{"password", server.MaxUserBytes, "bytes", rev(func(r *ferryv1.ReverseTransferRequest, v string) { r.Password = v })},
		limitCase{"remote_path", server.MaxPathBytes, "bytes", rev(func(r *ferryv1.ReverseTransferRequest, v string) { r.RemotePath = v })},
		limitCase{"request_id", server.MaxRequestIDBytes, "bytes", rev(func(r *ferryv1.ReverseTransferRequest, v string) { r.RequestId = v })},
	)
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d-%s", i, tc.field), func(t *testing.T) {
			err := tc.call(tc.limit + 1)
			want := fmt.Sprintf("%s: %d %s; at most %d", tc.field, tc.limit+1, tc.unit, tc.limit)
			if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
				t.Errorf("over the limit: %v, want InvalidArgument %q", err, want)
			}
			if err := tc.call(tc.limit); err != nil && strings.Contains(err.Error(), "at most") {
				t.Errorf("at the limit: %v", err)
			}
		})
	}
}

// lockedBuffer is a log sink shared by the agent's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// TestHugeRequestsRefusedCheaply: 100 GrantAccess calls with a 3 MB path (which used to grow the
// agent by 400 MB and its log by 300 MB) are refused before decoding (ResourceExhausted: the
// server takes at most 1 MiB per message), and 100 with a path just under that limit are refused
// by the field check (InvalidArgument naming path); the heap and the debug log hardly grow.
func TestHugeRequestsRefusedCheaply(t *testing.T) {
	logs := &lockedBuffer{}
	a := testagent.Start(t, func(c *daemon.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := &ferryv1.GrantAccessRequest{Path: strings.Repeat("p", 3<<20), Access: ferryv1.Access_ACCESS_WRITE}
	under := &ferryv1.GrantAccessRequest{Path: strings.Repeat("p", server.MaxRecvMsgSize-64), Access: ferryv1.Access_ACCESS_WRITE}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// One call of each first, so the connection's buffers exist before the baseline.
	_, _ = a.Client.GrantAccess(ctx, big)
	_, _ = a.Client.GrantAccess(ctx, under)
	before, logBefore := heap(), logs.Len()
	for range 100 {
		_, err := a.Client.GrantAccess(ctx, big)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("3 MB path: %v, want ResourceExhausted", err)
		}
		_, err = a.Client.GrantAccess(ctx, under)
		if want := fmt.Sprintf("path: %d bytes; at most %d", len(under.Path), server.MaxPathBytes); status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
			t.Fatalf("1 MB path: %v, want InvalidArgument %q", err, want)
		}
	}
	after := heap()
	if after > before && after-before > 32<<20 {
		t.Errorf("heap grew by %d MB over 200 oversized calls", (after-before)>>20)
	}
	if n := logs.Len() - logBefore; n > 64<<10 {
		t.Errorf("log grew by %d bytes over 200 oversized calls", n)
	}
	t.Logf("heap %d -> %d KB; log +%d bytes", before>>10, after>>10, logs.Len()-logBefore)
}
