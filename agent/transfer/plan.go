package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
)

// Options select and compare the files of a transfer (ferryctl copy and sync). The zero value
// moves everything, as a plain copy does.
type Options struct {
	// Include: only files matching one of these globs move; Exclude: files matching one of
	// these do not (and sync --delete keeps them). A glob without "/" matches a file's name or
	// the name of any directory above it; one with "/" matches the path relative to the source
	// (or one of its parent directories).
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	// NoClobber skips every file that exists at the destination.
	NoClobber bool `json:"no_clobber,omitempty"`
	// Update skips files whose destination copy is newer than the source.
	Update bool `json:"update,omitempty"`
	// Sync moves only what differs: a file is skipped when the destination has the same size
	// and is not older than the source (Checksum: the same SHA-256).
	Sync     bool `json:"sync,omitempty"`
	Checksum bool `json:"checksum,omitempty"`
	// Delete (with Sync) removes destination files the source lacks.
	Delete bool `json:"delete,omitempty"`
	// DryRun plans only: Snapshot.Planned lists the actions; nothing changes anywhere.
	DryRun bool `json:"dry_run,omitempty"`
}

// Bounds of the options (the API edge checks them too, before logging).
const (
	MaxPatterns     = 32
	MaxPatternBytes = 1024
	// MaxPlanned bounds Snapshot.Planned (a dry run of a large tree lists the first ones).
	MaxPlanned = 1000
)

// Phases of a running job (Snapshot.Phase).
const (
	PhaseListing      = "listing"
	PhaseTransferring = "transferring"
	PhaseVerifying    = "verifying"
	PhaseDeleting     = "deleting"
)

