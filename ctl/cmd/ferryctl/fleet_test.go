package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/internal/testagent"
)

// startFleetAgents starts n agents that accept fleetToken with the role fleet and present it
// to each other, and writes an inventory naming them n0 (role=origin) and n1.. (role=edge);
// extra lines are appended to the inventory as they are.
func startFleetAgents(t *testing.T, n int, extra string) ([]*testagent.Agent, string) {
	t.Helper()
	fleetToken, err := security.NewTokenValue()
	if err != nil {
		t.Fatal(err)
	}
	var agents []*testagent.Agent
	var inv strings.Builder
	inv.WriteString("agents:\n")
	for i := range n {
		a := testagent.Start(t, func(c *daemon.Config) {
			c.StateDir = filepath.Join(t.TempDir(), "state")
			c.Tokens = append(c.Tokens, security.Token{Role: security.RoleFleet, Value: fleetToken})
			c.PeerToken = fleetToken
			c.FleetPoll, c.FleetRetryBase = 100*time.Millisecond, 100*time.Millisecond
		})
		agents = append(agents, a)
		role := "edge"
		if i == 0 {
			role = "origin"
		}
		fmt.Fprintf(&inv, "  - name: n%d\n    address: %s\n    labels: {role: %s, region: eu}\n", i, a.GRPC, role)
	}
	inv.WriteString(extra)
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(p, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return agents, p
}

// ferryctlStdin is ferryctl with stdin.
func ferryctlStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryctlBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_AGENT=", "FERRY_TOKEN="+testagent.AdminToken)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ferryctl %q: %v", args, err)
	}
	t.Logf("ferryctl %s\n%s", strings.Join(args, " "), r)
	return r
}

