package main

// The copy and sync options, driven through the built ferryctl against real agents (API
// authentication on) and vsftpd: what moves, what is skipped, what is deleted, and that a dry
// run changes nothing.

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// listTree maps every regular file under dir (relative, slash-separated) to its SHA-256;
// part files count too, so a leftover shows.
func listTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = fileSHA(t, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// result runs ferryctl with -o json and returns the final transfer (exit code checked).
func finalOf(t *testing.T, code int, args ...string) *ferryv1.Transfer {
	t.Helper()
	r := ferryctl(t, append(args, "-o", "json")...)
	wantCode(t, r, code)
	_, ts := parseEvents(t, r)
	return ts[len(ts)-1]
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !equalMaps(got, want) {
		t.Errorf("%s: files %v, want %v", what, keys(got), keys(want))
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s differs", what, k)
			}
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// makeSyncTree writes a small tree with files in subdirectories.
func makeSyncTree(t *testing.T, dir string) map[string]string {
	want := map[string]string{}
	for i, name := range []string{"a.txt", "b.bin", "sub/c.txt", "sub/deep/d.jpg", "media/e.jpg"} {
		want[name] = writeFile(t, dir, name, 1000*(i+1))
	}
	return want
}

func TestSyncBetweenAgents(t *testing.T) {
	a, b := newPair(t)
	for _, mode := range []string{"passive", "active"} {
		t.Run(mode, func(t *testing.T) {
			want := makeSyncTree(t, filepath.Join(b.Root, mode))
			dst := filepath.Join(a.Root, "mirror", mode)
			first := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL(mode+"/"), "mirror/"+mode, "--mode", mode)
			if got := first.GetProgress().GetFilesDone(); got != int64(len(want)) {
				t.Errorf("first sync moved %d files, want %d", got, len(want))
			}
			sameTree(t, "after the first sync", listTree(t, dst), want)
			second := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL(mode+"/"), "mirror/"+mode, "--mode", mode)
			if got := second.GetProgress().GetFilesDone(); got != 0 {
				t.Errorf("second sync moved %d files, want 0", got)
			}
			if got := second.GetFilesSkipped(); got != int64(len(want)) {
				t.Errorf("second sync skipped %d files, want %d", got, len(want))
			}
			// A changed source file (other size) moves again, alone.
			want = maps(want)
			want["sub/c.txt"] = writeFile(t, filepath.Join(b.Root, mode), "sub/c.txt", 777)
			third := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL(mode+"/"), "mirror/"+mode, "--mode", mode)
			if got := third.GetProgress().GetFilesDone(); got != 1 {
				t.Errorf("sync after one change moved %d files, want 1", got)
			}
			sameTree(t, "after a change", listTree(t, dst), want)
		})
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestSyncDeleteAndDryRun(t *testing.T) {
	a, b := newPair(t)
	want := makeSyncTree(t, filepath.Join(b.Root, "tree"))
	dst := filepath.Join(a.Root, "m")
	wantCode(t, ferryctl(t, "--agent", a.GRPC, "sync", b.URL("tree/"), "m"), 0)
	// Extra files at the destination: two the source lacks, one the filters protect.
	writeFile(t, dst, "extra.txt", 10)
	writeFile(t, dst, "old/gone.bin", 20)
	keep := writeFile(t, dst, "notes.keep", 30)
	// A source change the dry run must not carry over.
	changed := writeFile(t, filepath.Join(b.Root, "tree"), "a.txt", 4321)
	before := listTree(t, dst)

	dry := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL("tree/"), "m", "--delete", "--exclude", "*.keep", "--dry-run")
	sameTree(t, "after --dry-run", listTree(t, dst), before)
	var planned []string
	for _, p := range dry.GetPlanned() {
		planned = append(planned, p.GetAction()+" "+p.GetPath())
	}
	for _, w := range []string{"copy a.txt", "delete extra.txt", "delete old/gone.bin", "skip b.bin"} {
		if !slices.Contains(planned, w) {
			t.Errorf("dry run planned %q, want it to hold %q", planned, w)
		}
	}
	if slices.ContainsFunc(planned, func(s string) bool { return strings.Contains(s, "notes.keep") }) {
		t.Errorf("dry run plans to touch the excluded notes.keep: %q", planned)
	}
	if dry.GetFilesDeleted() != 2 || dry.GetProgress().GetFilesDone() != 0 {
		t.Errorf("dry run: files_deleted %d, files_done %d; want 2 planned, 0 done", dry.GetFilesDeleted(), dry.GetProgress().GetFilesDone())
	}
	text := ferryctl(t, "--agent", a.GRPC, "sync", b.URL("tree/"), "m", "--delete", "--exclude", "*.keep", "--dry-run")
	wantCode(t, text, 0)
	if !strings.Contains(text.stdout, "dry run: 1 to copy") || !strings.Contains(text.stdout, "2 to delete; nothing changed") {
		t.Errorf("dry run text output lacks its summary:\n%s", text.stdout)
	}

	// The real run deletes exactly the two extra files (and the emptied directory).
	real := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL("tree/"), "m", "--delete", "--exclude", "*.keep")
	want = maps(want)
	want["a.txt"] = changed
	want["notes.keep"] = keep
	sameTree(t, "after --delete", listTree(t, dst), want)
	if real.GetFilesDeleted() != 2 || real.GetProgress().GetFilesDone() != 1 {
		t.Errorf("sync --delete: files_deleted %d, files_done %d; want 2 and 1", real.GetFilesDeleted(), real.GetProgress().GetFilesDone())
	}
	if _, err := os.Stat(filepath.Join(dst, "old")); !os.IsNotExist(err) {
		t.Errorf("the directory the source lacks is still there: %v", err)
	}
	again := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL("tree/"), "m", "--delete", "--exclude", "*.keep")
	if again.GetProgress().GetFilesDone() != 0 || again.GetFilesDeleted() != 0 {
		t.Errorf("a second sync --delete moved %d and deleted %d, want 0 and 0", again.GetProgress().GetFilesDone(), again.GetFilesDeleted())
	}
	// --checksum between agents (HASH on both): nothing differs, nothing moves.
	sum := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL("tree/"), "m", "--checksum", "--exclude", "*.keep")
	if sum.GetProgress().GetFilesDone() != 0 || sum.GetFilesSkipped() != int64(len(want)-1) {
		t.Errorf("sync --checksum: moved %d, skipped %d; want 0 and %d", sum.GetProgress().GetFilesDone(), sum.GetFilesSkipped(), len(want)-1)
	}
}

