package memtable

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// the concurrent merges of the tests must all have ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
