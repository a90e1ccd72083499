// Package wait is the one poll loop of ringkv's tests: For waits for a
// condition the code offers no event for. It imports nothing of ringkv,
// so that every package's tests can use it, peer/transport's among them
// (peertest imports transport).
package wait

import (
	"testing"
	"time"
)

// For polls cond until it holds and fails the test, naming what it
// waited for, if it does not within the given time. Give within
// generously (tens of seconds for what takes a fraction of one): a loaded
// machine is slow, and a test that passes waits only as long as cond
// takes.
func For(t testing.TB, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
