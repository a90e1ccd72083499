package engine

import "errors"

// ErrNotFound is returned for a key that has no record.
var ErrNotFound = errors.New("engine: not found")

// ErrClosed is returned by calls on a closed Engine.
var ErrClosed = errors.New("engine: closed")
