package transfer

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
)

// ListFilesPage lists like ListFiles, one page at a time: entries sorted by name (byte
// order), only those whose names sort after after, at most limit of them (limit > 0); more
// tells whether others follow. Paging by the last name, not by position, keeps pages right
// when entries come or go between calls. A local directory is read once per page but only
// the page's entries are stat'ed; a remote one is listed again for each page.
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
	all, err := m.ListFiles(ctx, target, mode)
	if err != nil {
		return nil, false, err
	}
	sort.Slice(all, func(a, b int) bool { return all[a].Name < all[b].Name })
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
		return nil, false, invalid("url", fmt.Sprintf("%q does not exist under the agent root", p))
	}
	if !fi.IsDir() {
		if fi.Name() <= after {
			return nil, false, nil
		}
		return []Entry{{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()}}, false, nil
	}
	des, err := fs.ReadDir(m.root.FS(), p) // sorted by name
	if err != nil {
		return nil, false, err
	}
	start := sort.Search(len(des), func(i int) bool { return des[i].Name() > after })
	out := make([]Entry, 0, min(limit, len(des)-start))
	for i := start; i < len(des); i++ {
		if len(out) == limit {
			return out, true, nil
		}
		info, err := des[i].Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Entry{Name: des[i].Name(), Size: info.Size(), ModTime: info.ModTime(), IsDir: des[i].IsDir()})
	}
	return out, false, nil
}
