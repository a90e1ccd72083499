package membership

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
)

// TestMemberlistLogLevels: memberlist's warnings and errors come out at
// WARN, its informational and debug chatter at DEBUG, through the logger
// memberlist is given (a *log.Logger over memberlistLog, as memberlist
// builds it from LogOutput).
func TestMemberlistLogLevels(t *testing.T) {
	var out bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ml := log.New(&memberlistLog{lg: lg}, "", log.LstdFlags)
	for _, tc := range []struct{ line, level string }{
		{"[WARN] memberlist: Was able to connect to b over TCP but UDP probes failed, network may be misconfigured", "WARN"},
		{"[ERR] memberlist: Failed to send ping: write udp: connection refused", "WARN"},
		{"[ERROR] memberlist: Failed to decode ping request", "WARN"},
		{"[INFO] memberlist: Suspect b has failed, no acks received", "DEBUG"},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:4444", "DEBUG"},
	} {
		out.Reset()
		ml.Print(tc.line)
		want := fmt.Sprintf("level=%s msg=gossip", tc.level)
		if got := out.String(); !strings.Contains(got, want) || !strings.Contains(got, tc.line) {
			t.Errorf("memberlist's %q came out as %q, want %s", tc.line, got, want)
		}
	}
}
