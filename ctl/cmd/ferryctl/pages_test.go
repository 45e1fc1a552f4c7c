package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func makeEmptyFiles(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ferryctlQuiet is ferryctl without logging the (huge) output.
func ferryctlQuiet(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, ferryctlBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_AGENT=", "FERRY_TOKEN="+testagent.AdminToken)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ferryctl %q: %v", args, err)
	}
	t.Logf("ferryctl %s: exit %d, %d bytes out, in %s; stderr %q", strings.Join(args, " "), r.code, len(r.stdout), time.Since(start).Round(time.Millisecond), r.stderr)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	return r
}

func checkEntries(t *testing.T, what string, entries []*ferryv1.FileEntry, n int) {
	t.Helper()
	if len(entries) != n {
		t.Fatalf("%s: %d entries, want %d", what, len(entries), n)
	}
	for i, e := range entries {
		if want := fmt.Sprintf("f%06d", i); e.GetName() != want {
			t.Fatalf("%s: entry %d = %q, want %q (missing, duplicate or out of order)", what, i, e.GetName(), want)
		}
	}
}

// TestLsHugeDirectory: `ferryctl ls` of a 120,000-entry directory (more than one 4 MiB gRPC
// message) prints every entry once, in order, from the agent's own root (JSON and text) and
// from another agent over FTP.
func TestLsHugeDirectory(t *testing.T) {
	a, b := newPair(t)
	const n = 120000
	start := time.Now()
	makeEmptyFiles(t, filepath.Join(b.Root, "huge"), n)
	t.Logf("%d files made in %s", n, time.Since(start))

	// Each of the 12 pages reads the 120,000 names and stats 10,000: 2-6 s on a loaded 2-core
	// machine under -race (the agent runs in this process), near the default 10 s --timeout.
	r := ferryctlQuiet(t, "--agent", b.GRPC, "--timeout", "60s", "ls", "huge", "-o", "json")
	var resp ferryv1.ListFilesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, "local -o json", resp.GetEntries(), n)

	r = ferryctlQuiet(t, "--agent", b.GRPC, "--timeout", "60s", "ls", "huge/")
	if lines := r.lines(); len(lines) != n+1 || !strings.HasPrefix(lines[1], "f000000 ") || !strings.HasPrefix(lines[n], "f119999 ") {
		t.Errorf("local text: %d lines", len(lines))
	}

	// The first page needs the peer's whole MLSD of 120,000 names: on a loaded machine under
	// -race that takes longer than the default 10 s --timeout; this test is about paging.
	r = ferryctlQuiet(t, "--agent", a.GRPC, "--timeout", "90s", "ls", b.URL("huge"), "-o", "json")
	resp.Reset()
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, "agent:// -o json", resp.GetEntries(), n)
}

// TestTransfersListAllPages: `ferryctl transfers list` shows every transfer of an agent that
// keeps more than one page of them (1,000 per page at most), once each.
func TestTransfersListAllPages(t *testing.T) {
	const n = 2100
	a := testagent.Start(t, func(c *daemon.Config) {
		c.Keep = 3000
		c.Retries = -1
		c.MaxTransfers = 64
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		_, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{
			Source: fmt.Sprintf("ftp://127.0.0.1:1/f%d", i), Destination: fmt.Sprintf("out/f%d", i),
			Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := ferryctlQuiet(t, "--agent", a.GRPC, "transfers", "list", "-o", "json")
	var list ferryv1.ListTransfersResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tr := range list.GetTransfers() {
		seen[tr.GetId()] = true
	}
	if len(list.GetTransfers()) != n || len(seen) != n {
		t.Errorf("transfers list: %d transfers (%d distinct), want %d", len(list.GetTransfers()), len(seen), n)
	}
	r = ferryctlQuiet(t, "--agent", a.GRPC, "transfers", "list")
	if got := len(r.lines()); got != n+1 {
		t.Errorf("transfers list text: %d lines, want %d", got, n+1)
	}
}
