package engine

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: an
// engine's loops (disk guard, GC, row cache warm, stall capture) and
// Pebble's must all stop when a test closes what it opened. A child
// process of runInChild checks nothing: it runs a test that leaves a
// failed Pebble open on purpose.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}
