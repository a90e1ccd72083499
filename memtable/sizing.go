package memtable

import "fmt"

// Sizing is how much memory the write path may hold before Pebble flushes
// and, past that, stalls writes.
type Sizing struct {
	// Size is the largest a single memtable grows before it is flushed to L0.
	Size int64
	// StopWrites is how many full memtables may queue for flushing before
	// writes stall.
	StopWrites int
}

// MaxMemTableSize is Pebble's limit on one memtable (just under 4 GiB).
const MaxMemTableSize = 4<<30 - 1

// Validate reports a sizing Pebble would refuse or that could stall every write.
func (s Sizing) Validate() error {
	switch {
	case s.Size < 1<<20:
		return fmt.Errorf("memtable size %d is below 1MiB", s.Size)
	case s.Size > MaxMemTableSize:
		return fmt.Errorf("memtable size %d is above Pebble's limit of 4GiB", s.Size)
	case s.StopWrites < 2:
		return fmt.Errorf("memtable stop-writes threshold %d must be at least 2 so one memtable can flush while another fills", s.StopWrites)
	}
	return nil
}
