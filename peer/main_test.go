package peer

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// every node a test cluster starts (coordinator, rebalancer,
// anti-entropy, hints), its engine and every call in flight on the fake
// network must stop when the cluster closes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
