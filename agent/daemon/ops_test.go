package daemon_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	reflectgrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// scrape reads the agent's /metrics and returns the value of each sample ("name{labels}").
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "ferry_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func randomFile(t *testing.T, p string, n int) {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, c ferryv1.AgentServiceClient, id string) *ferryv1.Transfer {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.GetTransfer(context.Background(), &ferryv1.GetTransferRequest{Id: id})
		if err == nil && r.GetTransfer().GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
			return r.GetTransfer()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("transfer %s did not end", id)
	return nil
}

// TestMetricsMove: scraped during a download throttled by vsftpd (anon_max_rate), the running
// gauge is 1 and the byte counter grows before the end; after it, the counters hold the file's
// size, one success and one duration. An upload to a second agent moves that agent's FTP login
// and server byte counters; its audit log holds the login, the write of the part file, its
// rename to the final name and the GrantAccess call with the peer's identity.
func TestMetricsMove(t *testing.T) {
	const size = 3 << 20
	vs := testftp.StartVsftpd(t, testftp.Options{Extra: []string{"anon_max_rate=1500000"}})
	randomFile(t, vs.Local("/pub/slow.bin"), size)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	a := testagent.Start(t, func(c *daemon.Config) { c.MetricsListen = "127.0.0.1:0" })
	b := testagent.Start(t, func(c *daemon.Config) { c.MetricsListen = "127.0.0.1:0"; c.AuditLog = auditFile })
	ma, mb := a.D.Addr().Metrics, b.D.Addr().Metrics
	if ma == "" || mb == "" {
		t.Fatal("no metrics address")
	}

	src := fmt.Sprintf("ftp://%s:%s@%s/pub/slow.bin", vs.User, vs.Password, vs.Addr)
	resp, err := a.Client.StartTransfer(context.Background(), &ferryv1.StartTransferRequest{
		Source: src, Destination: "in/slow.bin", Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTransfer().GetId()
	const bytesKey = `ferry_transfer_bytes_total{direction="download",mode="passive"}`
	var during float64
	deadline := time.Now().Add(30 * time.Second)
	for during == 0 && time.Now().Before(deadline) {
		m := scrape(t, ma)
		if m["ferry_transfers_running"] == 1 && m[bytesKey] > 0 && m[bytesKey] < size {
			during = m[bytesKey]
		}
		time.Sleep(100 * time.Millisecond)
	}
	if during == 0 {
		t.Fatal("no scrape saw the transfer running with some of its bytes counted")
	}
	if tr := wait(t, a.Client, id); tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("transfer: %v", tr)
	}
	m := scrape(t, ma)
	for k, want := range map[string]float64{
		bytesKey: size, `ferry_transfers_total{state="succeeded"}`: 1, "ferry_transfers_running": 0,
		"ferry_transfers_queued": 0, `ferry_transfer_duration_seconds_count{state="succeeded"}`: 1,
	} {
		if m[k] != want {
			t.Errorf("after: %s = %v, want %v", k, m[k], want)
		}
	}
	t.Logf("bytes counted during the transfer: %.0f of %d", during, size)

	// a uploads to b: b's FTP server sees the login and the bytes.
	resp, err = a.Client.StartTransfer(context.Background(), &ferryv1.StartTransferRequest{
		Source: "in/slow.bin", Destination: "agent://" + b.GRPC + "/up/slow.bin", Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	if err != nil {
		t.Fatal(err)
	}
	if tr := wait(t, a.Client, resp.GetTransfer().GetId()); tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("upload: %v", tr)
	}
	m = scrape(t, mb)
	if m[`ferry_ftp_logins_total{result="accepted"}`] < 1 || m[`ferry_ftp_server_bytes_total{direction="received",mode="passive"}`] != size {
		t.Errorf("b's FTP metrics: %v", m)
	}
	if _, ok := m["ferry_ftp_sessions"]; !ok {
		t.Error("no ferry_ftp_sessions")
	}
	b.Stop() // the audit log is complete once the agent stopped

	fi, err := os.Stat(auditFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit log: %v, mode %v", err, fi.Mode())
	}
	body, _ := os.ReadFile(auditFile)
	var kinds []string
	var sawLogin, sawWrite, sawRename, sawGrant bool
	part := regexp.MustCompile(`^/up/\.slow\.bin\.[0-9a-f]{8}\.ferry-part$`)
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line is not JSON: %q", line)
		}
		kinds = append(kinds, r["kind"].(string))
		switch r["kind"] {
		case "ftp.login":
			sawLogin = r["user"] != "" && r["remote"] != nil
		case "ftp.write":
			sawWrite = part.MatchString(fmt.Sprint(r["path"])) && r["bytes"] == float64(size)
		case "ftp.rename":
			sawRename = part.MatchString(fmt.Sprint(r["path"])) && r["to"] == "/up/slow.bin"
		case "rpc":
			if strings.HasSuffix(fmt.Sprint(r["method"]), "/GrantAccess") {
				sawGrant = r["role"] == "peer" && strings.HasPrefix(fmt.Sprint(r["caller"]), "token:") && r["code"] == "OK"
			}
		}
	}
	if !sawLogin || !sawWrite || !sawRename || !sawGrant {
		t.Errorf("audit log lacks login %v, write %v, rename %v, GrantAccess %v:\n%s", sawLogin, sawWrite, sawRename, sawGrant, body)
	}
}

// TestHealthAndReflection: the health service answers SERVING without a token; a reflection
// client with a viewer token lists the API (and without one is refused); a health watch sees
// NOT_SERVING when the agent shuts down.
func TestHealthAndReflection(t *testing.T) {
	a := testagent.Start(t)
	anon, err := grpc.NewClient(a.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := healthgrpc.NewHealthClient(anon)
	for _, svc := range []string{"", "ferry.v1.AgentService"} {
		r, err := h.Check(ctx, &healthgrpc.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) without a token = %v, %v; want SERVING", svc, r, err)
		}
	}
	// Without a token, reflection and the API are refused.
	if _, err := listServices(ctx, anon); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without a token: %v, want Unauthenticated", err)
	}
	viewer := testagent.Dial(t, a.GRPC, testagent.ViewerToken)
	defer viewer.Close()
	names, err := listServices(ctx, viewer)
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if !strings.Contains(strings.Join(names, " "), "ferry.v1.AgentService") {
		t.Errorf("reflection lists %v", names)
	}

	w, err := h.Watch(ctx, &healthgrpc.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", r, err)
	}
	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	r, err := w.Recv()
	if err != nil || r.GetStatus() != healthgrpc.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch during shutdown: %v, %v; want NOT_SERVING", r, err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop")
	}
}

func listServices(ctx context.Context, cc *grpc.ClientConn) ([]string, error) {
	s, err := reflectgrpc.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer s.CloseSend()
	if err := s.Send(&reflectgrpc.ServerReflectionRequest{MessageRequest: &reflectgrpc.ServerReflectionRequest_ListServices{}}); err != nil {
		return nil, err
	}
	r, err := s.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	return names, nil
}
