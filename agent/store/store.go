// Package store is the agent's durable job store: one bbolt file in the state directory
// (go.etcd.io/bbolt: a well-kept embedded key/value store with ACID transactions, fsync on
// commit, and no cgo), holding the transfer engine's records as opaque bytes. The file is
// created with mode 0600: records carry the credentials a job needs to resume.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var jobsBucket = []byte("jobs")

// FileName is the store's file in the state directory.
const FileName = "jobs.db"

// Store is an open job store. Safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the store in dir. A second agent on the same state directory
// gets an error within a second instead of waiting for the lock forever.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, FileName)
	db, err := bolt.Open(p, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("job store %s is locked: another ferry-agent uses this state directory", p)
		}
		return nil, fmt.Errorf("job store %s: %w", p, err)
	}
	// bbolt creates the file with the mode given, but an older file may be wider.
	if err := os.Chmod(p, 0o600); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(jobsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("job store %s: %w", p, err)
	}
	return &Store{db: db}, nil
}

// Put stores rec under id, replacing any record there.
func (s *Store) Put(id string, rec []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).Put([]byte(id), rec)
	})
}

// Get returns the record under id, or an error wrapping os.ErrNotExist.
func (s *Store) Get(id string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(jobsBucket).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("job %q: %w", id, os.ErrNotExist)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Delete removes the record under id (no error if there is none).
func (s *Store) Delete(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).Delete([]byte(id))
	})
}

// List calls fn with every record, in key order. The bytes are only valid during the call.
func (s *Store) List(fn func(id string, rec []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
}

// Close closes the file. Safe to call twice.
func (s *Store) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	return s.db.Close()
}
