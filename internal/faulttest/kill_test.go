package faulttest

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// pair is two hosts joined by a veth link, rate limited so that a transfer lasts long enough
// to be interrupted.
type pair struct {
	bed          *testbed.Bed
	a, b         *testbed.Host
	addrA, addrB netip.Addr
}

func newPair(t *testing.T, rateMbit int) pair {
	t.Helper()
	bed := newBed(t)
	a, b := bed.Host("a"), bed.Host("b")
	addrA, addrB := bed.Link(a, b, testbed.LinkOpts{RateMbit: rateMbit})
	return pair{bed: bed, a: a, b: b, addrA: addrA, addrB: addrB}
}

// TestKillReceiver: A pulls a 1 GiB file from agent B; A is killed with SIGKILL at about 40% and
// started again with the same --state-dir. The job must go on by itself (nobody asks again) and
// re-send less than 10% of the file.
func TestKillReceiver(t *testing.T) {
	const size = 1 << 30
	p := newPair(t, 1000)
	b := startAgent(t, p.b, p.addrB, "")
	sha := writeRandom(t, filepath.Join(b.root, "big.bin"), size)
	a := startAgent(t, p.a, p.addrA, "")

	tr := a.startCopy(b.url("big.bin"), "in/big.bin", "--mode", "passive")
	id := tr.GetId()
	w := watchFinal(t, filepath.Join(a.root, "in", "big.bin"), size)
	a.waitBytes(id, size*4/10, 3*time.Minute)

	a.kill9()
	killed := time.Now()
	held := partSize(filepath.Join(a.root, "in"))
	t.Logf("killed A at %s held in its part file", mib(held))
	if held <= 0 {
		t.Fatalf("no part file under %s after the kill: %v", a.root, partFiles(a.root))
	}

	a.start()
	restarted := time.Now()
	// It goes on by itself: no new request, only polling.
	running := a.waitFor(id, time.Minute, "running again", func(tr *ferryv1.Transfer) bool {
		return tr.GetState() == ferryv1.TransferState_TRANSFER_STATE_RUNNING && tr.GetProgress().GetBytesDone() > held
	})
	goingOn := time.Since(restarted)
	t.Logf("after the restart: %s", brief(running))
	a.waitFinal(id, 3*time.Minute)

	got := a.get(id) // what ferryctl shows, as a user would check it
	t.Logf("ferryctl transfers get: %s", brief(got))
	mustSucceed(t, got, sha)
	w.check(t, sha)
	resumed := got.GetBytesResumed()
	if resumed <= 0 {
		t.Errorf("bytes_resumed = %d: the restarted job did not resume the part file (held %s)", resumed, mib(held))
	}
	if r := held - resumed; r > size/10 {
		t.Errorf("re-sent %s after the restart, want less than 10%% of %s", mib(r), mib(size))
	}
	if parts := partFiles(a.root); len(parts) > 0 {
		t.Errorf("part files left after success: %v", parts)
	}
	figure(t, "kill -9 receiver at %.0f%%: moving again %v after restart (%v after kill); attempts %d; %s",
		100*float64(held)/size, goingOn.Round(10*time.Millisecond), time.Since(killed).Round(time.Second),
		got.GetAttempt(), resent(held, resumed, size))
}

// TestKillSender: A pulls a file from agent B; B is killed with SIGKILL mid-way and started
// again (same ports, same root) a few seconds later. A must retry and complete.
func TestKillSender(t *testing.T) {
	const size = 128 << 20
	p := newPair(t, 200)
	b := startAgent(t, p.b, p.addrB, "")
	sha := writeRandom(t, filepath.Join(b.root, "big.bin"), size)
	a := startAgent(t, p.a, p.addrA, "")

	id := a.startCopy(b.url("big.bin"), "in/big.bin", "--mode", "passive").GetId()
	w := watchFinal(t, filepath.Join(a.root, "in", "big.bin"), size)
	a.waitBytes(id, size*4/10, 2*time.Minute)

	b.kill9()
	killed := time.Now()
	held := a.heldAfterFailure(id, killed, filepath.Join(a.root, "in"), 10*time.Second)
	time.Sleep(3*time.Second - time.Since(killed))
	b.start()
	a.waitFinal(id, 2*time.Minute)
	got := a.get(id)
	t.Logf("ferryctl transfers get: %s", brief(got))
	mustSucceed(t, got, sha)
	w.check(t, sha)
	if got.GetAttempt() < 2 {
		t.Errorf("attempt = %d, want a retry after the sender died", got.GetAttempt())
	}
	figure(t, "kill -9 sender at %.0f%%, back after 3 s: detected in %s; attempts %d; %s",
		100*float64(held)/size, a.detection(id, killed), got.GetAttempt(), resent(held, got.GetBytesResumed(), size))
}

// TestShellCheck is the check from a shell, with ferryctl only:
//
//	ferryctl --agent A copy agent://B/big.bin in/big.bin --detach -o json   # prints the id
//	kill -9 A; start A again with the same --state-dir
//	ferryctl --agent A transfers get ID -o json                           # the job, going on
//
// until it is SUCCEEDED with the source's SHA-256. The mode is the agent's default (auto).
func TestShellCheck(t *testing.T) {
	const size = 256 << 20
	p := newPair(t, 400)
	b := startAgent(t, p.b, p.addrB, "")
	sha := writeRandom(t, filepath.Join(b.root, "big.bin"), size)
	a := startAgent(t, p.a, p.addrA, "")

	r := a.ctl(30*time.Second, "copy", b.url("big.bin"), "in/big.bin", "--detach", "-o", "json")
	if r.code != 0 {
		t.Fatalf("copy --detach: exit %d\n%s", r.code, r.out)
	}
	id := r.transfer(t).GetId()
	if id == "" {
		t.Fatalf("copy --detach -o json printed no id:\n%s", r.out)
	}
	t.Logf("copy --detach -o json: id %s", id)
	w := watchFinal(t, filepath.Join(a.root, "in", "big.bin"), size)

	// Poll with ferryctl until the transfer is well under way.
	deadline := time.Now().Add(time.Minute)
	for {
		got := a.get(id)
		if final(got) {
			t.Fatalf("transfer ended before the kill: %s", brief(got))
		}
		if got.GetProgress().GetBytesDone() > size/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer not a third done after a minute: %s", brief(got))
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.kill9()
	held := partSize(filepath.Join(a.root, "in"))
	a.start()

	var got *ferryv1.Transfer
	deadline = time.Now().Add(2 * time.Minute)
	for {
		got = a.get(id)
		if got.GetId() != id {
			t.Fatalf("transfers get %s after the restart returned %q", id, got.GetId())
		}
		if final(got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not finished 2 minutes after the restart: %s", brief(got))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("transfers get -o json after the restart: %s", brief(got))
	mustSucceed(t, got, sha)
	w.check(t, sha)
	if !strings.EqualFold(got.GetSha256(), sha) {
		t.Errorf("sha256 %s, want %s", got.GetSha256(), sha)
	}
	figure(t, "kill -9 receiver (shell check, auto mode): attempts %d; %s", got.GetAttempt(), resent(held, got.GetBytesResumed(), size))
}
