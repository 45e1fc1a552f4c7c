package nettest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// The data timeout the matrix's agents use (so that failures are quick), and how much longer
// than a timeout a failed transfer may take: login, the commands around the data connection and a
// loaded CI machine.
const (
	dataTimeout = 3 * time.Second
	margin      = 2 * time.Second
)

// Ports: the same on every host. Agents serve FTP on agentFTP, vsftpd on 21.
const (
	grpcPort    = 7070
	agentFTP    = 2121
	vsftpdPort  = 21
	fileSize    = 256 << 10
	ftpUser     = "ferry"
	ftpPassword = "ferry-matrix-pw"
)

var (
	agentPassive  = testbed.Ports(30010, 30019)
	vsftpdPassive = testbed.Ports(30000, 30009)
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func binDir(t *testing.T) string { return testbin.Dir(t) }

func needTools(t *testing.T) {
	t.Helper()
	for _, b := range []string{testftp.Binary, "curl"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed", b)
			}
			t.Skipf("%s is not installed", b)
		}
	}
}

// newBed is testbed.New plus the tools and binaries the matrix needs.
func newBed(t *testing.T) *testbed.Bed {
	t.Helper()
	b := testbed.New(t)
	needTools(t)
	binDir(t)
	return b
}

// agent is a ferry-agent running in a bed host.
type agent struct {
	host *testbed.Host
	addr netip.Addr // where peers reach it
	port int        // gRPC port
	root string
	api  ferryv1.AgentServiceClient
	proc *testbed.Proc
}

// agentOpts are the flags of one agent beyond the defaults below.
type agentOpts struct {
	grpcPort, ftpPort int
	passive           testbed.PortRange
	defaultTimeout    bool // leave --data-timeout at its default (10s)
	flags             []string
}

// startAgent runs ferry-agent in h: gRPC on all addresses (peers and the test reach it there),
// FTP likewise, passive ports agentPassive, --data-timeout 3s, one static FTP user. The test
// drives it over gRPC from inside h (testbed Host.Dial), so no firewall stands in the way.
func startAgent(t *testing.T, h *testbed.Host, addr netip.Addr, o agentOpts) *agent {
	t.Helper()
	if o.grpcPort == 0 {
		o.grpcPort = grpcPort
	}
	if o.ftpPort == 0 {
		o.ftpPort = agentFTP
	}
	if o.passive == (testbed.PortRange{}) {
		o.passive = agentPassive
	}
	root := t.TempDir()
	args := []string{
		"--root", root,
		"--token-file", testagent.TokenFile(t),
		"--peer-token-file", testagent.PeerTokenFile(t),
		"--insecure", // plaintext gRPC on the test hosts' network: authenticated, not encrypted
		"--state-dir", t.TempDir(),
		"--grpc-listen", fmt.Sprintf(":%d", o.grpcPort),
		"--ftp-listen", fmt.Sprintf(":%d", o.ftpPort),
		"--passive-ports", fmt.Sprintf("%d-%d", o.passive.First, o.passive.Last),
		"--ftp-user", ftpUser + ":" + ftpPassword,
		"--log-level", "debug",
	}
	if !o.defaultTimeout {
		args = append(args, "--data-timeout", dataTimeout.String())
	}
	args = append(args, o.flags...)
	p := h.Start(t, filepath.Join(binDir(t), "ferry-agent"), args...)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "ferry-agent ready"); err != nil {
		t.Fatal(err)
	}
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.grpcPort))
	conn, err := grpc.NewClient("passthrough:///"+local,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(security.BearerToken(testagent.AdminToken)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return h.Dial(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &agent{host: h, addr: addr, port: o.grpcPort, root: root, api: ferryv1.NewAgentServiceClient(conn), proc: p}
}

// url is agent://addr:port/path.
func (a *agent) url(path string) string {
	return "agent://" + net.JoinHostPort(a.addr.String(), strconv.Itoa(a.port)) + "/" + path
}

// vsftpd is a vsftpd in a bed host, anonymous with a writable /pub.
type vsftpd struct {
	*testftp.Server
	addr netip.Addr // where clients reach it
}

// startVsftpd runs vsftpd in h on port 21 of all its IPv4 addresses (of local, for an IPv6
// addr), passive ports vsftpdPassive, plus extra config lines. Clients reach it at addr (the
// router's address for a server behind NAT); the readiness check dials local, an address of h.
func startVsftpd(t *testing.T, h *testbed.Host, local, addr netip.Addr, extra ...string) *vsftpd {
	t.Helper()
	listen := "0.0.0.0"
	if addr.Is6() {
		listen = local.String() // vsftpd 3.0.3 mangles listen_address6=:: and cannot bind
	}
	s := testftp.StartVsftpdCmd(t, testftp.Options{
		ListenAddr: listen, Host: local.String(), Port: vsftpdPort,
		PasvMin: int(vsftpdPassive.First), PasvMax: int(vsftpdPassive.Last),
		Extra: extra,
		Dial:  h.Dial,
	}, []string{"ip", "netns", "exec", h.NS})
	return &vsftpd{Server: s, addr: addr}
}

// url is ftp://anonymous:pw@addr:21/pub/path.
func (v *vsftpd) url(path string) string {
	hp := net.JoinHostPort(v.addr.String(), strconv.Itoa(vsftpdPort))
	return fmt.Sprintf("ftp://%s:%s@%s%s/%s", url.PathEscape(v.User), url.PathEscape(v.Password), hp, v.Pub, path)
}

// writeFile puts size random bytes at path and returns their SHA-256.
func writeFile(t *testing.T, path string, size int) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// run starts a transfer on a and follows it to its final state; it returns that state and how
// long the transfer took from the request to the final snapshot.
func run(t *testing.T, a *agent, src, dst string, mode ferryv1.TransferMode) (*ferryv1.Transfer, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := a.api.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: src, Destination: dst, Mode: mode})
	if err != nil {
		t.Fatalf("StartTransfer %s -> %s: %v", src, dst, err)
	}
	stream, err := a.api.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: resp.GetTransfer().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var last *ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		last = m.GetTransfer()
	}
	took := time.Since(start)
	if last == nil || !isFinal(last.GetState()) {
		t.Fatalf("transfer %s -> %s: no final state within 60s (last %v)", src, dst, last)
	}
	return last, took
}

