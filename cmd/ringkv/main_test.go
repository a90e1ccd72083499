package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// in-process parts (secret file watchers, servers, the goroutines that wait
// for a node's process) must stop with the test that started them. The
// nodes themselves are processes, killed by each test's cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