// Action is one planned step: "copy", "skip" or "delete" of Path (relative to the source for
// copy and skip, to the destination for delete), with the reason.
type Action struct {
	Action string `json:"action"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

func (o Options) active() bool {
	return len(o.Include) > 0 || len(o.Exclude) > 0 || o.NoClobber || o.Update || o.Sync || o.Delete || o.DryRun
}

// compares reports whether the destination must be looked at.
func (o Options) compares() bool { return o.NoClobber || o.Update || o.Sync || o.Delete || o.DryRun }

func (o Options) validate() error {
	for _, f := range []struct {
		name string
		pats []string
	}{{"options.include", o.Include}, {"options.exclude", o.Exclude}} {
		if len(f.pats) > MaxPatterns {
			return invalid(f.name, fmt.Sprintf("%d globs; at most %d", len(f.pats), MaxPatterns))
		}
		for _, p := range f.pats {
			if p == "" || len(p) > MaxPatternBytes {
				return invalid(f.name, fmt.Sprintf("a glob must be 1 to %d bytes", MaxPatternBytes))
			}
			if _, err := path.Match(p, ""); err != nil {
				return invalid(f.name, fmt.Sprintf("%q is not a valid glob (* ? [a-z] and \\ escapes)", p))
			}
		}
	}
	switch {
	case o.Checksum && !o.Sync:
		return invalid("options.checksum", "compares files only with sync")
	case o.Delete && !o.Sync:
		return invalid("options.delete", "removes files only with sync (copy never deletes)")
	case o.NoClobber && o.Update:
		return invalid("options.update", "cannot be combined with no_clobber (which skips every existing file)")
	}
	return nil
}

// hasGlob reports whether the last element of p is a glob ("media/*.jpg"): the source is then
// the matching entries of its directory.
func hasGlob(p string) bool { return strings.ContainsAny(path.Base(p), "*?[") }

// checkGlob refuses a glob that is malformed or sits above the last element.
func checkGlob(field, p string) error {
	if strings.ContainsAny(path.Dir(p), "*?[") {
		return invalid(field, "a glob is allowed in the last path element only (dir/*.jpg)")
	}
	if _, err := path.Match(path.Base(p), ""); err != nil {
		return invalid(field, fmt.Sprintf("%q is not a valid glob", path.Base(p)))
	}
	return nil
}

// matchAny tells whether one of pats matches rel (a slash-separated relative path) or one of
// its parent directories: a glob without "/" against each element's name, one with "/" against
// rel and its parents.
func matchAny(pats []string, rel string) bool {
	for _, p := range pats {
		if strings.Contains(strings.Trim(p, "/"), "/") {
			p = strings.Trim(p, "/")
			for q := rel; q != "." && q != "" && q != "/"; q = path.Dir(q) {
				if ok, _ := path.Match(p, q); ok {
					return true
				}
			}
			continue
		}
		p = strings.Trim(p, "/")
		for _, el := range strings.Split(rel, "/") {
			if ok, _ := path.Match(p, el); ok {
				return true
			}
		}
	}
	return false
}

// wanted applies the include and exclude filters to rel.
func (o Options) wanted(rel string) bool {
	if len(o.Include) > 0 && !matchAny(o.Include, rel) {
		return false
	}
	return !matchAny(o.Exclude, rel)
}

// destFile is what the destination holds at a relative path.
type destFile struct {
	size  int64
	mtime time.Time
}

// sides are the operations the selection needs on both ends of a transfer, rel being a path
// relative to the source root and to the destination's final path ("" for a single file).
type sides struct {
	index     func() (map[string]destFile, []string, error) // destination files and directories
	localSum  func(rel string) (string, error)              // SHA-256 of the local side's file
	remoteSum func(rel string, size int64) (string, error)  // the server's SHA-256 of its side
	remove    func(rel string) error                        // remove a destination file
	removeDir func(rel string) error                        // remove an empty destination directory (nil: cannot)
}

// selection is what the options make of a walked tree: the files to move, and what to do
// once they moved (delete what the source lacks). done: a dry run, nothing more to do.
type selection struct {
	tree  tree
	done  bool
	after func() error
}

func noAfter() error { return nil }

// selectTree is the step between walking the source and moving it: filters and the source
// glob choose files, the destination is compared (no-clobber, update, sync), and deletions
// are planned. name is the source's own name, matched by the filters for a single file (rel "").
func (j *job) selectTree(t tree, glob, name string, sd sides) (selection, error) {
	o := j.spec.Options
	if !o.active() && glob == "" {
		return selection{tree: t, after: noAfter}, nil
	}
	j.update(func(s *Snapshot) { s.Phase = PhaseListing })
	relName := func(rel string) string {
		if rel == "" {
			return name
		}
		return rel
	}
	inGlob := func(rel string) bool {
		if glob == "" {
			return true
		}
		ok, _ := path.Match(glob, strings.SplitN(rel, "/", 2)[0])
		return ok
	}
	var index map[string]destFile
	var dstDirs []string
	if o.compares() {
		var err error
		if index, dstDirs, err = sd.index(); err != nil {
			return selection{}, fmt.Errorf("destination: %w", err)
		}
	}
	var planned []Action
	var omitted, skipped int64
	record := func(a Action) {
		if !o.DryRun {
			return
		}
		if len(planned) < MaxPlanned {
			planned = append(planned, a)
		} else {
			omitted++
		}
	}
	out := tree{}
	srcFiles := make(map[string]bool, len(t.files))
	keepDir := map[string]bool{}
	for _, f := range t.files {
		srcFiles[f.rel] = true
		if !inGlob(relName(f.rel)) || !o.wanted(relName(f.rel)) {
			continue
		}
		move, reason, err := j.decide(f, index, sd)
		if err != nil {
			return selection{}, err
		}
		if !move {
			skipped++
			record(Action{Action: "skip", Path: relName(f.rel), Size: f.size, Reason: reason})
			continue
		}
		record(Action{Action: "copy", Path: relName(f.rel), Size: f.size, Reason: reason})
		out.files = append(out.files, f)
		out.bytes += f.size
		for d := path.Dir(f.rel); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			keepDir[d] = true
		}
	}
	for _, d := range t.dirs {
		// Without include filters a selected empty directory is created too; with them only
		// the directories of selected files.
		if keepDir[d] || (len(o.Include) == 0 && inGlob(d) && o.wanted(d)) {
			out.dirs = append(out.dirs, d)
		}
	}
	// Deletions: destination files the source lacks, that the filters select.
	var dels []string
	if o.Delete {
		for rel := range index {
			if rel == "" || srcFiles[rel] || !inGlob(rel) || !o.wanted(rel) {
				continue
			}
			dels = append(dels, rel)
		}
		sort.Strings(dels)
		for _, rel := range dels {
			record(Action{Action: "delete", Path: rel, Size: index[rel].size, Reason: "not in source"})
		}
	}
	j.update(func(s *Snapshot) {
		s.Phase = PhaseTransferring
		s.FilesSkipped = skipped
		if o.DryRun {
			s.Planned, s.PlannedOmitted, s.FilesDeleted = planned, omitted, int64(len(dels))
		}
	})
	if o.DryRun {
		return selection{tree: out, done: true}, nil
	}
	after := func() error {
		if len(dels) == 0 {
			return nil
		}
		j.update(func(s *Snapshot) { s.Phase = PhaseDeleting })
		for _, rel := range dels {
			if err := sd.remove(rel); err != nil {
				return fmt.Errorf("delete %s: %w", rel, err)
			}
			j.update(func(s *Snapshot) { s.FilesDeleted++ })
		}
		j.removeEmptyDirs(t, dstDirs, sd)
		return nil
	}
	return selection{tree: out, after: after}, nil
}

// removeEmptyDirs removes, deepest first, destination directories the source lacks and that
// sync --delete emptied (best effort: one that still holds files stays).
func (j *job) removeEmptyDirs(t tree, dstDirs []string, sd sides) {
	if sd.removeDir == nil {
		return
	}
	src := make(map[string]bool, len(t.dirs))
	for _, d := range t.dirs {
		src[d] = true
	}
	sort.Slice(dstDirs, func(a, b int) bool { return len(dstDirs[a]) > len(dstDirs[b]) })
	for _, d := range dstDirs {
		if !src[d] && j.spec.Options.wanted(d) {
			_ = sd.removeDir(d)
		}
	}
}

// decide tells whether source file f moves, and why, given what the destination holds.
func (j *job) decide(f treeFile, index map[string]destFile, sd sides) (bool, string, error) {
	o := j.spec.Options
	d, exists := index[f.rel]
	switch {
	case !exists:
		return true, "new", nil
	case o.NoClobber:
		return false, "exists", nil
	case o.Update && newer(d.mtime, f.mtime):
		return false, "destination newer", nil
	case !o.Sync:
		return true, "overwrite", nil
	case d.size != f.size:
		return true, "size differs", nil
	case o.Checksum:
		local, err := sd.localSum(f.rel)
		if err != nil {
			return false, "", err
		}
		remote, err := sd.remoteSum(f.rel, f.size)
		if err != nil {
			return false, "", err
		}
		if local != remote {
			return true, "checksum differs", nil
		}
		return false, "unchanged", nil
	case newer(f.mtime, d.mtime):
		return true, "source newer", nil
	}
	return false, "unchanged", nil
}

// newer reports whether a is later than b at the precision both have: FTP listings give
// seconds (MLSD) or minutes (LIST, for recent files), so a time with no seconds is compared
// by the minute.
func newer(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return false
	}
	prec := time.Second
	if coarse(a) || coarse(b) {
		prec = time.Minute
	}
	return a.Truncate(prec).After(b.Truncate(prec))
}

func coarse(t time.Time) bool { return t.Second() == 0 && t.Nanosecond() == 0 }

// localSides is the selection's view of a download: the destination is final under the local
// root; the source is remote under from.
func (j *job) downloadSides(c Session, from, final string) sides {
	return sides{
		index: func() (map[string]destFile, []string, error) { return j.localIndex(final) },
		localSum: func(rel string) (string, error) {
			return j.localSHA256(path.Join(final, rel))
		},
		remoteSum: func(rel string, size int64) (string, error) {
			return j.serverSum(c, path.Join(from, rel), size)
		},
		remove:    func(rel string) error { return j.m.root.Remove(path.Join(final, rel)) },
		removeDir: func(rel string) error { return j.m.root.Remove(path.Join(final, rel)) },
	}
}

// uploadSides is the selection's view of an upload: the source is local under from, the
// destination remote at final. Directories on the server are not removed (the session has no
// RMD); files are.
func (j *job) uploadSides(c Session, from, final string) sides {
	return sides{
		index: func() (map[string]destFile, []string, error) { return j.remoteIndex(c, final) },
		localSum: func(rel string) (string, error) {
			return j.localSHA256(path.Join(from, rel))
		},
		remoteSum: func(rel string, size int64) (string, error) {
			return j.serverSum(c, path.Join(final, rel), size)
		},
		remove: func(rel string) error { return c.Delete(j.ctx, path.Join(final, rel)) },
	}
}

func (j *job) serverSum(c Session, p string, size int64) (string, error) {
	sum, err := c.HashSize(j.ctx, p, size)
	if errors.Is(err, ftpclient.ErrUnsupported) {
		return "", fmt.Errorf("--checksum: the server has no HASH command, so %s cannot be compared (sync without --checksum compares size and time): %w", p, err)
	}
	if err != nil {
		return "", fmt.Errorf("checksum of %s: %w", p, err)
	}
	return sum, nil
}

func (j *job) localSHA256(p string) (string, error) {
	f, err := j.m.root.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := datapath.HashFile(h, f, 0, -1); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// localIndex lists what final (a local file or directory) holds: files by relative path ("" for
// final itself when it is a file) and directories. Part files are not listed.
func (j *job) localIndex(final string) (map[string]destFile, []string, error) {
	idx := map[string]destFile{}
	fi, err := j.m.root.Stat(final)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		idx[""] = destFile{size: fi.Size(), mtime: fi.ModTime()}
		return idx, nil, nil
	}
	var dirs []string
	err = fs.WalkDir(j.m.root.FS(), final, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == final {
			return nil
		}
		if len(idx)+len(dirs) >= maxTreeEntries {
			return fmt.Errorf("more than %d files and directories", maxTreeEntries)
		}
		rel := strings.TrimPrefix(p, final+"/")
		if final == "." {
			rel = p
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, rel)
		case d.Type().IsRegular() && !storage.IsPart(d.Name()):
			fi, err := d.Info()
			if err != nil {
				return err
			}
			idx[rel] = destFile{size: fi.Size(), mtime: fi.ModTime()}
		}
		return nil
	})
	return idx, dirs, err
}

// remoteIndex is localIndex on the server.
func (j *job) remoteIndex(c Session, final string) (map[string]destFile, []string, error) {
	idx := map[string]destFile{}
	st, err := c.Stat(j.ctx, final)
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return idx, nil, nil
		}
		return nil, nil, err
	}
	if !st.IsDir {
		idx[""] = destFile{size: st.Size, mtime: st.ModTime}
		return idx, nil, nil
	}
	t, err := j.listTree(c, final) // one XTREE LIST from an agent, not one MLSD per directory
	if err != nil {
		return nil, nil, err
	}
	for _, f := range t.files {
		idx[f.rel] = destFile{size: f.size, mtime: f.mtime}
	}
	return idx, t.dirs, nil
}

// singleTree is a one-file tree for the selection (rel "").
func singleTree(size int64, mtime time.Time) tree {
	return tree{files: []treeFile{{rel: "", size: size, mtime: mtime}}, bytes: size}
}

// sourceRoot splits a source path with a glob into the directory walked and the glob ("" when
// the path has none).
func sourceRoot(e Endpoint) (root, glob string) {
	if hasGlob(e.Path) {
		return path.Dir(e.Path), path.Base(e.Path)
	}
	return e.Path, ""
}

// verifyNote is why a succeeded transfer is not verified, "" when it is (or moved nothing).
func (j *job) verifyNote(s *Snapshot) string {
	switch {
	case s.Verified || s.Options.DryRun || s.FilesTotal == 0:
		return ""
	case j.noHash.Load():
		return "not verified (server has no HASH)"
	case j.hashFailed.Load():
		return "not verified (the server's HASH failed)"
	}
	return ""
}

// planOptions checks a spec's options and endpoints as the options see them: a URL without a
// path is refused (it used to mean the whole remote root, landing where a file was meant), a
// glob sits in the source's last element only.
func planOptions(spec Spec, src, dst Endpoint) error {
	if err := spec.Options.validate(); err != nil {
		return err
	}
	for _, e := range []struct {
		field string
		ep    Endpoint
	}{{"source", src}, {"destination", dst}} {
		if e.ep.Kind == KindLocal {
			continue
		}
		if u, err := url.Parse(e.ep.raw); err == nil && u.Path == "" {
			root := "the root"
			if e.ep.Kind == KindFTP {
				root = "the login directory"
			}
			return invalid(e.field, fmt.Sprintf("%s has no path; name the file or directory (%s/ means %s)", e.ep, e.ep, root))
		}
	}
	if hasGlob(dst.Path) && dst.Kind == KindLocal {
		return invalid("destination", "globs are allowed in the source only")
	}
	if hasGlob(src.Path) {
		return checkGlob("source", src.Path)
	}
	return nil
}

// grantPath is the path a peer agent grants access to for p: a glob's directory.
func grantPath(p string) string {
	if hasGlob(p) {
		return path.Dir(p)
	}
	return p
}

// partRE matches a part file's name (storage.PartName: ".name.<8 hex>.ferry-part").
var partRE = regexp.MustCompile(`(^|[/\s"'])\.([^/]+?)\.[0-9a-f]{8}\` + storage.PartSuffix)

// userNames replaces part file names in an error message with the names of the files they
// become: users never see the hidden names.
func userNames(msg string) string { return partRE.ReplaceAllString(msg, "$1$2") }

// publishVerifyFrom is the file size from which entering the verifying phase is published at
// once: the server takes a while to hash such a file, and watchers should see why the bytes
// stopped. Smaller files wait for the next tick (a tree of many must not flood watchers).
const publishVerifyFrom = 16 << 20

func (j *job) enterVerify(size int64) {
	j.update(func(s *Snapshot) { s.Phase = PhaseVerifying })
	if size >= publishVerifyFrom {
		j.mu.Lock()
		j.publishLocked()
		j.mu.Unlock()
	}
}

// leaveVerify goes back to the transferring phase: the check ended, or the transfer failed
// while its final reply was awaited.
func (j *job) leaveVerify() { j.update(func(s *Snapshot) { s.Phase = PhaseTransferring }) }
