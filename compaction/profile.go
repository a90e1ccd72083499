package compaction

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/ringkv/ringkv/memtable"
)

// Profile names a preset of compaction knobs, chosen with
// --compaction-profile.
type Profile string

// The compaction profiles, in the order Profiles returns them.
const (
	// Balanced is the default: CRDB-like memtables and bloom filters with a
	// block cache big enough to matter, on the 2-core hosts ringkv targets.
	Balanced Profile = "balanced"
	// WriteHeavy trades memory and read amplification for less write
	// amplification and no write stalls under sustained ingest.
	WriteHeavy Profile = "write-heavy"
	// ReadHeavy keeps L0 shallow and spends memory on cache and filters to
	// cut read amplification.
	ReadHeavy Profile = "read-heavy"
)

// Profiles returns every profile: balanced, write-heavy, read-heavy.
func Profiles() []Profile { return []Profile{Balanced, WriteHeavy, ReadHeavy} }

// ParseProfile returns the profile named s (case and surrounding blanks are
// ignored, as s often comes from an environment variable).
func ParseProfile(s string) (Profile, error) {
	p := Profile(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := profileTuning(p); !ok {
		return "", unknownProfile(s)
	}
	return p, nil
}

func unknownProfile(s string) error {
	return knobError("Profile", func(name func(string) string) string {
		return fmt.Sprintf("unknown %s %q: want balanced, write-heavy or read-heavy", name("Profile"), s)
	})
}

// A KnobError says which knob of a Tuning is unknown or unsafe, and why.
// Its message calls knobs by their Tuning field names; a caller that sets
// them from its own names (ringkv serve's flags) gets the message in those
// from Message.
type KnobError struct {
	// Field is the Tuning field at fault, e.g. "MemTableSize".
	Field string
	msg   func(name func(field string) string) string
}

func knobError(field string, msg func(name func(field string) string) string) *KnobError {
	return &KnobError{Field: field, msg: msg}
}

func (e *KnobError) Error() string { return e.msg(func(f string) string { return f }) }

// Message is the error with every knob it mentions called name(field).
func (e *KnobError) Message(name func(field string) string) string { return e.msg(name) }

// Tuning is every Pebble knob ringkv exposes, resolved to concrete values.
// The comment on each field names the flag that overrides it.
type Tuning struct {
	// Profile is the profile the other fields started from.
	Profile Profile
	// MemTableSize is the size of one memtable (--memtable-size).
	MemTableSize int64
	// MemTableStopWrites is Pebble's MemTableStopWritesThreshold: writes
	// stall once this many full memtables queue for flushing. It has no flag
	// of its own; it comes from the profile.
	MemTableStopWrites int
	// L0CompactionThreshold is the L0 read amplification (sublevels) at which
	// L0 is compacted into Lbase (--l0-compaction-threshold).
	L0CompactionThreshold int
	// L0StopWritesThreshold is the L0 read amplification at which writes
	// stall until compactions catch up (--l0-stop-writes-threshold).
	L0StopWritesThreshold int
	// LBaseMaxBytes is the target size of Lbase; each lower level is 10x
	// larger (--lbase-max-bytes).
	LBaseMaxBytes int64
	// TargetFileSize is the target SST size at L0 and Lbase, doubling per
	// level below Lbase (--target-file-size).
	TargetFileSize int64
	// MaxConcurrentCompactions is the upper bound of Pebble's
	// CompactionConcurrencyRange; the lower bound is 1, and Pebble goes above
	// it only when L0 or compaction debt grows (--max-concurrent-compactions).
	MaxConcurrentCompactions int
	// BlockCacheSize is the size of the block cache (--block-cache-size).
	// It must be at least 1MiB: 0 would silently mean Pebble's 8MB default,
	// and a ringkv node is never meant to run without a real cache.
	BlockCacheSize int64
	// BloomBitsPerKey is the bloom filter size on every level; 0 disables
	// bloom filters (--bloom-bits-per-key).
	BloomBitsPerKey int
}

// Overrides holds the per-flag overrides; a nil field means "from the
// profile". Field names match Tuning's.
type Overrides struct {
	MemTableSize             *int64
	L0CompactionThreshold    *int
	L0StopWritesThreshold    *int
	LBaseMaxBytes            *int64
	TargetFileSize           *int64
	MaxConcurrentCompactions *int
	BlockCacheSize           *int64
	BloomBitsPerKey          *int
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// profileTuning holds the three presets. Reference points (shared/PEBBLE.md):
// Pebble's own defaults are a 4MB memtable, stop-writes 2, L0 compaction 4,
// L0 stop 12, Lbase 64MB, 2MB L0 files, one compaction at a time, an 8MB
// cache and no bloom filters; CRDB's DefaultPebbleOptions and pebble-bench
// both use 64MB memtables, stop-writes 4, L0 compaction 2, bloom(10), and
// pebble-bench runs compactions at (1,3). CRDB's L0 stop of 1000 relies on
// admission control, which ringkv lacks, so every profile keeps a moderate
// hard stop and surfaces the stall instead. The target host has 2 cores and
// 24GiB; a node must be fast with no flags at all, and several nodes may
// share one host in tests, so no profile's full memtable queue plus block
// cache exceeds 1GiB (write-heavy: 6 x 128MiB + 128MiB).
func profileTuning(p Profile) (Tuning, bool) {
	switch p {
	case Balanced:
		return Tuning{
			Profile: Balanced,
			// CRDB and pebble-bench: 64MiB memtables flush into few, large L0
			// files; Pebble's 4MB default makes many tiny ones.
			MemTableSize: 64 * mib,
			// CRDB and pebble-bench: 4 queued memtables (256MiB) ride out a
			// slow flush without stalling.
			MemTableStopWrites: 4,
			// Pebble's default: 4 sublevels batch L0 work (CRDB's 2 costs more
			// write amplification), and read amplification stays small.
			L0CompactionThreshold: 4,
			// 5x the compaction threshold: room for bursts, yet a stall still
			// comes long before reads degrade (Pebble's 12 stalls too early
			// under load; CRDB's 1000 needs admission control).
			L0StopWritesThreshold: 20,
			// Everyone's 64MiB: with 10x per level it covers ~70GiB in 4 levels.
			LBaseMaxBytes: 64 * mib,
			// Double Pebble's 2MB: half the files and fsyncs, while 16 files
			// in Lbase keep L0->Lbase compactions narrow.
			TargetFileSize: 4 * mib,
			// One compaction per core; Pebble's single slot falls behind
			// (cockroach#149079).
			MaxConcurrentCompactions: 2,
			// Pebble's 8MB is a rounding error on 24GiB; 256MiB holds the
			// index, filter and hot data blocks of a typical node.
			BlockCacheSize: 256 * mib,
			// CRDB and pebble-bench: ~1% false positives, so a GET of an
			// absent key touches almost no data blocks.
			BloomBitsPerKey: 10,
		}, true
	case WriteHeavy:
		// Goal: write amplification at most 0.7x Pebble's defaults and no
		// stalls on a sustained write load. Write amplification comes mostly
		// from rewriting Lbase per L0->Lbase compaction and from the number
		// of levels, so L0 is allowed to grow deeper and Lbase bigger.
		return Tuning{
			Profile: WriteHeavy,
			// Twice balanced: half as many flushes and L0 files per byte.
			MemTableSize: 128 * mib,
			// 768MiB of queued memtables absorb bursts while compaction
			// holds the disk.
			MemTableStopWrites: 6,
			// Each L0->Lbase compaction takes 8 sublevels at once, so the
			// overlapping Lbase bytes are rewritten half as often as at 4.
			L0CompactionThreshold: 8,
			// 5x the compaction threshold, as in balanced: stalls only if
			// compaction falls far behind.
			L0StopWritesThreshold: 40,
			// 4x the default: one level fewer for the same data (10GiB fits
			// in 3 levels below L0 instead of 4), while the L0:Lbase ratio of
			// a compaction stays balanced's (8 x 128MiB into 256MiB, as 4 x
			// 64MiB into 64MiB).
			LBaseMaxBytes: 256 * mib,
			// Fewer, larger files cut per-file open and fsync cost
			// (go-ethereum PR #35691 argues for 16MB).
			TargetFileSize: 16 * mib,
			// Two, not pebble-bench's three: on a 2-core node a third
			// compaction takes its CPU from the reads (bench compaction:
			// read p99 1.5ms at 3 against 0.7ms at 2), while two already
			// keep L0 under 8 sublevels with no stalls.
			MaxConcurrentCompactions: 2,
			// Memory moves from the cache to the memtables; compactions do
			// not read through the block cache.
			BlockCacheSize: 128 * mib,
			// Filters cost ~1.25 bytes per key at write time and keep reads
			// of absent keys cheap even with a deeper L0.
			BloomBitsPerKey: 10,
		}, true
	case ReadHeavy:
		return Tuning{
			Profile: ReadHeavy,
			// Reads dominate, so 32MiB memtables are enough; the memory goes
			// to the cache, and small flushes are compacted out of L0 quickly.
			MemTableSize: 32 * mib,
			// As CRDB: 4 queued memtables (128MiB) cover a slow flush.
			MemTableStopWrites: 4,
			// CRDB and pebble-bench: compact at 2 sublevels so a read checks
			// few L0 files.
			L0CompactionThreshold: 2,
			// As balanced: read amplification is bounded by the compaction
			// threshold; the stop is only a backstop.
			L0StopWritesThreshold: 20,
			// Everyone's 64MiB.
			LBaseMaxBytes: 64 * mib,
			// Small files keep compactions narrow and quick, which matters
			// when L0 is compacted at 2 sublevels.
			TargetFileSize: 4 * mib,
			// One per core, as balanced.
			MaxConcurrentCompactions: 2,
			// Twice balanced: more of the working set is served from memory.
			BlockCacheSize: 512 * mib,
			// 12 bits: ~0.3% false positives against ~0.8% at 10, for 20%
			// more filter memory.
			BloomBitsPerKey: 12,
		}, true
	}
	return Tuning{}, false
}

// ProfileTuning returns the profile's own values, with no overrides.
func ProfileTuning(p Profile) (Tuning, error) {
	t, ok := profileTuning(p)
	if !ok {
		return Tuning{}, unknownProfile(string(p))
	}
	return t, nil
}

// Resolve returns the profile's values with every non-nil override applied,
// or the first reason (a *KnobError) why they are unsafe.
func Resolve(p Profile, o Overrides) (Tuning, error) {
	t, err := ProfileTuning(p)
	if err != nil {
		return Tuning{}, err
	}
	if o.MemTableSize != nil {
		t.MemTableSize = *o.MemTableSize
	}
	if o.L0CompactionThreshold != nil {
		t.L0CompactionThreshold = *o.L0CompactionThreshold
	}
	if o.L0StopWritesThreshold != nil {
		t.L0StopWritesThreshold = *o.L0StopWritesThreshold
	}
	if o.LBaseMaxBytes != nil {
		t.LBaseMaxBytes = *o.LBaseMaxBytes
	}
	if o.TargetFileSize != nil {
		t.TargetFileSize = *o.TargetFileSize
	}
	if o.MaxConcurrentCompactions != nil {
		t.MaxConcurrentCompactions = *o.MaxConcurrentCompactions
	}
	if o.BlockCacheSize != nil {
		t.BlockCacheSize = *o.BlockCacheSize
	}
	if o.BloomBitsPerKey != nil {
		t.BloomBitsPerKey = *o.BloomBitsPerKey
	}
	if err := t.Validate(); err != nil {
		return Tuning{}, err
	}
	return t, nil
}

// Limits enforced by Validate.
const (
	minLBaseMaxBytes   = 1 * mib  // below a memtable's worth, Lbase compacts constantly
	minTargetFileSize  = 64 * kib // smaller files cost more in metadata than they save
	maxCompactions     = 64       // far beyond any disk's useful parallelism
	minBlockCacheSize  = 1 * mib
	maxBloomBitsPerKey = 32 // ~0.0003% false positives; more only wastes memory
)

// Validate reports the first knob that Pebble would refuse or that would make
// the node stall or thrash, as a one-line *KnobError.
func (t Tuning) Validate() error {
	if _, ok := profileTuning(t.Profile); !ok {
		return unknownProfile(string(t.Profile))
	}
	if err := (memtable.Sizing{Size: t.MemTableSize, StopWrites: t.MemTableStopWrites}).Validate(); err != nil {
		return knobError("MemTableSize", func(n func(string) string) string {
			return fmt.Sprintf("%s (%s) is invalid: %v", n("MemTableSize"), FormatSize(t.MemTableSize), err)
		})
	}
	// bad is the error of field's value v, with why naming other knobs
	// through n.
	bad := func(field, v string, why func(n func(string) string) string) error {
		return knobError(field, func(n func(string) string) string {
			return fmt.Sprintf("%s (%s) %s", n(field), v, why(n))
		})
	}
	fixed := func(s string) func(func(string) string) string { return func(func(string) string) string { return s } }
	switch {
	case t.L0CompactionThreshold < 1:
		return bad("L0CompactionThreshold", strconv.Itoa(t.L0CompactionThreshold), fixed("must be at least 1"))
	case t.L0StopWritesThreshold <= t.L0CompactionThreshold:
		// Pebble accepts equality, but then writes stall the moment a
		// compaction becomes due, before it has had a chance to run.
		return bad("L0StopWritesThreshold", strconv.Itoa(t.L0StopWritesThreshold), func(n func(string) string) string {
			return fmt.Sprintf("must be greater than %s (%d)", n("L0CompactionThreshold"), t.L0CompactionThreshold)
		})
	case t.LBaseMaxBytes < minLBaseMaxBytes:
		return bad("LBaseMaxBytes", FormatSize(t.LBaseMaxBytes), fixed("must be at least "+FormatSize(minLBaseMaxBytes)))
	case t.TargetFileSize < minTargetFileSize:
		return bad("TargetFileSize", FormatSize(t.TargetFileSize), fixed("must be at least "+FormatSize(minTargetFileSize)))
	case t.TargetFileSize > t.LBaseMaxBytes:
		return bad("TargetFileSize", FormatSize(t.TargetFileSize), func(n func(string) string) string {
			return fmt.Sprintf("must not exceed %s (%s)", n("LBaseMaxBytes"), FormatSize(t.LBaseMaxBytes))
		})
	case t.MaxConcurrentCompactions < 1 || t.MaxConcurrentCompactions > maxCompactions:
		return bad("MaxConcurrentCompactions", strconv.Itoa(t.MaxConcurrentCompactions), fixed(fmt.Sprintf("must be between 1 and %d", maxCompactions)))
	case t.BlockCacheSize < minBlockCacheSize:
		return bad("BlockCacheSize", FormatSize(t.BlockCacheSize), fixed("must be at least "+FormatSize(minBlockCacheSize)))
	case t.BloomBitsPerKey < 0 || t.BloomBitsPerKey > maxBloomBitsPerKey:
		return bad("BloomBitsPerKey", strconv.Itoa(t.BloomBitsPerKey), fixed(fmt.Sprintf("must be between 0 (no filter) and %d", maxBloomBitsPerKey)))
	}
	return nil
}

// Apply sets t's knobs on o: MemTableSize, MemTableStopWritesThreshold,
// L0CompactionThreshold, L0StopWritesThreshold, LBaseMaxBytes,
// TargetFileSizes, CompactionConcurrencyRange (1 to
// MaxConcurrentCompactions), CacheSize and every level's FilterPolicy
// (NoFilterPolicy when BloomBitsPerKey is 0). It touches nothing else (FS,
// Merger, EventListener, FormatMajorVersion and the rest stay the caller's).
// NB: Pebble ignores CacheSize when o.Cache is set. Apply assumes t is valid.
func (t Tuning) Apply(o *pebble.Options) {
	o.MemTableSize = uint64(t.MemTableSize)
	o.MemTableStopWritesThreshold = t.MemTableStopWrites
	o.L0CompactionThreshold = t.L0CompactionThreshold
	o.L0StopWritesThreshold = t.L0StopWritesThreshold
	o.LBaseMaxBytes = t.LBaseMaxBytes
	// TargetFileSizes is indexed from Lbase, not by level: [0] is L0, [1]
	// Lbase, [2] Lbase+1 and so on.
	o.TargetFileSizes[0] = t.TargetFileSize
	o.TargetFileSizes[1] = t.TargetFileSize
	for i := 2; i < len(o.TargetFileSizes); i++ {
		o.TargetFileSizes[i] = o.TargetFileSizes[i-1] * 2
	}
	upper := t.MaxConcurrentCompactions
	o.CompactionConcurrencyRange = func() (int, int) { return 1, upper }
	o.CacheSize = t.BlockCacheSize
	var fp pebble.FilterPolicy = pebble.NoFilterPolicy
	if t.BloomBitsPerKey > 0 {
		fp = bloom.FilterPolicy(t.BloomBitsPerKey)
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = fp
	}
}

// Knob is one resolved setting, for display.
type Knob struct {
	Name  string `json:"name"`  // the flag name without leading dashes, e.g. "memtable-size"
	Value string `json:"value"` // human form; sizes as "64MiB"
}

// Knobs returns t's settings in a fixed order for display: the profile, then
// each flag in the order of shared/DESIGN.md, with memtable-stop-writes (the
// one knob without a flag) after memtable-size.
func (t Tuning) Knobs() []Knob {
	return []Knob{
		{"compaction-profile", string(t.Profile)},
		{"memtable-size", FormatSize(t.MemTableSize)},
		{"memtable-stop-writes", strconv.Itoa(t.MemTableStopWrites)},
		{"l0-compaction-threshold", strconv.Itoa(t.L0CompactionThreshold)},
		{"l0-stop-writes-threshold", strconv.Itoa(t.L0StopWritesThreshold)},
		{"lbase-max-bytes", FormatSize(t.LBaseMaxBytes)},
		{"target-file-size", FormatSize(t.TargetFileSize)},
		{"max-concurrent-compactions", strconv.Itoa(t.MaxConcurrentCompactions)},
		{"block-cache-size", FormatSize(t.BlockCacheSize)},
		{"bloom-bits-per-key", strconv.Itoa(t.BloomBitsPerKey)},
	}
}
