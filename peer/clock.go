package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/memtable"
)

// Clock offsets. Every write carries its coordinator's HLC timestamp and
// conflicting writes resolve by it, so clocks that disagree by more than
// writes are apart reorder them. Three rules keep that from losing an
// acknowledged write (README's guarantees say what holds where):
//
//   - Offsets to every peer are measured continuously: each memberlist
//     probe's ack carries the peer's wall clock, and the probe's round trip
//     bounds the error (the sample is the peer's clock at about half the
//     round trip).
//   - A node off from a majority of its peers by more than the bound
//     (--max-clock-offset) coordinates no writes: its timestamps would sort
//     before, or far after, writes the others make.
//   - Within the bound, a coordinator answers a write only once every
//     peer's clock has passed the write's timestamp (as far as the offsets
//     say, error included): a write that begins anywhere after the answer
//     then stamps a later timestamp, so sequential writes never reorder.
//     The wait runs beside the replicas' fsyncs, so with clocks in sync it
//     costs nothing (see coordinator.commitWait).
//
// Replicas also refuse records stamped further ahead of their clock than
// the bound (ApplyLocal), so a fast clock's write is never acknowledged.

// DefaultMaxClockOffset is --max-clock-offset's default (CockroachDB's).
const DefaultMaxClockOffset = memtable.DefaultMaxOffset

// errClockUnchecked refuses a write on a node that cannot reach any
// replica of the key and has not compared its clock with any peer since
// it started: its stamp might be far off, and a hint or its own copy of
// it would outlive the refusal.
var errClockUnchecked = fmt.Errorf("%w: this node has not yet compared its clock with any peer's since it started", ErrClockOffset)

// errClockUnverified refuses a write on a node that could not compare its
// clock with a majority of its live peers in time: a clock far behind
// would stamp a write that orders before writes acknowledged elsewhere,
// and the replicas cannot tell such a record from an old one (a hint, a
// repair), so it would lose without a word.
var errClockUnverified = fmt.Errorf("%w: this node could not yet compare its clock with a majority of its live peers", ErrClockOffset)

// ErrClockOffset is matched by the error of a write this node will not
// coordinate, or a record it will not store, because of clock offset.
var ErrClockOffset = errors.New("peer: clock offset beyond --max-clock-offset")

// ClockOffsetError says that this node's clock is off from a majority of
// its peers by more than the bound.
type ClockOffsetError struct {
	Offset time.Duration // the median offset of the peers off (peer minus this node)
	Off    int           // peers off by more than Bound
	Peers  int           // peers in the ring
	Bound  time.Duration
}

func (e *ClockOffsetError) Error() string {
	dir := "ahead of"
	if e.Offset > 0 {
		dir = "behind"
	}
	return fmt.Sprintf("this node's clock is %s %s %d of its %d peers' (more than --max-clock-offset %s); it coordinates no writes until it is back within the bound",
		e.Offset.Abs().Round(time.Millisecond), dir, e.Off, e.Peers, e.Bound)
}

func (e *ClockOffsetError) Unwrap() error { return ErrClockOffset }

// sampleWindow and maxSamples bound the samples an estimate is chosen
// from; a clock drifts far less than a millisecond in sampleWindow.
const (
	sampleWindow = 10 * time.Second
	maxSamples   = 16
)

// offsetFresh is how long a measurement counts: a peer unheard of for
// longer (down, cut off) counts neither for nor against this node's clock.
const offsetFresh = 30 * time.Second

// ClockMonitor keeps the latest clock offset measured to each peer and
// decides from them whether this node may coordinate writes, and how long
// a write must wait before it is answered. It is safe for concurrent use.
type ClockMonitor struct {
	bound time.Duration
	now   func() time.Time
	lg    *slog.Logger

	// probed: something measures the offsets (the gossip layer); until
	// then there is nothing to wait for, and Verified says so.
	probed atomic.Bool

	mu      sync.Mutex
	offsets map[string]PeerOffset   // the estimate in force, per peer
	samples map[string][]PeerOffset // the recent samples it is chosen from
	warned  map[string]bool         // logged as beyond half the bound
}

// NewClockMonitor returns a monitor for the bound (DefaultMaxClockOffset
// when 0), reading this node's wall clock with now (time.Now when nil).
func NewClockMonitor(bound time.Duration, now func() time.Time, lg *slog.Logger) *ClockMonitor {
	if bound <= 0 {
		bound = DefaultMaxClockOffset
	}
	if now == nil {
		now = time.Now
	}
	if lg == nil {
		lg = slog.Default()
	}
	return &ClockMonitor{bound: bound, now: now, lg: lg, offsets: map[string]PeerOffset{}, samples: map[string][]PeerOffset{}, warned: map[string]bool{}}
}

// Bound returns the maximum clock offset.
func (c *ClockMonitor) Bound() time.Duration { return c.bound }

