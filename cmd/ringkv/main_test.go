package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// in-process parts (secret file watchers, servers, the goroutines that wait
// for a node's process) must stop with the test that started them. The
// nodes themselves are processes, killed by each test's cleanup.
//
// fasthttp starts one goroutine per process, the first time a server
// serves, that refreshes its Date header each second and never stops: it
// is the library's, not a leak of ours; so is the worker-pool cleaner of
// a stopped server (client_test's), which finishes a sleep of up to 10s
// before it notices, longer than a short run of these tests lasts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
