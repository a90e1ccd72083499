package sstable

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// every stream test's writer and reader goroutines, and the Pebble a
// test opens, must stop with the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
