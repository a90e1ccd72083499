package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/compaction"
)

// TestOptionsEnsureDefaults: the zero value of each field becomes its
// documented default; explicit values, off values included, stay.
func TestOptionsEnsureDefaults(t *testing.T) {
	var o Options
	if err := o.EnsureDefaults(); err != nil {
		t.Fatal(err)
	}
	balanced, _ := compaction.ProfileTuning(compaction.Balanced)
	switch {
	case o.Dir != "ringkv-data" || o.FS != vfs.Default:
		t.Fatalf("Dir %q FS %v", o.Dir, o.FS)
	case o.Tuning != balanced:
		t.Fatalf("Tuning %+v, want balanced", o.Tuning)
	case o.GC.TombstoneGrace != 24*time.Hour || o.GCInterval != time.Hour || o.RowCacheSize != 32<<20:
		t.Fatalf("grace %s, GC interval %s, row cache %d", o.GC.TombstoneGrace, o.GCInterval, o.RowCacheSize)
	case o.BallastSize != 0 || o.MinFreeSpace != (FreeSpace{}):
		t.Fatalf("ballast %d, floor %+v: their zero value is the default, worked out at Open", o.BallastSize, o.MinFreeSpace)
	case o.Logger == nil || o.OnFatal == nil:
		t.Fatal("Logger and OnFatal must be set")
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	off := Options{FS: vfs.NewMem(), GC: compaction.GC{TombstoneGrace: NoGrace}, GCInterval: Off, RowCacheSize: Off, BallastSize: Off}
	if err := off.EnsureDefaults(); err != nil {
		t.Fatal(err)
	}
	if off.Dir != "" || off.GC.TombstoneGrace != NoGrace || off.GCInterval != Off || off.RowCacheSize != Off || off.BallastSize != Off {
		t.Fatalf("off values changed: %+v", off)
	}
	if err := off.Validate(); err != nil {
		t.Fatalf("off values refused: %v", err)
	}
}

// TestOptionsValidate: each refused value is reported as an *OptionsError
// naming its field (the tuning's as a *compaction.KnobError).
func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*Options)
		field string // "" means valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"grace -1s", func(o *Options) { o.GC.TombstoneGrace = -time.Second }, "GC.TombstoneGrace"},
		{"gc interval -2ns", func(o *Options) { o.GCInterval = -2 }, "GCInterval"},
		{"row cache small", func(o *Options) { o.RowCacheSize = 1 << 20 }, ""},
		{"row cache -2", func(o *Options) { o.RowCacheSize = -2 }, "RowCacheSize"},
		{"ballast -64", func(o *Options) { o.BallastSize = -64 }, "BallastSize"},
		{"tuning", func(o *Options) { o.Tuning.MemTableSize = 1 }, "MemTableSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Options
			if err := o.EnsureDefaults(); err != nil {
				t.Fatal(err)
			}
			tc.set(&o)
			err := o.Validate()
			var oe *OptionsError
			var ke *compaction.KnobError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "":
			case errors.As(err, &oe) && oe.Field == tc.field:
			case errors.As(err, &ke) && ke.Field == tc.field:
			default:
				t.Fatalf("err %v, want one naming %s", err, tc.field)
			}
		})
	}
	o := Options{GCInterval: -2}
	_ = o.EnsureDefaults()
	if got, want := o.Validate().Error(), "engine: Options.GCInterval (-2ns) must be positive, or engine.Off"; got != want {
		t.Fatalf("Error() %q, want %q", got, want)
	}
}
