package transport

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestIdleReader: a read that waits longer than idle for data is ended by
// stop and fails saying why; data that keeps coming is read whole.
func TestIdleReader(t *testing.T) {
	pr, pw := io.Pipe()
	r := IdleReader(pr, 20*time.Millisecond, func() { pr.CloseWithError(errors.New("stopped")) })
	go func() {
		pw.Write([]byte("some"))
		// then nothing: the sender stalls
	}()
	b, err := io.ReadAll(r)
	if string(b) != "some" || err == nil || !strings.Contains(err.Error(), "no data for 20ms") {
		t.Fatalf("stalled stream: read %q, %v", b, err)
	}
	pw.Close()
	r = IdleReader(strings.NewReader("whole"), time.Second, func() { t.Error("stopped a moving stream") })
	if b, err := io.ReadAll(r); err != nil || string(b) != "whole" {
		t.Fatalf("moving stream: %q, %v", b, err)
	}
}
