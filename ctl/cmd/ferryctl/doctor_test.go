package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// The network failure cases (firewalls, NAT) are in internal/nettest; these check the command
// itself against agents on loopback, where everything works.
func TestDoctor(t *testing.T) {
	a, b := newPair(t)

	r := ferryctl(t, "doctor", "agent://"+a.GRPC, "agent://"+b.GRPC)
	wantCode(t, r, 0)
	for _, want := range []string{
		"From agent " + a.GRPC + " to agent://" + b.GRPC, "From agent " + b.GRPC + " to agent://" + a.GRPC,
		"CHECK", "RESULT", "TIME", "DETAIL", "Recommendation: Both passive and active mode work",
		"Between the agents: --mode auto works both ways",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q", want)
		}
	}
	for _, line := range r.lines() {
		if f := strings.Fields(line); len(f) > 1 && (f[0] == "passive" || f[0] == "active" || f[0] == "control") && f[1] != "ok" {
			t.Errorf("on loopback: %q", line)
		}
	}

	ftp := "ftp://" + testagent.User + ":" + testagent.Password + "@" + b.FTP + "/"
	r = ferryctl(t, "--agent", a.GRPC, "doctor", ftp, ftp, "-o", "json")
	wantCode(t, r, 0)
	if len(r.lines()) != 2 {
		t.Fatalf("want one JSON line per probe, got %d", len(r.lines()))
	}
	var d ferryv1.DiagnoseResponse
	if err := protojson.Unmarshal([]byte(r.lines()[0]), &d); err != nil {
		t.Fatal(err)
	}
	got := map[string]ferryv1.CheckStatus{}
	for _, c := range d.GetChecks() {
		got[c.GetName()] = c.GetStatus()
	}
	// Agents offer explicit FTPS by default (--ftp-tls optional): the TLS check is ok too.
	ok := ferryv1.CheckStatus_CHECK_STATUS_OK
	if got["control"] != ok || got["pasv-address"] != ok || got["passive"] != ok || got["active"] != ok || got["tls"] != ok {
		t.Errorf("checks %v", got)
	}
	if d.GetSuggestedMode() != ferryv1.TransferMode_TRANSFER_MODE_PASSIVE || d.GetFtpAddress() != b.FTP {
		t.Errorf("suggested %v, ftp address %q", d.GetSuggestedMode(), d.GetFtpAddress())
	}
	if strings.Contains(r.stdout, testagent.Password) {
		t.Errorf("password in doctor output")
	}

	// Nothing listens: the control check fails, the rest is skipped, exit 1.
	r = ferryctl(t, "doctor", "agent://"+a.GRPC, "ftp://127.0.0.1:1/")
	wantCode(t, r, exitFailure)
	if !strings.Contains(r.stdout, "Recommendation: Nothing listens on 127.0.0.1:1") || !strings.Contains(r.stdout, "skip") {
		t.Errorf("unreachable server: %s", r.stdout)
	}

	wantCode(t, ferryctl(t, "doctor", "http://x/", "agent://"+b.GRPC), exitUsage)
	wantCode(t, ferryctl(t, "doctor", "agent://"+b.GRPC), exitUsage)
	wantCode(t, ferryctl(t, "doctor", "agent://"+a.GRPC, ftp, "--probe-timeout", "0s"), exitUsage)
	wantCode(t, ferryctl(t, "doctor", "agent://127.0.0.1:1", ftp), exitUnreachable)
	if h := ferryctl(t, "doctor", "--help"); h.code != 0 || !strings.Contains(h.stdout, "Examples:") || !strings.Contains(h.stdout, "ferryctl doctor agent://") {
		t.Errorf("doctor --help: %s", h)
	}
}
