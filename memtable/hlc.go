package memtable

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"
)

// logicalBits is how many low bits of an HLC timestamp count events within
// one millisecond; the high 48 bits are Unix milliseconds (good until 10889).
const logicalBits = 16

// DefaultMaxOffset is how far ahead of the local wall clock a remote
// timestamp may be before Clock.Update refuses it.
const DefaultMaxOffset = 500 * time.Millisecond

// ErrFutureTimestamp is matched by Update's error for a timestamp too far
// ahead of the wall clock.
var ErrFutureTimestamp = errors.New("memtable: timestamp from the future")

// Clock is a hybrid logical clock: timestamps follow wall time in
// milliseconds but never go backwards and are unique per clock, even when
// the wall clock steps back or many writes land in one millisecond.
// Clock is safe for concurrent use.
type Clock struct {
	wall      func() time.Time
	maxOffset time.Duration
	last      atomic.Uint64
}

// NewClock returns a Clock reading wall for physical time (time.Now if nil)
// that refuses remote timestamps more than DefaultMaxOffset ahead.
func NewClock(wall func() time.Time) *Clock { return NewClockBound(wall, DefaultMaxOffset) }

// NewClockBound is NewClock with maxOffset as the bound (DefaultMaxOffset
// when 0).
func NewClockBound(wall func() time.Time, maxOffset time.Duration) *Clock {
	if wall == nil {
		wall = time.Now
	}
	if maxOffset <= 0 {
		maxOffset = DefaultMaxOffset
	}
	return &Clock{wall: wall, maxOffset: maxOffset}
}

// MaxOffset returns how far ahead of the wall clock Update accepts.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Wall returns the physical time the clock reads.
func (c *Clock) Wall() time.Time { return c.wall() }

// Now returns a timestamp greater than every one this clock returned or
// observed before.
func (c *Clock) Now() uint64 {
	phys := uint64(c.wall().UnixMilli()) << logicalBits
	for {
		last := c.last.Load()
		next := phys
		if next <= last {
			next = last + 1
		}
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Update folds a timestamp seen from another node into the clock, so that
// later local timestamps order after it. A timestamp more than the maximum
// offset ahead of local wall time is refused and not folded in, so that one
// node's broken clock cannot drag every other node into the future.
func (c *Clock) Update(remote uint64) error {
	now := c.wall()
	limit := uint64(now.Add(c.maxOffset).UnixMilli()) << logicalBits
	if remote > limit {
		return fmt.Errorf("%w: timestamp %s is %s ahead of this node's clock, more than %s",
			ErrFutureTimestamp, time.UnixMilli(int64(remote>>logicalBits)).UTC().Format(time.RFC3339Nano),
			TimestampTime(remote).Sub(now).Round(time.Millisecond), c.maxOffset)
	}
	for {
		last := c.last.Load()
		if remote <= last || c.last.CompareAndSwap(last, remote) {
			return nil
		}
	}
}

// TimestampTime returns the wall time that an HLC timestamp carries.
func TimestampTime(ts uint64) time.Time { return time.UnixMilli(int64(ts >> logicalBits)) }

// TimestampAt returns the smallest HLC timestamp at wall time t.
func TimestampAt(t time.Time) uint64 { return uint64(t.UnixMilli()) << logicalBits }

// NodeTag returns the 64-bit tag stored in records for the node with the
// given id; it breaks timestamp ties between nodes.
func NodeTag(nodeID string) uint64 { return xxh3.HashString(nodeID) }
