package compaction

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// TestProfiles runs testdata/profiles:
//
//	profile NAME [flag=value ...]
//	----
//	the resolved knobs, one "flag=value" per line, or "error: ..."
//
// Rewrite the expected output with `go test ./compaction/ -rewrite`.
func TestProfiles(t *testing.T) {
	datadriven.RunTest(t, "testdata/profiles", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "profile" {
			d.Fatalf(t, "unknown command %q", d.Cmd)
		}
		if len(d.CmdArgs) == 0 || len(d.CmdArgs[0].Vals) != 0 {
			d.Fatalf(t, "usage: profile NAME [flag=value ...]")
		}
		var o Overrides
		for _, arg := range d.CmdArgs[1:] {
			if err := setOverride(&o, arg.Key, arg.SingleVal(t)); err != nil {
				d.Fatalf(t, "%v", err)
			}
		}
		tu, err := Resolve(Profile(d.CmdArgs[0].Key), o)
		if err != nil {
			return "error: " + err.Error()
		}
		var b strings.Builder
		for _, k := range tu.Knobs() {
			fmt.Fprintf(&b, "%s=%s\n", k.Name, k.Value)
		}
		return b.String()
	})
}

// setOverride sets the field of o that flag overrides, as cmd/ would.
func setOverride(o *Overrides, flag, val string) error {
	size := func(dst **int64) error {
		n, err := parseSize(val)
		*dst = &n
		return err
	}
	num := func(dst **int) error {
		n, err := strconv.Atoi(val)
		*dst = &n
		return err
	}
	switch flag {
	case "memtable-size":
		return size(&o.MemTableSize)
	case "l0-compaction-threshold":
		return num(&o.L0CompactionThreshold)
	case "l0-stop-writes-threshold":
		return num(&o.L0StopWritesThreshold)
	case "lbase-max-bytes":
		return size(&o.LBaseMaxBytes)
	case "target-file-size":
		return size(&o.TargetFileSize)
	case "max-concurrent-compactions":
		return num(&o.MaxConcurrentCompactions)
	case "block-cache-size":
		return size(&o.BlockCacheSize)
	case "bloom-bits-per-key":
		return num(&o.BloomBitsPerKey)
	}
	return fmt.Errorf("unknown flag %q", flag)
}

