package peer

import (
	"errors"

	"github.com/ringkv/ringkv/engine"
)

// ErrNotFound is the storage's answer for a key that is absent, deleted or
// expired. The errors of Node's client-facing methods also match
// kv.ErrNotFound (see clientErr).
var ErrNotFound = engine.ErrNotFound

// ErrDiskFull is matched by errors of writes a node refused because its
// disk is below its free-space floor (engine.DiskFullError names it), and
// by Node's errors, which also match kv.ErrDiskFull.
var ErrDiskFull = engine.ErrDiskFull

// ErrRangePending is a replica's answer for a key of a range it has just
// been given and is still pulling from the range's old owners: its copy
// may lack older writes, so the coordinator also asks those old owners
// (PendingError names them), and counts the copy only for its newer
// records.
var ErrRangePending = errors.New("peer: the key's range is still being transferred to this node")

// PendingError is the ErrRangePending of a node that names the old owners
// it pulls the key's range from: exactly the nodes that held the key
// before the ring changed. errors.Is(err, ErrRangePending) holds for it.
type PendingError struct {
	From []string
}

func (e *PendingError) Error() string        { return ErrRangePending.Error() }
func (e *PendingError) Is(target error) bool { return target == ErrRangePending }

// maxScanBytes returns the cap to apply for a MaxBytes field.
func maxScanBytes(n int) int {
	if n <= 0 {
		return DefaultMaxScanBytes
	}
	return n
}