func TestFleetCommands(t *testing.T) {
	downAddr := freeAddr(t)
	agents, inv := startFleetAgents(t, 4, fmt.Sprintf("  - name: gone\n    address: %s\n    labels: {role: edge, region: us}\n", downAddr))
	sum := writeFile(t, agents[0].Root, "rel/app.bin", 3<<20)

	t.Run("ls", func(t *testing.T) {
		r := ferryctl(t, "fleet", "ls", "--inventory", inv, "--timeout", "2s", "-o", "json")
		wantCode(t, r, exitFailure)
		if !strings.Contains(r.stderr, "gone") {
			t.Errorf("stderr should name the agent that did not answer: %q", r.stderr)
		}
		var healthy int
		for _, l := range r.lines() {
			var row agentRow
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if row.Healthy {
				healthy++
				if row.FreeBytes <= 0 || row.TotalBytes < row.FreeBytes || row.Version == "" {
					t.Errorf("%s: free %d total %d version %q", row.Name, row.FreeBytes, row.TotalBytes, row.Version)
				}
			}
		}
		if healthy != 4 {
			t.Errorf("%d healthy agents, want 4", healthy)
		}
		r = ferryctl(t, "fleet", "ls", "--inventory", inv, "region=eu,role=edge")
		wantCode(t, r, 0)
		if len(r.lines()) != 4 || strings.Contains(r.stdout, "gone") || strings.Contains(r.stdout, "origin") {
			t.Errorf("selector role=edge,region=eu: want a header and n1..n3:\n%s", r.stdout)
		}
		wantCode(t, ferryctl(t, "fleet", "ls", "--inventory", inv, "role"), exitUsage)
		wantCode(t, ferryctl(t, "fleet", "ls", "--inventory", inv, "role=nothing"), exitUsage)
	})

	t.Run("copy tree json", func(t *testing.T) {
		r := ferryctl(t, "fleet", "copy", "--inventory", inv, "n0:rel/app.bin", "--to", "region=eu:in/", "--fanout", "1", "-o", "json")
		wantCode(t, r, 0)
		lines := r.lines()
		var res struct {
			Event string `json:"event"`
			OK    bool   `json:"ok"`
			Job   struct {
				Sha256       string `json:"sha256"`
				SourceCopies int    `json:"source_copies"`
				Hosts        []struct {
					Name     string `json:"name"`
					ServedBy string `json:"served_by"`
				} `json:"hosts"`
			} `json:"job"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Event != "result" || !res.OK {
			t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
		}
		if res.Job.Sha256 != sum || res.Job.SourceCopies != 1 || len(res.Job.Hosts) != 3 {
			t.Errorf("result: sha %s copies %d hosts %d; want %s, 1, 3", res.Job.Sha256, res.Job.SourceCopies, len(res.Job.Hosts), sum)
		}
		if hostEvents := strings.Count(r.stdout, `"event":"host"`); hostEvents < 3 {
			t.Errorf("%d host events", hostEvents)
		}
		for _, a := range agents[1:] {
			if got := fileSHA(t, filepath.Join(a.Root, "in", "app.bin")); got != sum {
				t.Errorf("%s: sha256 %s", a.GRPC, got)
			}
		}
	})

	t.Run("copy with a host down", func(t *testing.T) {
		r := ferryctl(t, "fleet", "copy", "--inventory", inv, "n0:rel/app.bin", "--to", "role=edge:in2/app.bin",
			"--strategy", "direct", "--attempts", "2")
		wantCode(t, r, exitFailure)
		errLines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if last := errLines[len(errLines)-1]; !strings.HasPrefix(last, "ferryctl: ") || !strings.Contains(last, "gone") {
			t.Errorf("the last line on stderr should name the failed host: %q", last)
		}
		if !strings.Contains(r.stderr, "gone FAILED after 2 attempt(s)") {
			t.Errorf("progress lines should report the failed host: %q", r.stderr)
		}
		if !strings.Contains(r.stdout, "HOST") || !strings.Contains(r.stdout, "failed: 1 of 4 hosts failed: gone") {
			t.Errorf("stdout should hold the summary table and the result:\n%s", r.stdout)
		}
		for _, a := range agents[1:] {
			if got := fileSHA(t, filepath.Join(a.Root, "in2", "app.bin")); got != sum {
				t.Errorf("%s: sha256 %s", a.GRPC, got)
			}
		}
	})

	t.Run("collect from stdin inventory, detach, status, jobs", func(t *testing.T) {
		body, err := os.ReadFile(inv)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range agents[1:] {
			writeFile(t, a.Root, "logs/app.log", 1000+i)
		}
		r := ferryctlStdin(t, string(body), "fleet", "collect", "--inventory", "-", "role=edge,region=eu:logs/app.log", "n0:gathered", "--detach")
		wantCode(t, r, 0)
		id := strings.TrimSpace(r.stdout)
		r = ferryctl(t, "fleet", "watch", "--inventory", inv, "--coordinator", "n0", id)
		wantCode(t, r, 0)
		for i, a := range agents[1:] {
			want := fileSHA(t, filepath.Join(a.Root, "logs", "app.log"))
			if got := fileSHA(t, filepath.Join(agents[0].Root, "gathered", fmt.Sprintf("n%d", i+1), "app.log")); got != want {
				t.Errorf("gathered/n%d/app.log: sha256 %s, want %s", i+1, got, want)
			}
		}
		r = ferryctl(t, "--agent", agents[0].GRPC, "fleet", "status", id)
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, "succeeded: 3 hosts") {
			t.Errorf("status:\n%s", r.stdout)
		}
		r = ferryctl(t, "fleet", "jobs", "--inventory", inv, "--coordinator", "n0")
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "collect") {
			t.Errorf("jobs:\n%s", r.stdout)
		}
		wantCode(t, ferryctl(t, "--agent", agents[0].GRPC, "fleet", "status", "0123456789abcdef"), exitNotFound)
	})
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	a := testagent.Start(t)
	addr := a.GRPC
	a.Stop()
	return addr
}
