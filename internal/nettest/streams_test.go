package nettest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Tests over the Go WAN link (testbed.WANLink) between two namespaced hosts, fs-cli and fs-srv.

// TestWANSmallFile: a small file between agents over a 50 ms round trip: the namespaced path
// through the WAN link works, and takes the round trips it should.
func TestWANSmallFile(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("fs-cli"), b.Host("fs-srv")
	l := b.WANLink(cli, srv, testbed.WANOpts{RTT: 50 * time.Millisecond, RateMbit: 100})
	a := startAgent(t, cli, l.AddrA, agentOpts{})
	s := startAgent(t, srv, l.AddrC, agentOpts{})
	sum := writeFile(t, filepath.Join(s.root, "small.bin"), 64<<10)
	tr, took := run(t, a, s.url("small.bin"), "small.bin", passive)
	mustSucceed(t, tr, passive, filepath.Join(a.root, "small.bin"), sum)
	t.Logf("64 KiB over a 50 ms WAN link: %v", took.Round(time.Millisecond))
	if took < 200*time.Millisecond {
		t.Errorf("took %v: the link's 50 ms round trips are missing (login, grant, PASV, RETR, HASH)", took)
	}
}

// TestWANSegmentedResume: a download over 4 streams through a 40 Mbit/s, 20 ms link is cut
// by a restart of the receiving agent; after it, the job resumes the ranges it had and the
// file arrives whole (SHA-256), with the bytes already there not sent again.
func TestWANSegmentedResume(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("fs-cli"), b.Host("fs-srv")
	l := b.WANLink(cli, srv, testbed.WANOpts{RTT: 20 * time.Millisecond, RateMbit: 40})
	root, state := t.TempDir(), t.TempDir()
	keep := agentOpts{flags: []string{"--root", root, "--state-dir", state}}
	a := startAgent(t, cli, l.AddrA, keep)
	s := startAgent(t, srv, l.AddrC, agentOpts{})
	const size = 12 << 20 // about 2.5 s at 40 Mbit/s
	sum := writeFile(t, filepath.Join(s.root, "big.bin"), size)

	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	resp, err := a.api.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: s.url("big.bin"), Destination: "big.bin",
		Mode: passive, Streams: 4})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTransfer().GetId()
	var before int64
	for before < 3<<20 {
		tr, err := a.api.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if tr.GetTransfer().GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			t.Fatalf("transfer ended before the restart: %v %s", tr.GetTransfer().GetState(), tr.GetTransfer().GetError())
		}
		before = tr.GetTransfer().GetProgress().GetBytesDone()
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "big.bin")); err == nil {
		t.Fatal("a partial file stands under the final name after the restart")
	}
	a = startAgent(t, cli, l.AddrA, keep)
	var final *ferryv1.Transfer
	for final == nil {
		tr, err := a.api.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: id})
		if err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		if tr.GetTransfer().GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			final = tr.GetTransfer()
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustSucceed(t, final, passive, filepath.Join(root, "big.bin"), sum)
	t.Logf("%d bytes moved before the restart; %d resumed of %d; streams %d", before, final.GetBytesResumed(), size, final.GetStreams())
	if final.GetBytesResumed() < 2<<20 || final.GetBytesResumed() >= size {
		t.Errorf("bytes_resumed %d, want at least 2 MiB of the %d moved before the restart", final.GetBytesResumed(), before)
	}
	if final.GetStreams() != 4 {
		t.Errorf("streams %d, want 4", final.GetStreams())
	}
}
