package pluginhost_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/pluginhost"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/plugins"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// receiver is a webhook endpoint that verifies each request's signature and keeps the events.
type receiver struct {
	t      testing.TB
	secret []byte
	mu     sync.Mutex
	events []plugins.Event
	bad    []string
	deny   map[plugins.EventKind]string // checks to deny, with the reason
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	ts := r.Header.Get("X-Ferry-Timestamp")
	m := hmac.New(sha256.New, rc.secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	sec, err := strconv.ParseInt(ts, 10, 64)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case !hmac.Equal([]byte(r.Header.Get("X-Ferry-Signature")), []byte(want)):
		rc.bad = append(rc.bad, "bad signature")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	case err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute:
		rc.bad = append(rc.bad, "stale timestamp "+ts)
		http.Error(w, "stale", http.StatusUnauthorized)
		return
	}
	var e plugins.Event
	if err := json.Unmarshal(body, &e); err != nil {
		rc.bad = append(rc.bad, "bad JSON: "+err.Error())
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	if r.Header.Get("X-Ferry-Event") != string(e.Kind) {
		rc.bad = append(rc.bad, "X-Ferry-Event "+r.Header.Get("X-Ferry-Event")+" for "+string(e.Kind))
	}
	rc.events = append(rc.events, e)
	if reason, ok := rc.deny[e.Kind]; ok {
		_ = json.NewEncoder(w).Encode(plugins.Decision{Allow: false, Reason: reason})
	}
}

func (rc *receiver) kinds() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var k []string
	for _, e := range rc.events {
		k = append(k, string(e.Kind))
	}
	return k
}

func newReceiver(t testing.TB) (*receiver, string, string) {
	rc := &receiver{t: t, secret: []byte("webhook-test-secret")}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	key := filepath.Join(t.TempDir(), "webhook.key")
	if err := os.WriteFile(key, append(rc.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return rc, srv.URL, key
}

// TestWebhookEvents: a transfer's every event reaches the webhook receiver, in order, signed.
func TestWebhookEvents(t *testing.T) {
	rc, url, key := newReceiver(t)
	b := testagent.Start(t)
	writeFile(t, filepath.Join(b.Root, "src.bin"), 3<<20)
	a := startAgent(t, []pluginhost.Spec{{Path: bin(t, "hook-webhook"), Args: []string{"-url", url, "-secret-file", key}}})
	final := runTransfer(t, a, b.URL("src.bin"), "dst.bin")
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		t.Fatalf("transfer %v: %s", final.GetState(), final.GetError())
	}
	want := "queued,started,before_start,before_publish,succeeded"
	if !eventually(10*time.Second, func() bool { return strings.Join(rc.kinds(), ",") == want }) {
		t.Errorf("webhook received %v, want %s", rc.kinds(), want)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Errorf("bad requests: %v", rc.bad)
	}
	for _, e := range rc.events {
		if e.Transfer == nil || e.Transfer.ID != final.GetId() || e.Time.IsZero() {
			t.Errorf("event %s: transfer %+v", e.Kind, e.Transfer)
		}
	}
	if n := len(rc.events); n == 5 {
		if e := rc.events[3]; e.Path != "dst.bin" {
			t.Errorf("before_publish path %q, want dst.bin", e.Path)
		}
		if e := rc.events[4]; e.Transfer.State != "succeeded" || e.Transfer.BytesDone != 3<<20 || e.Transfer.SHA256 == "" {
			t.Errorf("succeeded event: %+v", e.Transfer)
		}
	}
}

// TestWebhookVeto: the receiver's answer denies a start; the transfer fails with its reason.
func TestWebhookVeto(t *testing.T) {
	rc, url, key := newReceiver(t)
	rc.deny = map[plugins.EventKind]string{plugins.KindBeforeStart: "outside the transfer window"}
	b := testagent.Start(t)
	writeFile(t, filepath.Join(b.Root, "src.bin"), 1000)
	a := startAgent(t, []pluginhost.Spec{{Path: bin(t, "hook-webhook"), Args: []string{"-url", url, "-secret-file", key}}})
	final := runTransfer(t, a, b.URL("src.bin"), "dst.bin")
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), "outside the transfer window") {
		t.Errorf("transfer %v %q, want FAILED with the webhook's reason", final.GetState(), final.GetError())
	}
	if _, err := os.Stat(filepath.Join(a.Root, "dst.bin")); err == nil {
		t.Error("dst.bin exists")
	}
}

