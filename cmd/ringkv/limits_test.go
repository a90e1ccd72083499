package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLimitFlagErrors: a bad limit flag is one line naming it, exit 2.
func TestLimitFlagErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	f := func(wantInMsg string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"serve"}, args...), nil, &out, &errb)
		msg := errb.String()
		if code != exitUsage || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, wantInMsg) {
			t.Fatalf("serve %v: exit %d, stderr %q; want exit 2 and one line containing %q", args, code, msg, wantInMsg)
		}
	}
	f("--max-conns", "--max-conns", "0")
	f("--max-conns-per-ip", "--max-conns-per-ip", "-1")
	f("--rate-limit", "--rate-limit", "-5")
	f("--rate-limit", "--rate-limit", "NaN")
	f("--rate-burst", "--rate-burst", "-1")
	f("--max-scan-bytes", "--max-scan-bytes", "10")
	f("--max-scan-bytes", "--max-scan-bytes", "2GiB")
	f("--max-concurrent-scans", "--max-concurrent-scans", "0")
	f("--max-hint-bytes", "--max-hint-bytes", "lots")
	f("--max-hint-age", "--max-hint-age", "-1h")
}

// TestLimitDefaults: --max-conns follows the open-file limit; the flags
// reach httpd and peer with 0 meaning "none" where documented.
func TestLimitDefaults(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{{64, 64}, {1024, 512}, {20000, 10000}, {1 << 20, 10000}} {
		if got := defaultMaxConns(tc.nofile); got != tc.want {
			t.Errorf("defaultMaxConns(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
	l := defaultLimitFlags()
	if lim := l.httpd(); lim.MaxConnsPerIP != 1000 || lim.RateLimit != 0 || lim.MaxScanBytes != 8<<20 {
		t.Errorf("default httpd limits %+v", lim)
	}
	l.maxConnsPerIP, l.maxHintBytes, l.maxHintAge = 0, 0, 0
	if lim := l.httpd(); lim.MaxConnsPerIP >= 0 {
		t.Errorf("--max-conns-per-ip 0 gives httpd %d, want negative (none)", lim.MaxConnsPerIP)
	}
	if b, a := l.hintBounds(); b >= 0 || a >= 0 {
		t.Errorf("hint bounds 0 give peer %d, %s; want negative (none)", b, a)
	}
}
