package engine

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/compaction"
)

// Options configure an Engine. Every field documents its default: the
// zero value of a field means its default, and EnsureDefaults fills them
// in. Where a thing can be turned off, an explicit value (Off, NoGrace)
// does it, never the zero value.
type Options struct {
	// Dir is the Pebble directory. The default value is DefaultDir.
	Dir string
	// FS is the filesystem; nil means the OS's. Tests pass vfs.NewMem().
	FS vfs.FS
	// Tuning is the compaction profile and knobs. The zero value means the
	// balanced profile.
	Tuning compaction.Tuning
	// GC decides which tombstones and expired records garbage collection
	// deletes (see CollectGarbage). The default grace period
	// (GC.TombstoneGrace) is DefaultTombstoneGrace; NoGrace means none.
	GC compaction.GC
	// Logger receives the engine's and Pebble's logs. The default is slog.Default().
	Logger *slog.Logger
	// OnStall, if set, is called when Pebble begins a write stall, after it
	// is logged. It runs on Pebble's commit path: it must not block.
	OnStall func(Stall)
	// ProfileOnStall, if set, is a directory where each write stall (at most
	// one a minute) leaves a CPU profile, a goroutine profile, the LSM
	// report and the stall with its advice. The default is none.
	ProfileOnStall string
	// RowCacheSize bounds the row cache, which keeps the newest record of
	// recently written and read keys so their reads skip the LSM. The
	// default value is DefaultRowCacheSize; Off disables it. fastcache rounds
	// a size below MinRowCacheSize up to it.
	RowCacheSize int64
	// SkipRowCacheWarm turns off the row cache's warm: by default, Open
	// fills the row cache from the store in the background, up to 90% of
	// its capacity (75% at 32MiB or less), so a restarted node reads from memory at once, and
	// does so again whenever ingesting or dropping a range empties it.
	SkipRowCacheWarm bool
	// GCInterval is how often the engine looks for tombstones and expired
	// records to drop (see CollectGarbage). The default value is
	// DefaultGCInterval; Off disables the background pass.
	GCInterval time.Duration
	// MinFreeSpace is the free-space floor of the data directory's
	// filesystem: below it, writes (and hints) are refused with
	// ErrDiskFull, so that flushes and compactions keep the room they
	// need, and taken again once space is back. The zero value is the
	// default, the smaller of 512MiB and 2% of the filesystem.
	MinFreeSpace FreeSpace
	// BallastSize is the size of the emergency ballast kept in the data
	// directory (BallastName) and deleted when the disk fills despite the
	// floor. The zero value is the default, half the floor, at most 64MiB
	// (worked out against the filesystem at Open); Off means none.
	BallastSize int64
	// KeepDamaged opens a store some of whose data or hint tables cannot
	// be read (a damaged footer, index or properties block): instead of
	// failing, Open records each such file (Corruption, state damaged,
	// Unreadable), holds its data span out of service, and leaves it to
	// the caller to excise and repair (a node with other replicas) or to
	// refuse to serve (DamagedAtOpen). A damaged table that holds node
	// metadata still fails Open: no replica can give it back.
	KeepDamaged bool
	// OnFatal is called when Pebble reports an error it cannot go on from
	// (a failed commit, a MANIFEST write), after the engine has logged it;
	// every later write fails with ErrFailed. It must not return: the
	// default exits the process with status 1, as Pebble's own logger
	// does. Should it return, the goroutine Pebble called it on ends
	// (runtime.Goexit), running its deferred calls, so no engine lock is
	// left held; Pebble's state is then beyond use.
	OnFatal func(msg string)
}

// Defaults of Options, as documented on its fields.
const (
	DefaultDir          = "ringkv-data"
	DefaultRowCacheSize = 32 << 20
	DefaultGCInterval   = time.Hour
	// DefaultTombstoneGrace is how long a tombstone is kept by default.
	DefaultTombstoneGrace = 24 * time.Hour
)