func isFinal(s ferryv1.TransferState) bool {
	return s == ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || s == ferryv1.TransferState_TRANSFER_STATE_FAILED ||
		s == ferryv1.TransferState_TRANSFER_STATE_CANCELLED
}

// mustSucceed asserts that the transfer succeeded in mode (UNSPECIFIED: any) and, if wantSHA is
// set, that the file at path has it.
func mustSucceed(t *testing.T, tr *ferryv1.Transfer, mode ferryv1.TransferMode, path, wantSHA string) {
	t.Helper()
	if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("%s -> %s: %v: %s (mode %v, reason %q)", tr.GetSource(), tr.GetDestination(), tr.GetState(), tr.GetError(), tr.GetMode(), tr.GetModeReason())
	}
	if mode != ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED && tr.GetMode() != mode {
		t.Errorf("mode %v, want %v (reason %q)", tr.GetMode(), mode, tr.GetModeReason())
	}
	if wantSHA != "" {
		if got := fileSHA(t, path); got != wantSHA {
			t.Errorf("%s: sha256 %s, want %s", path, got, wantSHA)
		}
	}
}

// mustFail asserts that the transfer failed within [min, max] and that its error contains every
// one of wants.
func mustFail(t *testing.T, tr *ferryv1.Transfer, took, min, max time.Duration, wants ...string) {
	t.Helper()
	if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED {
		t.Fatalf("%s -> %s: %v in mode %v, want FAILED", tr.GetSource(), tr.GetDestination(), tr.GetState(), tr.GetMode())
	}
	t.Logf("failed after %v: %s", took.Round(10*time.Millisecond), tr.GetError())
	if took < min || took > max {
		t.Errorf("failed after %v, want between %v and %v", took.Round(10*time.Millisecond), min, max)
	}
	for _, w := range wants {
		if !strings.Contains(tr.GetError(), w) {
			t.Errorf("error %q does not say %q", tr.GetError(), w)
		}
	}
}

