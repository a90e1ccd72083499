package peer

import (
	"sync"
	"time"
)

// LogGateEvery is the interval of LogGate: one line of a kind per 5s, so
// that a condition repeated on every request (a full disk refusing
// hints, a peer sending refused member-list entries every gossip round)
// is said, with a count, rather than flood the log.
const LogGateEvery = 5 * time.Second

// LogGate lets one log line through per LogGateEvery and counts the
// others. The zero value is ready; it is safe for concurrent use. It is
// exported for peer/membership, which gates its lines as peer does.
type LogGate struct {
	mu      sync.Mutex
	last    time.Time
	skipped int64
}

// Allow reports whether a line may be logged now, and how many were held
// back since the last one.
func (g *LogGate) Allow() (skipped int64, ok bool) { return g.allowAt(time.Now()) }

// allowAt is Allow at now, for tests.
func (g *LogGate) allowAt(now time.Time) (skipped int64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < LogGateEvery {
		g.skipped++
		return 0, false
	}
	g.last, skipped, g.skipped = now, g.skipped, 0
	return skipped, true
}