// MinRowCacheSize is the smallest row cache fastcache makes: it rounds
// anything smaller up to one 64KiB chunk for each of its 512 buckets.
const MinRowCacheSize = 32 << 20

// The explicit "off" values of Options. The zero value means the
// default, so turning a thing off needs a value of its own; Validate
// accepts these and refuses every other negative one.
const (
	// Off, as RowCacheSize, GCInterval or BallastSize, turns that off.
	Off = -1
	// NoGrace, as GC.TombstoneGrace, gives tombstones no grace: garbage
	// collection may drop one as soon as the GC horizon allows. (As a
	// grace of -1ns, compaction.GC reads it so without a case of its own.)
	NoGrace = -1
)

// EnsureDefaults replaces every zero field of o with its default. It
// leaves the off values (Off, NoGrace) and any invalid value as they are,
// for Validate. Its error is the balanced profile's, which cannot fail.
func (o *Options) EnsureDefaults() error {
	if o.Dir == "" && o.FS == nil {
		o.Dir = DefaultDir
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Tuning.Profile == "" {
		t, err := compaction.ProfileTuning(compaction.Balanced)
		if err != nil {
			return err
		}
		o.Tuning = t
	}
	if o.GC.TombstoneGrace == 0 {
		o.GC.TombstoneGrace = DefaultTombstoneGrace
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.RowCacheSize == 0 {
		o.RowCacheSize = DefaultRowCacheSize
	}
	if o.OnFatal == nil {
		lg := o.Logger
		o.OnFatal = func(string) {
			lg.Error("pebble cannot continue; exiting")
			os.Exit(1)
		}
	}
	return nil
}

// Validate reports the first field Open cannot run with: a *OptionsError,
// or the Tuning's *compaction.KnobError. It expects EnsureDefaults to have
// run.
func (o *Options) Validate() error {
	if err := o.Tuning.Validate(); err != nil {
		return err
	}
	if g := o.GC.TombstoneGrace; g <= 0 && g != NoGrace {
		return &OptionsError{Field: "GC.TombstoneGrace", Value: g.String(), Want: "must be positive", Off: "NoGrace"}
	}
	if o.GCInterval <= 0 && o.GCInterval != Off {
		return &OptionsError{Field: "GCInterval", Value: o.GCInterval.String(), Want: "must be positive", Off: "Off"}
	}
	if o.RowCacheSize <= 0 && o.RowCacheSize != Off {
		return &OptionsError{Field: "RowCacheSize", Value: compaction.FormatSize(o.RowCacheSize), Want: "must be positive", Off: "Off"}
	}
	if o.BallastSize < 0 && o.BallastSize != Off {
		return &OptionsError{Field: "BallastSize", Value: compaction.FormatSize(o.BallastSize), Want: "must not be negative", Off: "Off"}
	}
	return nil
}

// An OptionsError says which field of Options holds a value Validate
// refuses, and why. Its message calls the field by its Go name; a caller
// that sets fields from names of its own (ringkv serve's flags) gets the
// message in those from Message.
type OptionsError struct {
	Field string // the field at fault, e.g. "GCInterval"
	Value string // the value refused, as a person writes it: "0s", "1KiB"
	Want  string // what is accepted, e.g. "must be positive"
	// Off names the field's off value (Off, NoGrace), which it also
	// accepts; "" if it has none.
	Off string
}

func (e *OptionsError) Error() string {
	msg := "engine: " + e.Message(func(f string) string { return "Options." + f })
	if e.Off != "" {
		msg += ", or engine." + e.Off
	}
	return msg
}

// Message is the error with the field called name(Field). It leaves the
// off value out: a caller with names of its own turns things off its own
// way (ringkv serve's flags with 0, where they can).
func (e *OptionsError) Message(name func(field string) string) string {
	return fmt.Sprintf("%s (%s) %s", name(e.Field), e.Value, e.Want)
}
