package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// oddTree writes a tree with nested and empty directories, empty files and odd names, and
// returns each file's SHA-256 by relative path.
func oddTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]int{
		"a.bin":                    70 << 10,
		"empty":                    0,
		"sub/deeper/deepest/x.txt": 5,
		"sub/with space.txt":       100,
		"sub/ünïcødé 名前.bin":       3000,
		"sub/quote\"and'apos":      1,
		"-dash":                    2,
		"100%":                     3,
		"line\nbreak":              4,
		"tab\there":                5,
	}
	want := map[string]string{}
	for rel, n := range files {
		want[rel] = writeRandom(t, filepath.Join(dir, rel), int64(n))
	}
	for _, d := range []string{"emptydir", "sub/empty too"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// sameTree checks that dir holds exactly want's files (and the two empty directories).
func sameTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = fileSHA(t, p)
		return nil
	})
	for rel, sum := range want {
		if got[rel] != sum {
			t.Errorf("%q: sha256 %q, want %s", rel, got[rel], sum)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("unexpected file %q", rel)
		}
	}
	for _, d := range []string{"emptydir", "sub/empty too"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("empty directory %q not copied: %v", d, err)
		}
	}
}

// TestTreeStreamBetweenAgents: a tree with nested and empty directories, empty files and odd
// names moves intact between agents through the tree stream, down and up.
func TestTreeStreamBetweenAgents(t *testing.T) {
	t.Parallel()
	a, b := testagent.Start(t), testagent.Start(t)
	want := oddTree(t, filepath.Join(b.Root, "tree"))
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			seen := run(t, a, b.URL("tree"), "dl-"+m.name, m.mode)
			last := seen[len(seen)-1]
			if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || !last.GetVerified() || last.GetProgress().GetFilesDone() != int64(len(want)) {
				t.Fatalf("download: %v %s verified=%v files=%d", last.GetState(), last.GetError(), last.GetVerified(), last.GetProgress().GetFilesDone())
			}
			sameTree(t, filepath.Join(a.Root, "dl-"+m.name), want)
			seen = run(t, a, "dl-"+m.name, b.URL("up-"+m.name+"/"), m.mode)
			last = seen[len(seen)-1]
			if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || !last.GetVerified() {
				t.Fatalf("upload: %v %s verified=%v", last.GetState(), last.GetError(), last.GetVerified())
			}
			sameTree(t, filepath.Join(b.Root, "up-"+m.name, "dl-"+m.name), want)
			noParts(t, a.Root)
			noParts(t, b.Root)
		})
	}
}

// TestTreeStreamProtocol drives XTREE with the FTP client: the agent offers it in FEAT, sends a
// tree as one stream, and refuses it without a login.
func TestTreeStreamProtocol(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	oddTree(t, filepath.Join(b.Root, "tree"))
	ctx := context.Background()
	c, err := ftpclient.Dial(ctx, ftpclient.Config{Addr: b.FTP, User: testagent.User, Password: testagent.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.HasTree() {
		t.Fatalf("FEAT does not offer XTREE: %v", c.Features())
	}
	r, err := c.TreeRetr(ctx, "tree")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(body), "FERRY-TREE 1 10 ") || !strings.Contains(string(body), "\nE 10 ") {
		t.Errorf("stream does not announce and end with 10 files:\n%.200q", body)
	}
}

// hostileSend writes a tree stream by hand (one file at path rel) through XTREE STOR into dir
// and returns the server's verdict.
func hostileSend(t *testing.T, c *ftpclient.Client, dir, rel string, data []byte, sum string) error {
	t.Helper()
	w, err := c.TreeStor(context.Background(), dir)
	if err != nil {
		return err
	}
	if sum == "" {
		s := sha256.Sum256(data)
		sum = hex.EncodeToString(s[:])
	}
	fmt.Fprintf(w, "FERRY-TREE 1 1 %d\nF %d 644 0 %s\n", len(data), len(data), strconv.Quote(rel))
	w.Write(data)
	fmt.Fprintf(w, "%s\nE 1 %d\n", sum, len(data))
	return w.Close()
}

// TestTreeStreamRefusesHostileRecords: a sender with a write grant for up/in cannot place a
// file outside it (.., absolute, a part-file name), nor have a file with a wrong SHA-256
// published; a good record in the same session works.
func TestTreeStreamRefusesHostileRecords(t *testing.T) {
	t.Parallel()
	b := testagent.Start(t)
	if err := os.MkdirAll(filepath.Join(b.Root, "up/in"), 0o755); err != nil {
		t.Fatal(err)
	}
	peer := ferryv1.NewAgentServiceClient(testagent.Dial(t, b.GRPC, testagent.PeerToken))
	ctx := context.Background()
	g, err := peer.GrantAccess(ctx, &ferryv1.GrantAccessRequest{Path: "up/in", Access: ferryv1.Access_ACCESS_WRITE})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ftpclient.Dial(ctx, ftpclient.Config{Addr: b.FTP, User: g.GetUser(), Password: g.GetPassword()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct{ rel, sum, why string }{
		{"../evil", "", "escapes"},
		{"a/../../evil", "", "escapes"},
		{"/evil", "", "refused"},
		{"ok/./x", "", "escapes"},
		{".x.ferry-part", "", "refused"},
		{"bad-sum", strings.Repeat("0", 64), "sha256 mismatch"},
	} {
		err := hostileSend(t, c, "up/in", tc.rel, []byte("evil"), tc.sum)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("record %q: %v, want a refusal saying %q", tc.rel, err, tc.why)
		}
	}
	// A scope is a scope: the stream itself cannot target the parent.
	if err := hostileSend(t, c, "up", "evil", []byte("evil"), ""); err == nil {
		t.Errorf("XTREE STOR up with a grant for up/in: accepted")
	}
	var found []string
	filepath.WalkDir(b.Root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("files written by hostile records: %q", found)
	}
	if err := hostileSend(t, c, "up/in", "good/file.txt", []byte("good"), ""); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(b.Root, "up/in/good/file.txt")); err != nil || string(b) != "good" {
		t.Errorf("good record: %q, %v", b, err)
	}
}
