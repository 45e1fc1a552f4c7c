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

// Bucket is another namespace in the same file, with the same methods as the Store (the
// transfer engine's records live in "jobs"; the fleet coordinator's in "fleet"), so one
// recovery never reads the other's records.
type Bucket struct {
	db   *bolt.DB
	name []byte
}

// Bucket returns the namespace name, creating it if needed. name must not be "jobs".
func (s *Store) Bucket(name string) (*Bucket, error) {
	if name == "" || name == string(jobsBucket) {
		return nil, fmt.Errorf("bucket %q: reserved or empty", name)
	}
	b := &Bucket{db: s.db, name: []byte(name)}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(b.name)
		return err
	}); err != nil {
		return nil, fmt.Errorf("bucket %q: %w", name, err)
	}
	return b, nil
}

// Put stores rec under id. Concurrent Puts are committed together (bbolt's Batch: one fsync
// for many records), so many small records written at once cost one disk flush.
func (b *Bucket) Put(id string, rec []byte) error {
	return b.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(b.name).Put([]byte(id), rec)
	})
}

// Get returns the record under id, or an error wrapping os.ErrNotExist.
func (b *Bucket) Get(id string) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(b.name).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("record %q: %w", id, os.ErrNotExist)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Delete removes the record under id (no error if there is none).
func (b *Bucket) Delete(id string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(b.name).Delete([]byte(id))
	})
}

// List calls fn with every record, in key order. The bytes are only valid during the call.
func (b *Bucket) List(fn func(id string, rec []byte) error) error {
	return b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(b.name).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
}
