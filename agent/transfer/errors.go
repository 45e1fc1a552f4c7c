package transfer

import (
	"errors"
	"fmt"
)

// InvalidError is a request the engine refuses before doing anything. Field names the request
// field ("source", "destination", "mode", "id") so the API edge can tell the caller which one.
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, msg string) error { return &InvalidError{Field: field, Msg: msg} }

// ErrNotFound is returned for an unknown transfer ID.
var ErrNotFound = errors.New("no such transfer")

// ErrClosed is returned when the manager is shutting down.
var ErrClosed = errors.New("transfer manager is shutting down")

func notFound(id string) error { return fmt.Errorf("transfer %q: %w", id, ErrNotFound) }