// parseSize parses what FormatSize writes ("64MiB", "512KiB", "7B") and
// plain byte counts; it is the test's stand-in for cmd/'s size flags.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", gib}, {"MiB", mib}, {"KiB", kib}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func TestParseProfile(t *testing.T) {
	f := func(in string, want Profile, wantErr string) {
		t.Helper()
		got, err := ParseProfile(in)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Fatalf("ParseProfile(%q) error = %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("ParseProfile(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f("balanced", Balanced, "")
	f("write-heavy", WriteHeavy, "")
	f(" Read-Heavy\n", ReadHeavy, "")
	f("", "", `unknown Profile "": want balanced, write-heavy or read-heavy`)
	f("fast", "", `unknown Profile "fast": want balanced, write-heavy or read-heavy`)

	want := []Profile{Balanced, WriteHeavy, ReadHeavy}
	if got := Profiles(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Profiles() = %v, want %v", got, want)
	}
	for _, p := range Profiles() {
		if got, err := ParseProfile(string(p)); err != nil || got != p {
			t.Fatalf("ParseProfile(%q) = %q, %v", p, got, err)
		}
	}
}

// TestProfilesValid checks that every preset passes its own validation, so
// a node started with no flags never fails on a profile.
func TestProfilesValid(t *testing.T) {
	for _, p := range Profiles() {
		tu, err := ProfileTuning(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := tu.Validate(); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if tu.Profile != p {
			t.Fatalf("%s: Profile = %q", p, tu.Profile)
		}
		if r, err := Resolve(p, Overrides{}); err != nil || r != tu {
			t.Fatalf("%s: Resolve with no overrides = %+v, %v; want %+v", p, r, err, tu)
		}
	}
	if _, err := ProfileTuning("fast"); err == nil {
		t.Fatal("ProfileTuning(fast) succeeded")
	}
}

// TestApply checks that every profile's knobs land in pebble.Options and
// survive Pebble's own EnsureDefaults and Validate.
func TestApply(t *testing.T) {
	for _, p := range append(Profiles(), "no-bloom") {
		t.Run(string(p), func(t *testing.T) {
			var tu Tuning
			var err error
			if p == "no-bloom" {
				zero := 0
				tu, err = Resolve(Balanced, Overrides{BloomBitsPerKey: &zero})
			} else {
				tu, err = ProfileTuning(p)
			}
			if err != nil {
				t.Fatal(err)
			}
			merger := &pebble.Merger{Name: "test"}
			o := &pebble.Options{Merger: merger}
			tu.Apply(o)
			o.EnsureDefaults()
			if err := o.Validate(); err != nil {
				t.Fatalf("pebble rejects %s: %v", p, err)
			}
			if o.Merger != merger {
				t.Fatal("Apply replaced the Merger")
			}
			check := func(name string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			check("MemTableSize", o.MemTableSize, uint64(tu.MemTableSize))
			check("MemTableStopWritesThreshold", o.MemTableStopWritesThreshold, tu.MemTableStopWrites)
			check("L0CompactionThreshold", o.L0CompactionThreshold, tu.L0CompactionThreshold)
			check("L0StopWritesThreshold", o.L0StopWritesThreshold, tu.L0StopWritesThreshold)
			check("LBaseMaxBytes", o.LBaseMaxBytes, tu.LBaseMaxBytes)
			check("CacheSize", o.CacheSize, tu.BlockCacheSize)
			check("TargetFileSize(L0)", o.TargetFileSize(0, 3), tu.TargetFileSize)
			check("TargetFileSize(Lbase)", o.TargetFileSize(3, 3), tu.TargetFileSize)
			check("TargetFileSize(Lbase+1)", o.TargetFileSize(4, 3), 2*tu.TargetFileSize)
			check("TargetFileSize(L6, base L1)", o.TargetFileSize(6, 1), 32*tu.TargetFileSize)
			lo, hi := o.CompactionConcurrencyRange()
			check("CompactionConcurrencyRange lower", lo, 1)
			check("CompactionConcurrencyRange upper", hi, tu.MaxConcurrentCompactions)
			for i := range o.Levels {
				fp := o.Levels[i].FilterPolicy
				if tu.BloomBitsPerKey == 0 {
					check(fmt.Sprintf("Levels[%d].FilterPolicy", i), fp, pebble.NoFilterPolicy)
				} else {
					check(fmt.Sprintf("Levels[%d].FilterPolicy", i), fp, pebble.FilterPolicy(bloom.FilterPolicy(tu.BloomBitsPerKey)))
				}
			}
			if tu.BloomBitsPerKey > 0 && len(o.Filters) == 0 {
				t.Error("EnsureDefaults registered no filter for reading")
			}
		})
	}
}

// TestApplyOverwrites checks that Apply replaces earlier values, so a bloom
// filter or cache set by someone else cannot outlive an explicit 0 bits.
func TestApplyOverwrites(t *testing.T) {
	tu, err := ProfileTuning(ReadHeavy)
	if err != nil {
		t.Fatal(err)
	}
	o := &pebble.Options{}
	tu.Apply(o)
	zero := 0
	tu, err = Resolve(WriteHeavy, Overrides{BloomBitsPerKey: &zero})
	if err != nil {
		t.Fatal(err)
	}
	tu.Apply(o)
	if o.Levels[0].FilterPolicy != pebble.NoFilterPolicy || o.MemTableSize != 128*mib {
		t.Fatalf("second Apply did not win: filter %v, memtable %d", o.Levels[0].FilterPolicy, o.MemTableSize)
	}
}

func TestFormatSize(t *testing.T) {
	f := func(n int64, want string) {
		t.Helper()
		if got := FormatSize(n); got != want {
			t.Fatalf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseSize(want); err != nil || back != n {
			t.Fatalf("parseSize(%q) = %d, %v; want %d", want, back, err, n)
		}
	}
	f(0, "0B")
	f(1, "1B")
	f(1000, "1000B")
	f(kib, "1KiB")
	f(1536*kib, "1536KiB")
	f(64*mib, "64MiB")
	f(4*gib, "4GiB")
	f(3<<40, "3TiB")
	f(4*gib-1, "4294967295B")
	f(-mib, "-1MiB")
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[uint64]string{0: "0B", 512: "512B", 1536: "1.5KiB", 65331200: "62.3MiB", 5 << 29: "2.50GiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
