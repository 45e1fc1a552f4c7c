package storage

import (
	"path/filepath"
)

// OpenRoot opens the directory name (root-relative) as a Root of its own, confined to that
// directory the way this one is confined to Dir: the name is resolved inside this root, and the
// new root refuses anything that leaves it. The caller closes it.
func (s *Root) OpenRoot(name string) (*Root, error) {
	r, err := s.r.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	return &Root{dir: filepath.Join(s.dir, filepath.FromSlash(name)), r: r}, nil
}