func TestCopyFiltersGlobsNoClobber(t *testing.T) {
	a, b := newPair(t)
	want := makeSyncTree(t, filepath.Join(b.Root, "tree"))
	writeFile(t, filepath.Join(b.Root, "tree"), "media/f.png", 50)

	// A glob in the source path: the matching entries of its directory, into DST.
	wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("tree/media/*.jpg"), "photos/"), 0)
	sameTree(t, "glob", listTree(t, filepath.Join(a.Root, "photos")), map[string]string{"e.jpg": want["media/e.jpg"]})

	// --include/--exclude on a tree.
	wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("tree/"), "txt/", "--include", "*.txt", "--exclude", "deep"), 0)
	sameTree(t, "--include *.txt", listTree(t, filepath.Join(a.Root, "txt")), map[string]string{"a.txt": want["a.txt"], "sub/c.txt": want["sub/c.txt"]})
	wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("tree/"), "nojpg/", "--exclude", "*.jpg", "--exclude", "sub/deep"), 0)
	sameTree(t, "--exclude", listTree(t, filepath.Join(a.Root, "nojpg")), map[string]string{"a.txt": want["a.txt"], "b.bin": want["b.bin"], "sub/c.txt": want["sub/c.txt"], "media/f.png": fileSHA(t, filepath.Join(b.Root, "tree/media/f.png"))})

	// --no-clobber keeps the existing file, and says so.
	precious := writeFile(t, a.Root, "in/precious.txt", 99)
	writeFile(t, b.Root, "precious.txt", 500)
	tr := finalOf(t, 0, "--agent", a.GRPC, "copy", b.URL("precious.txt"), "in/precious.txt", "--no-clobber")
	if got := fileSHA(t, filepath.Join(a.Root, "in/precious.txt")); got != precious {
		t.Errorf("--no-clobber overwrote in/precious.txt")
	}
	if tr.GetFilesSkipped() != 1 || tr.GetProgress().GetFilesDone() != 0 {
		t.Errorf("--no-clobber: skipped %d, done %d; want 1 and 0", tr.GetFilesSkipped(), tr.GetProgress().GetFilesDone())
	}
	// --update: the destination copy is newer, so it stays; an older one is replaced.
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(a.Root, "in/precious.txt"), future, future)
	wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("precious.txt"), "in/precious.txt", "--update"), 0)
	if got := fileSHA(t, filepath.Join(a.Root, "in/precious.txt")); got != precious {
		t.Errorf("--update replaced a newer destination file")
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(a.Root, "in/precious.txt"), past, past)
	wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("precious.txt"), "in/precious.txt", "--update"), 0)
	if got, want := fileSHA(t, filepath.Join(a.Root, "in/precious.txt")), fileSHA(t, filepath.Join(b.Root, "precious.txt")); got != want {
		t.Errorf("--update kept an older destination file")
	}
}

