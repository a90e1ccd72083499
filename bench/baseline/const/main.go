// Command const is the second yardstick: a bare fasthttp server that answers
// every request, whatever its method and path, with 200 and the same
// 100-byte body. It measures what fasthttp and the loopback network cost on
// their own, with no storage behind them.
//
// Usage:
//
//	const --addr 127.0.0.1:8091
//
// SIGINT or SIGTERM shuts it down.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

var body = bytes.Repeat([]byte("v"), 100)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "HTTP listen address")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "const: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	srv := &fasthttp.Server{
		Handler:                      func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) },
		Name:                         "const",
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe(*addr) }()
	log.Printf("const: serving on %s", *addr)
	select {
	case err := <-errc:
		log.Fatalf("const: serve: %v", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(sctx); err != nil {
			log.Printf("const: shutdown: %v", err)
		}
	}
}
