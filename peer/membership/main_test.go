package membership

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// Gossip a test starts, memberlist's included, must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
