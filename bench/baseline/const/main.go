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
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/ringkv/ringkv/bench/internal/yardstick"
	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "HTTP listen address")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "const: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	body := bytes.Repeat([]byte("v"), 100)
	if err := yardstick.Serve("const", *addr, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) }); err != nil {
		log.Fatalf("const: serve: %v", err)
	}
}
