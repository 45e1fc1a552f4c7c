package treestream

import (
	"os"

	"golang.org/x/sys/unix"
)

// SyncDir returns a Sync that makes everything written to the file system holding dir durable
// with one syncfs(2), however many files were written.
func SyncDir(dir string) func() error {
	return func() error {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Syncfs(int(f.Fd()))
	}
}