// Observe records that peer's clock read peerWall at about half of rtt
// before now. An offset past half the bound is logged when it first
// crosses, and again when it is back within it.
func (c *ClockMonitor) Observe(peer string, peerWall time.Time, rtt time.Duration) {
	now := c.now()
	c.mu.Lock()
	// Keep the samples of the last sampleWindow, and go by the one with
	// the shortest round trip (NTP's clock filter): a probe held up in a
	// busy node's queue has a long round trip, so a wide error bound, and
	// Lag would make writes wait for it.
	keep := c.samples[peer][:0]
	for _, o := range c.samples[peer] {
		if now.Sub(o.At) <= sampleWindow && !o.Refused {
			keep = append(keep, o)
		}
	}
	if len(keep) == maxSamples {
		keep = append(keep[:0], keep[1:]...)
	}
	keep = append(keep, PeerOffset{Offset: peerWall.Sub(now.Add(-rtt / 2)), RTT: rtt, At: now})
	c.samples[peer] = keep
	best := keep[0]
	for _, o := range keep[1:] {
		if o.RTT <= best.RTT {
			best = o
		}
	}
	c.offsets[peer] = best
	off := best.Offset
	far := off.Abs() > c.bound/2
	was := c.warned[peer]
	c.warned[peer] = far
	c.mu.Unlock()
	switch {
	case far && !was:
		c.lg.Warn("clock offset to a peer beyond half of --max-clock-offset", "peer", peer,
			"offset", off.Round(time.Millisecond), "max_clock_offset", c.bound)
	case !far && was:
		c.lg.Info("clock offset to a peer back within half of --max-clock-offset", "peer", peer,
			"offset", off.Round(time.Millisecond))
	}
}

// Refused records that peer refused a record of this node's as stamped
// more than the bound ahead of its clock: until a probe measures it
// again, the peer counts as that far behind.
func (c *ClockMonitor) Refused(peer string) {
	now := c.now()
	c.mu.Lock()
	c.offsets[peer] = PeerOffset{Offset: -c.bound - time.Millisecond, At: now, Refused: true}
	c.mu.Unlock()
}

// SetProbed says that offsets are being measured (membership.Start calls it):
// from then on a verdict is Verified only once they came.
func (c *ClockMonitor) SetProbed() { c.probed.Store(true) }

// ClockVerdict is the monitor's word on this node's clock, for a write.
type ClockVerdict struct {
	// Verified: the clock was compared recently with a majority of the
	// peers the view says are reachable (also when none is but it was
	// compared before, and when nothing measures offsets).
	Verified bool
	// Compared: Verified rests on measurements (not on there being
	// nothing that measures, or no peer to compare with). A write whose
	// clock was not compared stores its own copy only once a replica has
	// taken it (a replica refuses a record from the future).
	Compared bool
	// Err is a *ClockOffsetError when the clock is off by more than the
	// bound from a majority of the peers (the other members of the ring),
	// as far as recent measurements say, whatever their error.
	Err error
	// Lag is how far the slowest peer's clock may be behind this node's,
	// error included, at most the bound; peers off by more than the bound
	// (they coordinate no writes) and peers not measured recently are left
	// out. Zero or negative when every peer is ahead.
	Lag time.Duration
}

// Assess returns the verdict on this node's clock (self) against the
// other members of v's ring, in one pass under one lock: it is on every
// cluster write's path.
func (c *ClockMonitor) Assess(self string, v *View) ClockVerdict {
	now := c.now()
	var offBuf [8]time.Duration
	off := offBuf[:0]
	peers, up, seen := 0, 0, 0
	lag, lagSet := time.Duration(0), false
	c.mu.Lock()
	everMeasured := len(c.offsets) > 0
	for _, id := range v.Ring.Nodes() {
		if id == self {
			continue
		}
		if m, ok := v.Members[id]; ok && m.NoClock {
			continue
		}
		peers++
		_, reachable := v.reachable(id)
		if reachable {
			up++
		}
		o, ok := c.offsets[id]
		if !ok || now.Sub(o.At) > offsetFresh {
			continue
		}
		if reachable {
			seen++
		}
		if o.Offset.Abs()-o.RTT/2 > c.bound {
			off = append(off, o.Offset)
			continue
		}
		if l := -o.Offset + o.RTT/2; !lagSet || l > lag {
			lag, lagSet = l, true
		}
	}
	c.mu.Unlock()
	vd := ClockVerdict{Lag: min(lag, c.bound)}
	switch {
	case !c.probed.Load() || peers == 0:
		// Not measuring, or no peer that can be compared with (a
		// cluster of older releases): nothing to wait for.
		vd.Verified = true
	case up == 0:
		// Nobody to compare with now: fine if the clock was compared
		// before (it drifts slowly), not if it never was since start.
		vd.Verified = everMeasured
		vd.Compared = vd.Verified
	default:
		vd.Verified = seen > up/2
		vd.Compared = vd.Verified
	}
	if len(off) > peers/2 {
		slices.Sort(off)
		vd.Err = &ClockOffsetError{Offset: off[len(off)/2], Off: len(off), Peers: peers, Bound: c.bound}
	}
	return vd
}

// Offsets returns the latest offset of every peer measured.
func (c *ClockMonitor) Offsets() map[string]PeerOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]PeerOffset, len(c.offsets))
	for id, o := range c.offsets {
		out[id] = o
	}
	return out
}

// clockPayloadLen is the size of the wall clock a probe's ack carries: a
// version byte and Unix nanoseconds.
const clockPayloadLen = 9

// appendClockPayload appends wall as a probe ack's payload.
func appendClockPayload(dst []byte, wall time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 1), uint64(wall.UnixNano()))
}

// parseClockPayload reads a probe ack's payload; ok is false for anything
// else (an older node's empty payload).
func parseClockPayload(b []byte) (wall time.Time, ok bool) {
	if len(b) != clockPayloadLen || b[0] != 1 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))), true
}
