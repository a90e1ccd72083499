package membership

import (
	"bytes"
	"log/slog"
	"sync"
	"time"
)

// memberlistLog routes memberlist's "[LEVEL] memberlist: ..." lines to
// slog, at the level each line says (see levelOf).
type memberlistLog struct{ lg *slog.Logger }

func (w *memberlistLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	w.lg.Log(nil, levelOf(p), "gossip", "msg", line) //nolint:staticcheck // memberlist gives no context
	return len(p), nil
}

// levelOf returns the slog level of one of memberlist's log lines: its
// warnings at WARN, and its errors too (peers failing, which the errors
// are about, is routine for a failure detector: a node that must act on
// it says so itself); its informational and debug chatter at DEBUG.
func levelOf(line []byte) slog.Level {
	switch {
	case bytes.Contains(line, []byte("[WARN]")), bytes.Contains(line, []byte("[ERR]")), bytes.Contains(line, []byte("[ERROR]")):
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// logGateEvery is the interval of logGate: one line of a kind per 5s.
const logGateEvery = 5 * time.Second

// logGate lets one log line through per logGateEvery and counts the others.
type logGate struct {
	mu      sync.Mutex
	last    time.Time
	skipped int64
}

// allow reports whether a line may be logged now, and how many were held
// back since the last one.
func (g *logGate) allow() (skipped int64, ok bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < logGateEvery {
		g.skipped++
		return 0, false
	}
	g.last, skipped, g.skipped = now, g.skipped, 0
	return skipped, true
}
