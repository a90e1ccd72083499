package kv

import (
	"errors"
	"fmt"
	"time"
)

// MaxBatchItems is the most operations one batch carries.
const MaxBatchItems = 1000

// BatchOpKind is what one operation of a batch does.
type BatchOpKind uint8

const (
	// BatchGet reads the key.
	BatchGet BatchOpKind = iota + 1
	// BatchPut writes Value under the key.
	BatchPut
	// BatchDelete writes a tombstone for the key.
	BatchDelete
)

// String returns "get", "put" or "delete".
func (k BatchOpKind) String() string {
	switch k {
	case BatchGet:
		return "get"
	case BatchPut:
		return "put"
	case BatchDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// BatchOp is one operation of a batch: a Get, Put or Delete with the
// options the single-key calls take.
type BatchOp struct {
	Kind  BatchOpKind
	Key   []byte
	Value []byte // a put's
	// TTL, when positive, makes a put read as absent once it has passed.
	TTL time.Duration
	// Consistency is the item's: One, Quorum or All; Serial for a get.
	Consistency Consistency
	// Condition, when set, makes a put or delete a compare-and-set.
	Condition Condition
}

// BatchResult is one operation's outcome.
type BatchResult struct {
	// Err is nil when a write was applied or a get found the key; else
	// ErrNotFound (a get of an absent key), a *ConditionError, an error
	// matching ErrOutcomeUnknown, or why the item was not applied.
	Err error
	// Value is a found get's value.
	Value []byte
	// Version is a write's new version or a found get's.
	Version Version
	// Unprocessed: the item was certainly not applied (or is a read, or a
	// plain write, which are safe to repeat): retry it.
	Unprocessed bool
}

// ErrBadBatch is matched by the error of a batch refused whole (too many
// items, a bad key, a serial write): nothing of it was applied.
var ErrBadBatch = errors.New("bad batch")

// CheckBatch returns why ops cannot run as a batch, or nil: every item is
// checked before any is applied.
func CheckBatch(ops []BatchOp) error {
	if len(ops) > MaxBatchItems {
		return fmt.Errorf("%w: %d items, at most %d", ErrBadBatch, len(ops), MaxBatchItems)
	}
	for i, op := range ops {
		if err := op.check(); err != nil {
			return fmt.Errorf("%w: item %d: %v", ErrBadBatch, i, err)
		}
	}
	return nil
}

func (op BatchOp) check() error {
	switch op.Kind {
	case BatchGet:
		if op.Condition.Kind != Unconditional {
			return errors.New("a get takes no condition")
		}
	case BatchPut, BatchDelete:
		if op.Consistency == Serial {
			return errors.New("consistency serial is for reads; a conditional write is serial already")
		}
	default:
		return fmt.Errorf("unknown op %d", op.Kind)
	}
	if op.Consistency > Serial {
		return fmt.Errorf("unknown consistency %d", op.Consistency)
	}
	if op.Condition.Kind > IfPresent {
		return fmt.Errorf("unknown condition %d", op.Condition.Kind)
	}
	if len(op.Key) == 0 || len(op.Key) > MaxKeySize {
		return fmt.Errorf("key length %d, want 1 to %d bytes", len(op.Key), MaxKeySize)
	}
	return nil
}
