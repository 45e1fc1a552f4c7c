package faulttest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestReversedRestart: no data connection works from A to B (A's firewall lets in only its FTP
// and passive ports and its API; B's only its FTP control port and API), so auto mode has B
// push the file to A's FTP server. A is killed with SIGKILL mid-way and restarted: the job goes
// on by itself, re-attaches to (or, when A's restart broke it, restarts) the peer's transfer,
// which resumes the part file A holds.
func TestReversedRestart(t *testing.T) {
	const size = 128 << 20
	p := newPair(t, 200)
	p.a.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(ftpPort), agentPassive, testbed.Port(grpcPort)}})
	p.b.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(ftpPort), testbed.Port(grpcPort)}})
	b := startAgent(t, p.b, p.addrB, "")
	sha := writeRandom(t, filepath.Join(b.root, "big.bin"), size)
	a := startAgent(t, p.a, p.addrA, "")

	tr := a.startCopy(b.url("big.bin"), "in/big.bin", "--mode", "auto")
	id := tr.GetId()
	w := watchFinal(t, filepath.Join(a.root, "in", "big.bin"), size)
	mid := a.waitBytes(id, size*3/10, 2*time.Minute)
	if !mid.GetReversed() || mid.GetPeerTransferId() == "" {
		t.Fatalf("the transfer was not reversed: %s", brief(mid))
	}
	a.kill9()
	held := partSize(filepath.Join(a.root, "in"))
	t.Logf("killed A with %s held (peer transfer %s)", mib(held), mid.GetPeerTransferId())
	a.start()
	restarted := time.Now()
	got := a.waitFinal(id, 3*time.Minute)
	took := time.Since(restarted)
	t.Logf("after the restart: %s", brief(got))
	mustSucceed(t, got, sha)
	w.check(t, sha)
	if !got.GetReversed() {
		t.Errorf("not reversed after the restart")
	}
	if got.GetBytesResumed() <= 0 {
		t.Errorf("bytes_resumed %d: the peer's new transfer did not resume A's part file", got.GetBytesResumed())
	}
	if parts := partFiles(a.root); len(parts) > 0 {
		t.Errorf("part files left: %v", parts)
	}
	figure(t, "kill -9 of A during a reversed download: done %v after the restart; attempts %d; %s",
		took.Round(100*time.Millisecond), got.GetAttempt(), resent(held, got.GetBytesResumed(), size))
	_ = ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
}
