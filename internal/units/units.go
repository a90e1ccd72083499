// Package units formats byte counts for people: the CLI's progress and
// summaries, and the benchmark reports.
package units

import "fmt"

// Bytes writes a byte count in binary units: 512B, 1.5KiB, 62.3MiB,
// 1.25GiB.
func Bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
