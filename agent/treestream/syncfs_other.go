//go:build !linux

package treestream

// SyncDir returns nil where there is no syncfs: Receive then fsyncs each file.
func SyncDir(string) func() error { return nil }
