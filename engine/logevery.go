package engine

import (
	"fmt"
	"sync"
	"time"
)

// logInterval is the shortest time between two log lines of one kind
// that may repeat on every retry (a failing flush retries at once).
const logInterval = 5 * time.Second

// logEvery lets a message of each kind through at most once per interval,
// and counts the ones it holds back. It is safe for concurrent use.
type logEvery struct {
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex
	kinds    map[string]*logKind // REQUIRES mu; keys are a fixed set of formats
}

type logKind struct {
	last    time.Time
	skipped int
}

func newLogEvery(interval time.Duration) *logEvery {
	return &logEvery{interval: interval, now: time.Now, kinds: map[string]*logKind{}}
}

// allow reports whether a message of kind may be logged now; if so, msg
// comes back with how many were held back since the last one logged.
func (l *logEvery) allow(kind, msg string) (string, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{}
		l.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.interval {
		k.skipped++
		return "", false
	}
	k.last = now
	if n := k.skipped; n > 0 {
		k.skipped = 0
		msg = fmt.Sprintf("%s (%d more since last logged)", msg, n)
	}
	return msg, true
}