// doctor runs ferryctl doctor in h (-o json) and returns the responses and the exit code.
func doctor(t *testing.T, h *testbed.Host, args ...string) ([]*ferryv1.DiagnoseResponse, int, time.Duration) {
	t.Helper()
	start := time.Now()
	out, err := h.Exec(t.Context(), filepath.Join(binDir(t), "ferryctl"), append([]string{"--token-file", testagent.TokenFile(t), "doctor", "-o", "json"}, args...)...)
	took := time.Since(start)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("ferryctl doctor: %v\n%s", err, out)
		}
		code = ee.ExitCode()
	}
	var resps []*ferryv1.DiagnoseResponse
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue // an error line on stderr (combined output)
		}
		r := &ferryv1.DiagnoseResponse{}
		if err := protojson.Unmarshal([]byte(line), r); err != nil {
			t.Fatalf("doctor output %q: %v", line, err)
		}
		resps = append(resps, r)
	}
	if len(resps) == 0 {
		t.Fatalf("ferryctl doctor printed no diagnosis (exit %d):\n%s", code, out)
	}
	for _, r := range resps {
		t.Logf("doctor %s -> %s:\n%s", r.GetAgent(), r.GetUrl(), formatDiag(r))
	}
	return resps, code, took
}

func formatDiag(r *ferryv1.DiagnoseResponse) string {
	var b strings.Builder
	for _, c := range r.GetChecks() {
		fmt.Fprintf(&b, "  %-13s %-5s %8v  %s\n", c.GetName(), strings.TrimPrefix(c.GetStatus().String(), "CHECK_STATUS_"),
			c.GetDuration().AsDuration().Round(time.Millisecond), c.GetDetail())
	}
	fmt.Fprintf(&b, "  recommendation: %s", r.GetRecommendation())
	return b.String()
}

// checks maps check name to status name ("OK", "FAIL", ...).
func checks(r *ferryv1.DiagnoseResponse) map[string]string {
	m := map[string]string{}
	for _, c := range r.GetChecks() {
		m[c.GetName()] = strings.TrimPrefix(c.GetStatus().String(), "CHECK_STATUS_")
	}
	return m
}

func check(r *ferryv1.DiagnoseResponse, name string) *ferryv1.Check {
	for _, c := range r.GetChecks() {
		if c.GetName() == name {
			return c
		}
	}
	return &ferryv1.Check{}
}

// wantChecks asserts the status of each named check, and that the recommendation contains every
// one of wants.
func wantChecks(t *testing.T, r *ferryv1.DiagnoseResponse, statuses map[string]string, wants ...string) {
	t.Helper()
	got := checks(r)
	for name, st := range statuses {
		if got[name] != st {
			t.Errorf("doctor %s: check %s is %s, want %s (%s)", r.GetUrl(), name, got[name], st, check(r, name).GetDetail())
		}
	}
	for _, w := range wants {
		if !strings.Contains(r.GetRecommendation(), w) {
			t.Errorf("doctor %s: recommendation %q does not say %q", r.GetUrl(), r.GetRecommendation(), w)
		}
	}
}

// servers starts, in srv, a Ferry agent (FTP on agentFTP) and a vsftpd (on 21), each serving
// pub/file.bin, reached by clients at addr (local is an address of srv); it returns them and the
// file's SHA-256.
func servers(t *testing.T, srv *testbed.Host, local, addr netip.Addr) (*agent, *vsftpd, string) {
	t.Helper()
	a := startAgent(t, srv, addr, agentOpts{})
	v := startVsftpd(t, srv, local, addr)
	sum := writeFile(t, filepath.Join(a.root, "pub", "file.bin"), fileSize)
	b, err := os.ReadFile(filepath.Join(a.root, "pub", "file.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v.Local(v.Pub+"/file.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return a, v, sum
}

// kinds are the two servers of the matrix, as the client agent addresses them.
type kind struct {
	name string
	url  func(path string) string
}

func kinds(a *agent, v *vsftpd) []kind {
	return []kind{{"agent", func(p string) string { return a.url("pub/" + p) }}, {"vsftpd", v.url}}
}

func modeName(m ferryv1.TransferMode) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "TRANSFER_MODE_"))
}

var (
	passive = ferryv1.TransferMode_TRANSFER_MODE_PASSIVE
	active  = ferryv1.TransferMode_TRANSFER_MODE_ACTIVE
	auto    = ferryv1.TransferMode_TRANSFER_MODE_AUTO
	anyMode = ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED
)
