package compaction

import (
	"fmt"
	"strings"

	"github.com/ringkv/ringkv/memtable"
)

// The reasons Pebble v2.1.7 passes in pebble.WriteStallBeginInfo.Reason
// (db.go, maybeInduceWriteStall). Pebble does not export them; a test pins
// them against a real stall so an upgrade that renames them fails loudly.
const (
	// StallMemTableCount is reported when the queued memtables reach
	// MemTableStopWritesThreshold x MemTableSize: flushes lag writes.
	StallMemTableCount = "memtable count limit reached"
	// StallL0ReadAmp is reported when L0 read amplification (sublevels,
	// despite the text) reaches L0StopWritesThreshold: L0 compactions lag
	// flushes.
	StallL0ReadAmp = "L0 file count limit exceeded"
)

// Advice explains a write stall and names the flag that would help.
type Advice struct {
	Reason  string // Pebble's stall reason, as given
	Flag    string // the flag to change, without dashes as in Knob.Name; empty if none fits
	Message string // one line for the log and the status page
}

// AdviseStall explains a Pebble write stall with the given reason under
// tuning t, suggesting concrete values that t.Validate would accept.
// Unknown reasons get generic advice and an empty Flag.
func AdviseStall(reason string, t Tuning) Advice {
	a := Advice{Reason: reason}
	var b strings.Builder
	switch reason {
	case StallMemTableCount:
		a.Flag = "memtable-size"
		fmt.Fprintf(&b, "writes stalled: %d memtables of %s are waiting to flush because flushes are slower than writes; ",
			t.MemTableStopWrites, FormatSize(t.MemTableSize))
		if next := 2 * t.MemTableSize; next <= memtable.MaxMemTableSize {
			fmt.Fprintf(&b, "raise --memtable-size (e.g. to %s)", FormatSize(next))
		} else {
			b.WriteString("--memtable-size is at its limit")
		}
		if t.Profile != WriteHeavy {
			b.WriteString(" or use --compaction-profile=write-heavy")
		}
		b.WriteString("; if stalls persist, the disk's write throughput is the limit")
	case StallL0ReadAmp:
		a.Flag = "l0-stop-writes-threshold"
		fmt.Fprintf(&b, "writes stalled: L0 reached %d sublevels (--l0-stop-writes-threshold) because compactions out of L0 are slower than flushes; raise --l0-stop-writes-threshold (e.g. to %d)",
			t.L0StopWritesThreshold, 2*t.L0StopWritesThreshold)
		if t.MaxConcurrentCompactions < maxCompactions {
			fmt.Fprintf(&b, ", --max-concurrent-compactions (e.g. from %d to %d)",
				t.MaxConcurrentCompactions, t.MaxConcurrentCompactions+1)
		}
		if t.Profile != WriteHeavy {
			b.WriteString(" or use --compaction-profile=write-heavy")
		}
	default:
		fmt.Fprintf(&b, "writes stalled (%s): check disk latency and the LSM shape at /v1/lsm", reason)
		if t.Profile != WriteHeavy {
			b.WriteString("; --compaction-profile=write-heavy tolerates longer write bursts")
		}
	}
	a.Message = b.String()
	return a
}
