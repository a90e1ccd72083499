package transport

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a
// Transport's senders and its calls in flight, and the test servers' range
// streams, must stop when the test closes them.
//
// fasthttp's own housekeeping is let off: the date refresher and the
// default dialer's address cache cleaner run for the life of the process,
// and a stopped server's worker-pool cleaner and an idle client's
// connection cleaners each finish a sleep of up to 10s before they notice.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
	)
}

// waitFor is peertest.WaitFor, which this package's tests cannot import
// (peertest imports transport): it polls cond until it holds and fails
// the test, naming what it waited for, if it does not within the given
// time. Tests wait on an event instead where the code offers one.
func waitFor(t testing.TB, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
