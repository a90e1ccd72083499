package compaction

import (
	"fmt"
	"strconv"
)

// FormatSize writes n in the largest binary unit that divides it exactly
// ("64MiB", "1536KiB"), or as plain bytes, so the text parses back to n
// (as the --*-size flags read it).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", gib}, {"MiB", mib}, {"KiB", kib}} {
		if n != 0 && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// FormatBytes writes a byte count for people, rounded, in binary units:
// 512B, 1.5KiB, 62.3MiB, 1.25GiB (progress lines, summaries, reports).
func FormatBytes(n uint64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.2fGiB", float64(n)/gib)
	case n >= mib:
		return fmt.Sprintf("%.1fMiB", float64(n)/mib)
	case n >= kib:
		return fmt.Sprintf("%.1fKiB", float64(n)/kib)
	}
	return fmt.Sprintf("%dB", n)
}
