package peer

import (
	"testing"
	"time"
)

// TestLogGate: the first line passes, those within LogGateEvery of the
// last one passed are held back and counted, and the next to pass says
// how many were.
func TestLogGate(t *testing.T) {
	var g LogGate
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at      time.Duration
		skipped int64
		ok      bool
	}{
		{0, 0, true},
		{time.Second, 0, false},
		{LogGateEvery - 1, 0, false},
		{LogGateEvery, 2, true},
		{LogGateEvery + time.Second, 0, false},
		{3 * LogGateEvery, 1, true},
		{5 * LogGateEvery, 0, true},
	}
	for _, s := range steps {
		skipped, ok := g.allowAt(t0.Add(s.at))
		if skipped != s.skipped || ok != s.ok {
			t.Fatalf("at %s: (%d, %v), want (%d, %v)", s.at, skipped, ok, s.skipped, s.ok)
		}
	}
}
