package membership

import (
	"bytes"
	"log/slog"
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
