package transfer

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"sync"
	"time"
)

// ListFilesPage lists like ListFiles, one page at a time: entries sorted by name (byte
// order), only those whose names sort after after, at most limit of them (limit > 0); more
// tells whether others follow. Paging by the last name, not by position, keeps pages right
// when entries come or go between calls. A local directory's names are read for each page,
// but only the page's entries are stat'ed; a remote directory is listed for the first page
// (after == "") and the next pages come from that listing for up to listCacheTTL.
func (m *Manager) ListFilesPage(ctx context.Context, target string, mode Mode, after string, limit int) (entries []Entry, more bool, err error) {
	if limit <= 0 {
		return nil, false, invalid("page_size", "must be positive")
	}
	e, err := ParseEndpoint("url", target)
	if err != nil {
		return nil, false, err
	}
	if e.Kind == KindLocal {
		return m.listLocalPage(e.Path, after, limit)
	}
	all, ok := m.listings.get(target, mode, after)
	if !ok {
		all, err = m.ListFiles(ctx, target, mode)
		if err != nil {
			return nil, false, err
		}
		sort.Slice(all, func(a, b int) bool { return all[a].Name < all[b].Name })
		m.listings.put(target, mode, all)
	}
	start := sort.Search(len(all), func(i int) bool { return all[i].Name > after })
	all = all[start:]
	if len(all) > limit {
		return all[:limit], true, nil
	}
	return all, false, nil
}

func (m *Manager) listLocalPage(p, after string, limit int) ([]Entry, bool, error) {
	fi, err := m.root.Stat(p)
	if err != nil {
		return nil, false, WithKind(ErrNotFound, fmt.Errorf("url: %q does not exist under the agent root", p))
	}
	if !fi.IsDir() {
		if fi.Name() <= after {
			return nil, false, nil
		}
		return []Entry{{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()}}, false, nil
	}
	names, err := readNames(m.root.FS(), p)
	if err != nil {
		return nil, false, err
	}
	// Only the names after the cursor are sorted: the later pages of a huge directory sort
	// less (120,000 names: a page took 2-3 s on a loaded machine under -race).
	names = slices.DeleteFunc(names, func(n string) bool { return n <= after })
	sort.Strings(names)
	out := make([]Entry, 0, min(limit, len(names)))
	for i := range names {
		if len(out) == limit {
			return out, true, nil
		}
		info, err := fs.Lstat(m.root.FS(), path.Join(p, names[i]))
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Entry{Name: names[i], Size: info.Size(), ModTime: info.ModTime(), IsDir: info.IsDir()})
	}
	return out, false, nil
}

// readNames returns the names in directory p, without a stat per entry when the file system
// allows (os.File's Readdirnames; ReadDir may stat every entry on file systems without d_type).
func readNames(fsys fs.FS, p string) ([]string, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if rn, ok := f.(interface{ Readdirnames(int) ([]string, error) }); ok {
		return rn.Readdirnames(-1)
	}
	des, err := fs.ReadDir(fsys, p)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(des))
	for i, d := range des {
		names[i] = d.Name()
	}
	return names, nil
}

// listCacheTTL is how long a remote listing serves the pages after its first; listCacheMax
// how many listings are kept at once.
const (
	listCacheTTL = time.Minute
	listCacheMax = 4
)

// listingCache keeps the last remote listings, sorted, for their next pages.
type listingCache struct {
	mu sync.Mutex
	m  map[string]listing
}

type listing struct {
	entries []Entry
	at      time.Time
}

func listingKey(target string, mode Mode) string { return fmt.Sprintf("%d\x00%s", mode, target) }

// get returns the cached listing for a page after the first.
func (c *listingCache) get(target string, mode Mode, after string) ([]Entry, bool) {
	if after == "" {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[listingKey(target, mode)]
	if !ok || time.Since(l.at) > listCacheTTL {
		return nil, false
	}
	return l.entries, true
}

func (c *listingCache) put(target string, mode Mode, entries []Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]listing)
	}
	for k, l := range c.m {
		if time.Since(l.at) > listCacheTTL {
			delete(c.m, k)
		}
	}
	for len(c.m) >= listCacheMax {
		var oldest string
		var at time.Time
		for k, l := range c.m {
			if oldest == "" || l.at.Before(at) {
				oldest, at = k, l.at
			}
		}
		delete(c.m, oldest)
	}
	c.m[listingKey(target, mode)] = listing{entries: entries, at: time.Now()}
}
