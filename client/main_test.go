package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a
// Client's connections (net/http keeps a reader and a writer goroutine
// for each) must go with CloseIdleConnections, and the test servers must
// stop.
//
// The servers are httpd's, on fasthttp, whose own housekeeping is let
// off: the date refresher runs for the life of the process, and a stopped
// server's worker-pool cleaner finishes a sleep of up to 10s before it
// notices.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
