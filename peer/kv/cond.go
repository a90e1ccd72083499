package kv

import (
	"errors"
	"fmt"
)

// Condition makes a Put or Delete a compare-and-set (HTTP's If-Match and
// If-None-Match): it applies only if the key's current record satisfies
// it, decided by a consensus round among the key's replicas, so that
// conditional writes of a key are linearizable. The zero Condition is
// none: a plain last-writer-wins write.
type Condition struct {
	Kind CondKind
	// Version is the version IfVersion requires.
	Version Version
}

// CondKind is what a Condition requires of the current record.
type CondKind uint8

const (
	// Unconditional: a plain write.
	Unconditional CondKind = iota
	// IfVersion: the key is present with exactly Version (If-Match: "V").
	IfVersion
	// IfAbsent: the key is absent, deleted or expired (If-None-Match: *).
	IfAbsent
	// IfPresent: the key is present, any version (If-Match: *).
	IfPresent
)

// Holds reports whether a current record (present, of version v) meets c.
func (c Condition) Holds(present bool, v Version) bool {
	switch c.Kind {
	case IfVersion:
		return present && v == c.Version
	case IfAbsent:
		return !present
	case IfPresent:
		return present
	}
	return true
}

// ErrConditionFailed is matched by a ConditionError.
var ErrConditionFailed = errors.New("condition failed")

// ConditionError says a conditional write was not applied because the
// key's current record did not meet its condition, and what that record
// is: its version, or Exists false for none.
type ConditionError struct {
	Exists  bool
	Current Version
}

func (e *ConditionError) Error() string {
	if !e.Exists {
		return "condition failed: the key is absent"
	}
	return fmt.Sprintf("condition failed: the key's current version is %s", e.Current)
}

// Is makes errors.Is(err, ErrConditionFailed) true.
func (e *ConditionError) Is(target error) bool { return target == ErrConditionFailed }

// ErrOutcomeUnknown: a conditional write's round was cut short after its
// record may have been accepted: it may or may not be applied (a serial
// read tells). Retrying it blindly could apply it twice.
var ErrOutcomeUnknown = errors.New("outcome unknown: the conditional write may or may not have been applied; read the key at consistency=serial to know")