func TestTreeRuleIdempotent(t *testing.T) {
	a, b := newPair(t)
	want := makeSyncTree(t, filepath.Join(b.Root, "tree"))
	for run := 1; run <= 2; run++ {
		// "tree": the directory itself into ts/b, whether ts/b exists or not.
		wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("tree"), "ts/b"), 0)
		nested := map[string]string{}
		for k, v := range want {
			nested["tree/"+k] = v
		}
		sameTree(t, fmt.Sprintf("run %d of copy tree ts/b", run), listTree(t, filepath.Join(a.Root, "ts/b")), nested)
		// "tree/": its contents into ts/c.
		wantCode(t, ferryctl(t, "--agent", a.GRPC, "copy", b.URL("tree/"), "ts/c"), 0)
		sameTree(t, fmt.Sprintf("run %d of copy tree/ ts/c", run), listTree(t, filepath.Join(a.Root, "ts/c")), want)
		// Uploads follow the same rule.
		wantCode(t, ferryctl(t, "--agent", b.GRPC, "copy", "tree", a.URL("up/")), 0)
		sameTree(t, fmt.Sprintf("run %d of upload tree", run), listTree(t, filepath.Join(a.Root, "up")), nested)
	}
	// -q: nothing but errors; -v: the mode story and a line per file (on stderr).
	q := ferryctl(t, "--agent", a.GRPC, "-q", "copy", b.URL("tree/"), "q/")
	wantCode(t, q, 0)
	if q.stdout != "" || q.stderr != "" {
		t.Errorf("-q printed %q and %q", q.stdout, q.stderr)
	}
	v := ferryctl(t, "--agent", a.GRPC, "-v", "copy", b.URL("tree/"), "v/")
	wantCode(t, v, 0)
	if !strings.Contains(v.stderr, "mode: passive (auto: ") || !strings.Contains(v.stdout, "succeeded: ") {
		t.Errorf("-v should tell how the mode was chosen, on stderr: %q", v.stderr)
	}
}

