package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
)

// sizeUnits are the suffixes a size flag accepts, longest first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// parseSize parses sizes like "64MiB", "1.5GiB", "100MB" or "4096".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("%q is not a size (want e.g. 64MiB)", s)
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a size (want e.g. 64MiB)", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("size %q is negative", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
}

// sizeFlag is a flag.Value holding a byte size.
type sizeFlag struct{ v *int64 }

func (f sizeFlag) String() string {
	if f.v == nil || *f.v == 0 {
		return "" // unset overrides print no default
	}
	return compaction.FormatSize(*f.v)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.v = n
	return nil
}

// freeSpaceFlag is --min-free-space: a size ("512MiB"), a share of the
// filesystem ("2%"), or 0 for no floor.
type freeSpaceFlag struct{ v *engine.FreeSpace }

func (f freeSpaceFlag) String() string {
	if f.v == nil {
		return ""
	}
	return f.v.String()
}

func (f freeSpaceFlag) Set(s string) error {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || v < 0 || v >= 100 {
			return fmt.Errorf("%q is not a percentage from 0 to 100 (want e.g. 2%%)", s)
		}
		*f.v = engine.FreeSpace{Percent: v, Off: v == 0}
		return nil
	}
	n, err := parseSize(t)
	if err != nil {
		return fmt.Errorf("%v, or a percentage of the filesystem such as 2%%", err)
	}
	*f.v = engine.FreeSpace{Bytes: n, Off: n == 0}
	return nil
}
