package fleettest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// FleetToken is what the agents of a test fleet present to each other (their peer token) and
// accept with the role fleet: any of them can coordinate.
var FleetToken = func() string {
	t, err := security.NewTokenValue()
	if err != nil {
		panic(err)
	}
	return t
}()

// node is one agent of a test fleet.
type node struct {
	name string
	a    *testagent.Agent
	mu   sync.Mutex
}

func (n *node) agent() *testagent.Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.a
}

func (n *node) fleetAgent() *ferryv1.FleetAgent {
	return &ferryv1.FleetAgent{Name: n.name, Address: n.agent().GRPC}
}

// restart stops the agent and starts it again on the same root, state and ports.
func (n *node) restart(t testing.TB) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.a = n.a.Restart(t)
}

// fleetConfig is the configuration every test agent gets: a state directory (jobs are
// durable), the fleet token, quick polls and retries.
func fleetConfig(host string) func(*daemon.Config) {
	return func(c *daemon.Config) {
		if host != "" {
			c.GRPCListen, c.FTPListen = host+":0", host+":0"
		}
		c.StateDir = filepath.Join(c.Root, "..", filepath.Base(c.Root)+".state")
		c.Tokens = append(c.Tokens, security.Token{Role: security.RoleFleet, Value: FleetToken})
		c.PeerToken = FleetToken
		// Passive data connections: the source's data then leaves from its own address, which
		// the egress counter watches (an active one is dialled from 127.0.0.1).
		c.DefaultMode = transfer.ModePassive
		c.FleetPoll = 100 * time.Millisecond
		c.FleetRetryBase = 200 * time.Millisecond
	}
}

// startFleet starts n agents named n0..n<n-1>; hosts[i], when given, is the loopback address
// agent i listens on (its traffic can be counted or shaped apart).
func startFleet(t testing.TB, n int, hosts ...string) []*node {
	t.Helper()
	nodes := make([]*node, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprint(r))
					mu.Unlock()
				}
			}()
			host := ""
			if i < len(hosts) {
				host = hosts[i]
			}
			nodes[i] = &node{name: fmt.Sprintf("n%d", i), a: testagent.Start(t, fleetConfig(host))}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return nodes
}

func targets(nodes []*node) []*ferryv1.FleetAgent {
	var out []*ferryv1.FleetAgent
	for _, n := range nodes {
		out = append(out, n.fleetAgent())
	}
	return out
}

// fleetClient talks to a coordinator with the admin token.
func fleetClient(t testing.TB, n *node) ferryv1.FleetServiceClient {
	conn := testagent.Dial(t, n.agent().GRPC, testagent.AdminToken)
	t.Cleanup(func() { conn.Close() })
	return ferryv1.NewFleetServiceClient(conn)
}

// waitJob polls the coordinator until the job ends (riding out the coordinator's restarts)
// and returns the final snapshot; each call to onSnap sees every snapshot.
func waitJob(t testing.TB, coord *node, id string, limit time.Duration, onSnap func(*ferryv1.FleetJob)) *ferryv1.FleetJob {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last *ferryv1.FleetJob
	for time.Now().Before(deadline) {
		conn := testagent.Dial(t, coord.agent().GRPC, testagent.ViewerToken)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := ferryv1.NewFleetServiceClient(conn).GetFleetJob(ctx, &ferryv1.GetFleetJobRequest{Id: id})
		cancel()
		conn.Close()
		if err == nil {
			last = resp.GetJob()
			if onSnap != nil {
				onSnap(last)
			}
			if last.GetState() != ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fleet job %s did not end within %s; last: %v", id, limit, last)
	return nil
}

// writeRandom writes size random bytes to root/rel and returns their SHA-256.
func writeRandom(t testing.TB, root, rel string, size int64) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkCopies asserts every node holds rel with the SHA-256 want.
func checkCopies(t testing.TB, nodes []*node, rel, want string) {
	t.Helper()
	for _, n := range nodes {
		got, err := fileSHA(filepath.Join(n.agent().Root, rel))
		if err != nil {
			t.Errorf("%s: %v", n.name, err)
		} else if got != want {
			t.Errorf("%s: sha256 %s, want %s", n.name, got, want)
		}
	}
}

// uniqueLoopback returns a loopback address of this test run (127.x.y.z), so that the bytes
// one agent sends can be counted apart from everyone else's.
func uniqueLoopback() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(250*250))
	v := int(n.Int64())
	return fmt.Sprintf("127.%d.%d.%d", 200+os.Getpid()%50, v/250+1, v%250+1)
}

// egress counts the bytes sent from one IPv4 address with an nftables counter (kernel side:
// every packet the source agent sends, FTP data and control and gRPC). nil when nft cannot
// run here (not root): the caller then relies on the coordinator's count of source copies.
type egress struct {
	table string
}

func newEgress(t testing.TB, addr string) *egress {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Logf("egress: nft unavailable (need root and nftables); counting source copies only")
		return nil
	}
	e := &egress{table: fmt.Sprintf("ff_egress_%d_%s", os.Getpid(), strings.ReplaceAll(addr, ".", "_"))}
	script := fmt.Sprintf("table ip %s {\n chain out {\n type filter hook output priority 0; policy accept;\n ip saddr %s counter\n }\n}\n", e.table, addr)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("egress: nft: %v %s; counting source copies only", err, out)
		return nil
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", e.table).Run() })
	return e
}

// throttle slows the large packets addr sends to about rate bytes a second (nftables drops the
// excess; TCP backs off), so a transfer from it lasts long enough to be cut. It reports false
// when nft cannot run here.
func throttle(t testing.TB, addr string, rate int) bool {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		return false
	}
	table := fmt.Sprintf("ff_slow_%d_%s", os.Getpid(), strings.ReplaceAll(addr, ".", "_"))
	script := fmt.Sprintf("table ip %s {\n chain out {\n type filter hook output priority 0; policy accept;\n ip saddr %s meta length > 1000 limit rate over %d kbytes/second drop\n }\n}\n", table, addr, rate>>10)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("throttle: nft: %v %s", err, out)
		return false
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
	return true
}

// shapeEach caps the large packets each of addrs sends at rate bytes a second, per address
// (an nftables meter; the excess is dropped and TCP backs off): a stand-in for every host's own
// uplink, which loopback lacks. It reports false when nft cannot run here.
func shapeEach(t testing.TB, addrs []string, rate int) bool {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		return false
	}
	table := fmt.Sprintf("ff_shape_%d", os.Getpid())
	script := fmt.Sprintf("table ip %s {\n chain out {\n type filter hook output priority 0; policy accept;\n ip saddr { %s } meta length > 1000 meter ff_uplink { ip saddr limit rate over %d kbytes/second burst %d kbytes } drop\n }\n}\n",
		table, strings.Join(addrs, ", "), rate>>10, rate>>12)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shape: nft: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
	return true
}

// bytes returns the counter's bytes so far (-1 without a counter).
func (e *egress) bytes(t testing.TB) int64 {
	if e == nil {
		return -1
	}
	out, err := exec.Command("nft", "list", "table", "ip", e.table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v %s", err, out)
	}
	s := string(out)
	i := strings.Index(s, "bytes ")
	if i < 0 {
		t.Fatalf("nft list: no counter in %s", s)
	}
	f := strings.Fields(s[i+len("bytes "):])
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatalf("nft counter: %v", err)
	}
	return v
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
