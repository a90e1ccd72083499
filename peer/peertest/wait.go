package peertest

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds and fails the test, naming what it
// waited for, if it does not within the given time. Give within
// generously (tens of seconds for what takes a fraction of one): a loaded
// machine is slow, and a test that passes waits only as long as cond
// takes.
func WaitFor(t testing.TB, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
