package httpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// ExampleServer serves a store on an in-memory listener, writes a key
// whose name holds a slash, reads it back, and shuts down.
func ExampleServer() {
	srv, err := New(Config{
		Registry: prometheus.NewRegistry(),
		NodeID:   "example",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, newFakeStore(), &fakeOps{})
	if err != nil {
		panic(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	do := func(raw string) {
		c, err := ln.Dial()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, raw); err != nil {
			panic(err)
		}
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			panic(err)
		}
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode(), resp.Body())))
	}
	do("PUT /v1/kv/users%2F42?consistency=all HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nalice")
	do("GET /v1/kv/users%2F42 HTTP/1.1\r\nHost: x\r\n\r\n")
	do("GET /kvstore?key=users/42 HTTP/1.1\r\nHost: x\r\n\r\n")
	do("GET /v1/kv/nobody HTTP/1.1\r\nHost: x\r\n\r\n")

	if err := srv.Shutdown(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("Serve:", <-served)
	// Output:
	// 204
	// 200 alice
	// 200 {"key":"users/42","value":"alice"}
	// 404 {"error":"key not found"}
	// Serve: <nil>
}
