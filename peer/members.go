package peer

import "time"

// What the membership layer (package peer/membership, which this package
// does not import) shares with the node: the metadata key of a finished
// leave, and the clock a probe's ack carries.

// leftMeta is the engine metadata key a node sets, durably, when its leave
// is done: it must not start into the cluster on this data again.
const leftMeta = "left"

// LeftMetaKey is the engine metadata key that Rebalancer.Leave sets, durably,
// once the node's leave is done; the membership layer refuses to start a
// node on data that has it.
const LeftMetaKey = leftMeta

// ClockPayloadLen is the length of AppendClockPayload's payload.
const ClockPayloadLen = clockPayloadLen

// AppendClockPayload appends wall as a probe ack's (or a clock ping
// reply's) payload: a version byte and Unix nanoseconds.
func AppendClockPayload(dst []byte, wall time.Time) []byte { return appendClockPayload(dst, wall) }

// ParseClockPayload reads AppendClockPayload's payload; ok is false for
// anything else (an older node's empty payload).
func ParseClockPayload(b []byte) (wall time.Time, ok bool) { return parseClockPayload(b) }