// TestExecDenyBeforePublish: hook-exec's command refuses the file before publication: nothing
// under the final name, the transfer FAILED with the command's first output line.
func TestExecDenyBeforePublish(t *testing.T) {
	script := filepath.Join(t.TempDir(), "scan.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
# The event arrives in the environment and as JSON on stdin.
grep -q '"kind":"before_publish"' || { echo "no event on stdin"; exit 1; }
echo "EICAR test signature found in $FERRY_PATH"
exit 3
`), 0o755); err != nil {
		t.Fatal(err)
	}
	b := testagent.Start(t)
	writeFile(t, filepath.Join(b.Root, "in", "src.bin"), 2<<20)
	a := startAgent(t, []pluginhost.Spec{{Path: bin(t, "hook-exec"), Args: []string{"-events", "before_publish", "--", script}}})
	final := runTransfer(t, a, b.URL("in/src.bin"), "out/dst.bin")
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED {
		t.Fatalf("transfer %v, want FAILED", final.GetState())
	}
	if !strings.Contains(final.GetError(), "EICAR test signature found in out/dst.bin") {
		t.Errorf("error %q lacks the plugin's reason", final.GetError())
	}
	if final.GetAttempt() != 1 {
		t.Errorf("a veto was retried: %d attempts", final.GetAttempt())
	}
	if _, err := os.Stat(filepath.Join(a.Root, "out", "dst.bin")); err == nil {
		t.Error("the vetoed file is under its final name")
	}
}

// TestExecDenyPushedUpload: an agent pushes a file to an agent whose hook refuses it: the
// receiving FTP server's rename of the part file to the final name is the publication, the
// hook vetoes it there, and the pushing transfer FAILED with the hook's reason.
func TestExecDenyPushedUpload(t *testing.T) {
	script := filepath.Join(t.TempDir(), "policy.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"name refused by policy: $FERRY_PATH\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	recv := startAgent(t, []pluginhost.Spec{{Path: bin(t, "hook-exec"), Args: []string{"-events", "before_publish", "--", script}}})
	sender := testagent.Start(t)
	writeFile(t, filepath.Join(sender.Root, "up.bin"), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := sender.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: "up.bin", Destination: recv.URL("in/up.bin"),
		Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
	if err != nil {
		t.Fatal(err)
	}
	var final *ferryv1.Transfer
	if !eventually(30*time.Second, func() bool {
		r, err := sender.Client.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: resp.GetTransfer().GetId()})
		final = r.GetTransfer()
		return err == nil && final.GetState() != ferryv1.TransferState_TRANSFER_STATE_QUEUED &&
			final.GetState() != ferryv1.TransferState_TRANSFER_STATE_RUNNING
	}) {
		t.Fatalf("transfer did not end: %v", final)
	}
	if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), "name refused by policy: in/up.bin") {
		t.Errorf("push: %v %q, want FAILED with the hook's reason", final.GetState(), final.GetError())
	}
	if _, err := os.Stat(filepath.Join(recv.Root, "in", "up.bin")); err == nil {
		t.Error("the refused file is under its final name on the receiving agent")
	}
}

// TestFTPEventsEndToEnd: curl uploads, renames and deletes a file on an agent's FTP server; the
// webhook receives ftp_uploaded, ftp_renamed and ftp_deleted in that order, with the user, the
// paths and the size (logins, listings and downloads are not passed to hooks).
func TestFTPEventsEndToEnd(t *testing.T) {
	rc, url, key := newReceiver(t)
	a := startAgent(t, []pluginhost.Spec{{Path: bin(t, "hook-webhook"), Args: []string{"-url", url, "-secret-file", key}}})
	local := filepath.Join(t.TempDir(), "up.bin")
	writeFile(t, local, 123_456)
	ftp := "ftp://" + a.FTP + "/"
	if code, out := curl(t, a.FTP, testagent.User, testagent.Password, "-T", local, ftp+"in/up.bin", "--ftp-create-dirs"); code != 0 {
		t.Fatalf("upload: curl exit %d: %s", code, out)
	}
	if code, out := curl(t, a.FTP, testagent.User, testagent.Password, "-o", os.DevNull, ftp+"in/up.bin"); code != 0 {
		t.Fatalf("download: curl exit %d: %s", code, out)
	}
	if code, out := curl(t, a.FTP, testagent.User, testagent.Password, "-Q", "RNFR in/up.bin", "-Q", "RNTO in/done.bin",
		"-Q", "DELE in/done.bin", "-l", ftp); code != 0 {
		t.Fatalf("rename and delete: curl exit %d: %s", code, out)
	}
	want := "ftp_uploaded,ftp_renamed,ftp_deleted"
	if !eventually(10*time.Second, func() bool { return strings.Join(rc.kinds(), ",") == want }) {
		t.Fatalf("received %v, want %s", rc.kinds(), want)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Errorf("bad requests: %v", rc.bad)
	}
	if f := rc.events[0].File; f == nil || f.User != testagent.User || f.Path != "/in/up.bin" || f.Bytes != 123_456 || f.Remote == "" {
		t.Errorf("uploaded: %+v", f)
	}
	if f := rc.events[1].File; f == nil || f.Path != "/in/up.bin" || f.To != "/in/done.bin" {
		t.Errorf("renamed: %+v", f)
	}
	if f := rc.events[2].File; f == nil || f.Path != "/in/done.bin" {
		t.Errorf("deleted: %+v", f)
	}
}

// TestFTPEventsSink: FTP file events given to the hooks' EventSink reach a hook plugin
// (uploaded, deleted, renamed; logins and reads are not passed on), with every field.
func TestFTPEventsSink(t *testing.T) {
	rc, url, key := newReceiver(t)
	h, err := pluginhost.New(pluginhost.Config{Plugins: []pluginhost.Spec{{Path: bin(t, "hook-webhook"), Args: []string{"-url", url, "-secret-file", key}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sink := h.Hooks()
	remote := netip.MustParseAddrPort("192.0.2.7:40000")
	for _, e := range []ftpserver.Event{
		{Kind: ftpserver.EventLogin, User: "u", Remote: remote},
		{Kind: ftpserver.EventWrite, User: "u", Remote: remote, TLS: true, Path: "/in/a.bin", Bytes: 42},
		{Kind: ftpserver.EventRead, User: "u", Path: "/in/a.bin", Bytes: 42},
		{Kind: ftpserver.EventRename, User: "u", Path: "/in/a.bin", To: "/in/b.bin"},
		{Kind: ftpserver.EventDelete, User: "u", Path: "/in/b.bin"},
	} {
		sink.FTPEvent(e)
	}
	want := "ftp_uploaded,ftp_renamed,ftp_deleted"
	if !eventually(10*time.Second, func() bool { return strings.Join(rc.kinds(), ",") == want }) {
		t.Fatalf("received %v, want %s", rc.kinds(), want)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if f := rc.events[0].File; f == nil || f.User != "u" || f.Remote != "192.0.2.7:40000" || !f.TLS || f.Path != "/in/a.bin" || f.Bytes != 42 {
		t.Errorf("uploaded: %+v", f)
	}
	if f := rc.events[1].File; f == nil || f.To != "/in/b.bin" {
		t.Errorf("renamed: %+v", f)
	}
}

// TestFailOpenClosed: a hook that cannot answer (its URL refuses connections) denies with
// fail-closed and allows with fail-open.
func TestFailOpenClosed(t *testing.T) {
	_, _, key := newReceiver(t)
	dead := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/"
	for _, open := range []bool{false, true} {
		h, err := pluginhost.New(pluginhost.Config{Timeout: 2 * time.Second, Plugins: []pluginhost.Spec{{
			Path: bin(t, "hook-webhook"), Args: []string{"-url", dead, "-secret-file", key, "-retries", "1"}, FailOpen: open}}})
		if err != nil {
			t.Fatal(err)
		}
		err = h.Hooks().BeforeStart(context.Background(), snapshot())
		h.Close()
		if open && err != nil {
			t.Errorf("fail-open: %v", err)
		}
		if !open && (err == nil || !strings.Contains(err.Error(), "fail-closed")) {
			t.Errorf("fail-closed: %v", err)
		}
	}
}

// TestExecDenyTree: a directory copied between agents (one tree stream) is gated file by file:
// the hook refuses bad.bin, which never takes its final name, and the transfer FAILED with the
// hook's reason; this holds for a pulled tree (the engine's gate) and a pushed one (the
// receiving FTP server's gate).
func TestExecDenyTree(t *testing.T) {
	script := filepath.Join(t.TempDir(), "scan.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncase \"$FERRY_PATH\" in *bad.bin) echo \"malware in $FERRY_PATH\"; exit 1;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := []pluginhost.Spec{{Path: bin(t, "hook-exec"), Args: []string{"-events", "before_publish", "--", script}}}
	plain := testagent.Start(t)
	for _, name := range []string{"a.bin", "bad.bin", "c.bin"} {
		writeFile(t, filepath.Join(plain.Root, "tree", name), 10_000)
	}
	hooked := startAgent(t, spec)
	for _, c := range []struct {
		name       string
		runner     *testagent.Agent
		src, dst   string
		finalBadAt string
	}{
		{"pull", hooked, plain.URL("tree/"), "pulled/", filepath.Join(hooked.Root, "pulled", "bad.bin")},
		{"push", plain, "tree/", hooked.URL("pushed/"), filepath.Join(hooked.Root, "pushed", "bad.bin")},
	} {
		final := runTransfer(t, c.runner, c.src, c.dst)
		if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_FAILED || !strings.Contains(final.GetError(), "malware in ") {
			t.Errorf("%s: %v %q, want FAILED with the hook's reason", c.name, final.GetState(), final.GetError())
		}
		if _, err := os.Stat(c.finalBadAt); err == nil {
			t.Errorf("%s: the refused file is under its final name", c.name)
		}
	}
}
