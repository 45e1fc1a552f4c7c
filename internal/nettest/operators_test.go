package nettest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testbin"
)

// guideBlock is one fenced shell block of docs/operators.md.
type guideBlock struct {
	where string // "on-a", "on-b", or "" (systemd: not run here)
	body  string
}

func readGuide(t *testing.T) []guideBlock {
	t.Helper()
	f, err := os.Open("../../docs/operators.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []guideBlock
	var cur *guideBlock
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```sh"):
			cur = &guideBlock{where: strings.TrimSpace(strings.TrimPrefix(line, "```sh"))}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	return out
}

// TestOperatorsGuide follows docs/operators.md on two namespaced hosts: its shell blocks run as
// written on the host they name, with A_ADDR and B_ADDR set and the guide's absolute paths
// (/etc/ferry, /srv/ferry, /var/lib/ferry-agent, /var/log/ferry-agent) under a directory of each
// host (the two hosts share this machine's file system). The firewall is the guide's nftables
// ruleset; the agents start "by hand" as the guide says for hosts without systemd; the copies of
// step 5 (push, passive pull, active pull) must succeed through that firewall, and a port the
// table does not open stays closed.
func TestOperatorsGuide(t *testing.T) {
	for _, tool := range []string{"openssl", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (see .ci/run)", tool)
		}
	}
	bed := testbed.New(t)
	ha, hb := bed.Host("fo-a"), bed.Host("fo-b")
	aAddr, bAddr := bed.Link(ha, hb, testbed.LinkOpts{})
	bin := testbin.Dir(t)
	dirs := map[string]string{"on-a": t.TempDir(), "on-b": t.TempDir()}
	hosts := map[string]*testbed.Host{"on-a": ha, "on-b": hb}
	paths := regexp.MustCompile(`/(etc/ferry|srv/ferry|var/lib/ferry-agent|var/log/ferry-agent)\b`)
	local := func(where, s string) string {
		return paths.ReplaceAllString(s, dirs[where]+"/$1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run := func(where, body string) string {
		t.Helper()
		script := "set -euo pipefail\nexport PATH=" + bin + ":$PATH A_ADDR=" + aAddr.String() + " B_ADDR=" + bAddr.String() + "\n" + local(where, body)
		out, err := hosts[where].Exec(ctx, "bash", "-c", script)
		if err != nil {
			t.Fatalf("guide block on %s failed: %v\n%s\n--- block:\n%s", where, err, out, body)
		}
		return string(out)
	}

	blocks := readGuide(t)
	var ran, skipped int
	started := false
	for _, b := range blocks {
		switch b.where {
		case "on-a", "on-b":
		default:
			if strings.Contains(b.body, "systemctl enable --now ferry-agent") {
				// Step 4 without systemd, as the guide says: ferry-agent --config /etc/ferry/agent.yaml.
				for _, w := range []string{"on-a", "on-b"} {
					p := hosts[w].Start(t, filepath.Join(bin, "ferry-agent"), "--config", local(w, "/etc/ferry/agent.yaml"))
					wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
					if err := p.WaitOutput(wctx, "ferry-agent ready"); err != nil {
						wcancel()
						t.Fatalf("agent on %s did not start: %v\n%s", w, err, p.Output())
					}
					wcancel()
				}
				started = true
			}
			skipped++
			continue
		}
		if b.where == "on-a" && strings.Contains(b.body, "ferryctl") && !started {
			t.Fatal("the guide uses ferryctl before starting the agents")
		}
		if strings.Contains(b.body, "nft -f") {
			// The firewall goes in before the agents start, as in the guide.
			run(b.where, b.body)
			ran++
			continue
		}
		out := run(b.where, b.body)
		ran++
		if strings.Contains(b.body, "openssl") {
			// "Copy ... to B": the files the guide names.
			for _, f := range []string{"tokens", "peer.token", "tls/ca.crt", "tls/b.crt", "tls/b.key"} {
				data, err := os.ReadFile(filepath.Join(dirs["on-a"], "etc/ferry", f))
				if err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(dirs["on-b"], "etc/ferry", f)
				if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		if strings.Contains(b.body, "ferryctl") {
			t.Logf("step 5 output:\n%s", out)
		}
	}
	if ran < 6 || !started {
		t.Fatalf("ran %d blocks of the guide (skipped %d), agents started %v", ran, skipped, started)
	}
	for _, f := range []string{"in/passive.txt", "in/active.txt"} {
		b, err := os.ReadFile(filepath.Join(dirs["on-a"], "srv/ferry", f))
		if err != nil || string(b) != "hello, B\n" {
			t.Errorf("%s on A: %q, %v", f, b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dirs["on-b"], "srv/ferry/hello.txt")); err != nil || string(b) != "hello, B\n" {
		t.Errorf("hello.txt on B: %q, %v", b, err)
	}
	// The firewall is the guide's: B's metrics port (not in the table for other hosts) is
	// closed to A, while B's gRPC port is open.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	if c, err := ha.Dial(dctx, "tcp", bAddr.String()+":9464"); err == nil {
		c.Close()
		t.Error("A reaches B's port 9464, which the guide's firewall does not open")
	}
	c, err := ha.Dial(ctx, "tcp", bAddr.String()+":7070")
	if err != nil {
		t.Fatalf("A cannot reach B's gRPC port: %v", err)
	}
	c.Close()
}
