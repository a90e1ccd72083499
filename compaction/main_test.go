package compaction

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// the stall tests' Pebble and their writers must stop with
// the test that started them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
