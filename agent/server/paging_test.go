package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/server"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// makeFiles creates n empty files named f000000... in dir.
func makeFiles(t testing.TB, dir string, n int) {
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

// allFiles pages through ListFiles with the given page size and returns the names and pages.
func allFiles(t *testing.T, c ferryv1.AgentServiceClient, url string, size int32) (names []string, pages int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req := &ferryv1.ListFilesRequest{Url: url, PageSize: size}
	for {
		resp, err := c.ListFiles(ctx, req) // the default 4 MiB client limit
		if err != nil {
			t.Fatalf("ListFiles(%s) page %d: %v", url, pages+1, err)
		}
		pages++
		if n := proto.Size(resp); n > 3<<20 {
			t.Errorf("page %d is %d bytes", pages, n)
		}
		if size > 0 && len(resp.GetEntries()) > int(size) {
			t.Errorf("page %d has %d entries, page_size %d", pages, len(resp.GetEntries()), size)
		}
		for _, e := range resp.GetEntries() {
			names = append(names, e.GetName())
		}
		if resp.GetNextPageToken() == "" {
			return names, pages
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func checkNames(t *testing.T, names []string, n int) {
	t.Helper()
	if len(names) != n {
		t.Fatalf("%d names, want %d", len(names), n)
	}
	if !sort.StringsAreSorted(names) {
		t.Error("names are not sorted")
	}
	for i, name := range names {
		if want := fmt.Sprintf("f%06d", i); name != want {
			t.Fatalf("name %d = %q, want %q (missing or duplicate)", i, name, want)
		}
	}
}

// TestListFilesPages: a directory of 30,000 entries, listed locally and through another agent
// (FTP), comes back whole, sorted, without duplicates, in pages no larger than page_size, with
// the maximum page size when none is asked for; a token of another URL and a negative page
// size are refused.
func TestListFilesPages(t *testing.T) {
	a, b := testagent.Start(t), testagent.Start(t)
	const n = 30000
	makeFiles(t, filepath.Join(b.Root, "big"), n)

	names, pages := allFiles(t, b.Client, "big", 0)
	checkNames(t, names, n)
	if want := (n + server.MaxFilesPageSize - 1) / server.MaxFilesPageSize; pages != want {
		t.Errorf("local, default page size: %d pages, want %d", pages, want)
	}
	names, pages = allFiles(t, b.Client, "big/", 7000)
	checkNames(t, names, n)
	if pages != 5 {
		t.Errorf("local, page_size 7000: %d pages, want 5", pages)
	}
	names, pages = allFiles(t, a.Client, b.URL("big"), 0)
	checkNames(t, names, n)
	if pages != 3 {
		t.Errorf("agent://, default page size: %d pages, want 3", pages)
	}

	ctx := context.Background()
	first, err := b.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: "big", PageSize: 10})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v %v", first, err)
	}
	// Entries removed before the cursor do not shift the next page.
	for i := range 5 {
		os.Remove(filepath.Join(b.Root, "big", fmt.Sprintf("f%06d", i)))
	}
	next, err := b.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: "big", PageSize: 10, PageToken: first.GetNextPageToken()})
	if err != nil || next.GetEntries()[0].GetName() != "f000010" {
		t.Errorf("page after removals: %v %v", next.GetEntries()[:1], err)
	}
	_, err = b.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: "big/..", PageToken: first.GetNextPageToken()})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "page_token: ") {
		t.Errorf("token of another URL: %v", err)
	}
	_, err = b.Client.ListFiles(ctx, &ferryv1.ListFilesRequest{Url: "big", PageSize: -1})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "page_size: ") {
		t.Errorf("negative page size: %v", err)
	}
}

// TestListTransfersPages: after a flood of 5,500 transfers with long (1.5 KB) URLs, more than
// one gRPC message of 4 MiB could carry, ListTransfers pages come back under the default client
// limit and together hold every transfer once, newest first; a page size is obeyed, and a
// token is bound to its states filter.
func TestListTransfersPages(t *testing.T) {
	const n = 5500
	a := testagent.Start(t, func(c *daemon.Config) {
		c.Keep = 6000
		c.Retries = -1
		c.MaxTransfers = 64
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	long := strings.Repeat("d", 1500)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				_, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{
					Source:      fmt.Sprintf("ftp://127.0.0.1:1/%s/f%d", long, i),
					Destination: fmt.Sprintf("out/f%d", i),
					Mode:        ferryv1.TransferMode_TRANSFER_MODE_PASSIVE,
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("StartTransfer: %v", err)
	}

	list := func(size int32, states ...ferryv1.TransferState) (ids []string, pages, total int) {
		req := &ferryv1.ListTransfersRequest{PageSize: size, States: states}
		var last time.Time
		for {
			resp, err := a.Client.ListTransfers(ctx, req)
			if err != nil {
				t.Fatalf("ListTransfers page %d: %v", pages+1, err)
			}
			pages++
			total += proto.Size(resp)
			if size > 0 && len(resp.GetTransfers()) > int(size) {
				t.Errorf("page %d: %d transfers, page_size %d", pages, len(resp.GetTransfers()), size)
			}
			for _, tr := range resp.GetTransfers() {
				c := tr.GetCreatedAt().AsTime()
				if !last.IsZero() && c.After(last) {
					t.Fatalf("not newest first: %v after %v", c, last)
				}
				last = c
				ids = append(ids, tr.GetId())
			}
			if resp.GetNextPageToken() == "" {
				return ids, pages, total
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	ids, pages, total := list(0)
	if total <= 4<<20 {
		t.Errorf("the listing is %d bytes: the test should need more than one 4 MiB message", total)
	}
	unique := map[string]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	if len(ids) != n || len(unique) != n {
		t.Fatalf("%d transfers listed (%d distinct), want %d", len(ids), len(unique), n)
	}
	t.Logf("%d transfers, %d bytes, in %d pages", n, total, pages)

	ids2, pages2, _ := list(500)
	if len(ids2) != n || pages2 != n/500 {
		t.Errorf("page_size 500: %d transfers in %d pages", len(ids2), pages2)
	}

	first, err := a.Client.ListTransfers(ctx, &ferryv1.ListTransfersRequest{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Client.ListTransfers(ctx, &ferryv1.ListTransfersRequest{PageSize: 3, PageToken: first.GetNextPageToken(),
		States: []ferryv1.TransferState{ferryv1.TransferState_TRANSFER_STATE_FAILED}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "page_token: ") {
		t.Errorf("token with other states: %v", err)
	}
}
