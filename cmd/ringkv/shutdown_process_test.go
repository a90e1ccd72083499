package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopEngineBounded: a flush and close that never end (Pebble retries
// a flush that cannot create its output at once and without end, and
// Close waits for it) hold the shutdown no longer than the bound: exit 1,
// saying why. One that ends answers its own code.
func TestStopEngineBounded(t *testing.T) {
	var logs bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&logs, nil))
	hang := make(chan struct{})
	defer close(hang)
	if code := stopEngine(lg, 50*time.Millisecond, func() int { <-hang; return exitOK }); code != exitFailure {
		t.Errorf("a stop that hangs: code %d, want %d", code, exitFailure)
	}
	if !strings.Contains(logs.String(), "did not end within 50ms") {
		t.Errorf("the log does not say why: %s", logs.String())
	}
	for _, want := range []int{exitOK, exitFailure} {
		if code := stopEngine(lg, time.Hour, func() int { return want }); code != want {
			t.Errorf("a stop that ends with %d: code %d", want, code)
		}
	}
}

// TestShutdownWithDataDirGone: SIGTERM on a node whose data directory was
// removed under it ends the process promptly, exit 1, rather than leaving
// it running.
func TestShutdownWithDataDirGone(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := startNode(t, data, "--shutdown-timeout", "2s")
	p.waitHealthy()
	for i := range 50 {
		p.put(fmt.Sprintf("k%d", i), "v")
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Generous: the bounds are 2s for the requests and 2s for the
	// engine, but a loaded machine is slow to stop the rest.
	if code := p.exitCode(2 * time.Minute); code != exitFailure {
		t.Errorf("SIGTERM with the data directory gone: exit %d, want %d\n%s", code, exitFailure, p.logs)
	}
}
