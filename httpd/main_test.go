package httpd

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// server a test starts (its workers, the secret file pollers, backup and
// range streams, the retrying listener) must stop when the test ends.
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