func TestURLWithoutPathRefused(t *testing.T) {
	a, b := newPair(t)
	writeFile(t, b.Root, "x.bin", 10)
	for _, src := range []string{"agent://" + b.GRPC, "ftp://" + b.FTP} {
		r := ferryctl(t, "--agent", a.GRPC, "copy", src, "in/x.bin")
		wantCode(t, r, exitUsage)
		if !strings.Contains(r.stderr, "has no path") || !strings.Contains(r.stderr, "/ means") {
			t.Errorf("copy %s: stderr %q lacks the hint", src, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(a.Root, "in")); !os.IsNotExist(err) {
		t.Errorf("a refused copy created in/: %v", err)
	}
}

// TestSyncVsftpd: sync to and from a third-party FTP server (no HASH, LIST times by the minute).
func TestSyncVsftpd(t *testing.T) {
	v := testftp.StartVsftpd(t, testftp.Options{})
	a := testagent.Start(t)
	base := fmt.Sprintf("ftp://%s:%s@%s%s", url.PathEscape(v.User), url.PathEscape(v.Password), v.Addr, v.Pub)
	want := makeSyncTree(t, filepath.Join(a.Root, "out"))

	up := finalOf(t, 0, "--agent", a.GRPC, "sync", "out/", base+"/s/")
	if up.GetProgress().GetFilesDone() != int64(len(want)) {
		t.Errorf("first upload sync moved %d files, want %d", up.GetProgress().GetFilesDone(), len(want))
	}
	if up.GetVerifyNote() != "not verified (server has no HASH)" {
		t.Errorf("verify_note %q, want the missing HASH named", up.GetVerifyNote())
	}
	sameTree(t, "vsftpd after upload", listTree(t, v.Local(v.Pub+"/s")), want)
	again := finalOf(t, 0, "--agent", a.GRPC, "sync", "out/", base+"/s/")
	if again.GetProgress().GetFilesDone() != 0 {
		t.Errorf("second upload sync moved %d files, want 0", again.GetProgress().GetFilesDone())
	}
	r := ferryctl(t, "--agent", a.GRPC, "sync", "out/", base+"/s/")
	if !strings.Contains(r.stdout, "skipped=5") {
		t.Errorf("result line does not count the skipped files: %q", r.stdout)
	}

	// --delete on the FTP server: exactly the extra file goes.
	extra := v.Local(v.Pub + "/s/extra.txt")
	if err := os.WriteFile(extra, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	del := finalOf(t, 0, "--agent", a.GRPC, "sync", "out/", base+"/s/", "--delete")
	if del.GetFilesDeleted() != 1 {
		t.Errorf("--delete removed %d files, want 1", del.GetFilesDeleted())
	}
	sameTree(t, "vsftpd after --delete", listTree(t, v.Local(v.Pub+"/s")), want)

	// Download sync from vsftpd: a second run moves nothing; filters apply.
	down := finalOf(t, 0, "--agent", a.GRPC, "sync", base+"/s/", "back/", "--exclude", "*.jpg")
	wantDown := map[string]string{}
	for k, v := range want {
		if !strings.HasSuffix(k, ".jpg") {
			wantDown[k] = v
		}
	}
	sameTree(t, "download sync", listTree(t, filepath.Join(a.Root, "back")), wantDown)
	if down.GetProgress().GetFilesDone() != int64(len(wantDown)) {
		t.Errorf("download sync moved %d, want %d", down.GetProgress().GetFilesDone(), len(wantDown))
	}
	down2 := finalOf(t, 0, "--agent", a.GRPC, "sync", base+"/s/", "back/", "--exclude", "*.jpg")
	if down2.GetProgress().GetFilesDone() != 0 {
		t.Errorf("second download sync moved %d files, want 0", down2.GetProgress().GetFilesDone())
	}
	// --checksum needs HASH, which vsftpd lacks: refused with the reason, nothing moved.
	cs := ferryctl(t, "--agent", a.GRPC, "sync", base+"/s/", "back/", "--checksum")
	if cs.code == 0 || !strings.Contains(cs.stdout+cs.stderr, "no HASH") {
		t.Errorf("sync --checksum against vsftpd: want a failure naming the missing HASH\n%s", cs)
	}
}

// sync takes copy's --limit-rate and --streams and hands them to the transfer.
func TestSyncLimitRateStreams(t *testing.T) {
	a, b := newPair(t)
	want := makeSyncTree(t, filepath.Join(b.Root, "tree"))
	tr := finalOf(t, 0, "--agent", a.GRPC, "sync", b.URL("tree/"), "lim", "--limit-rate", "2M", "--streams", "2")
	if got := tr.GetLimitRate(); got != 2<<20 {
		t.Errorf("limit_rate %d, want %d (--limit-rate 2M)", got, 2<<20)
	}
	sameTree(t, "sync --limit-rate", listTree(t, filepath.Join(a.Root, "lim")), want)
	// A bad rate is a usage error naming the flag; an out-of-range --streams reaches the agent,
	// which names the field.
	bad := ferryctl(t, "--agent", a.GRPC, "sync", b.URL("tree/"), "lim", "--limit-rate", "fast")
	wantCode(t, bad, exitUsage)
	if !strings.Contains(bad.stderr, "--limit-rate") {
		t.Errorf("bad --limit-rate: %q does not name the flag", bad.stderr)
	}
	many := ferryctl(t, "--agent", a.GRPC, "sync", b.URL("tree/"), "lim", "--streams", "99")
	wantCode(t, many, exitUsage)
	if !strings.Contains(many.stderr, "streams") {
		t.Errorf("--streams 99: %q does not name streams", many.stderr)
	}
}
