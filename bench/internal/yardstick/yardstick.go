// Package yardstick runs the bench's yardstick servers (bench/baseline
// and bench/baseline/const) one way: the same bare fasthttp server
// options, serving until SIGINT or SIGTERM and then shutting down
// gracefully, so that the two differ only in their handlers.
package yardstick

import (
	"context"
	"log"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// shutdownGrace bounds the graceful shutdown after a signal.
const shutdownGrace = 10 * time.Second

// Serve serves h on addr (TCP over IPv4, as fasthttp's ListenAndServe),
// as server name, until SIGINT or SIGTERM, then shuts down (open
// connections closed, within 10s). It returns the listener's error, or
// nil after a signal.
func Serve(name, addr string, h fasthttp.RequestHandler) error {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	return serve(name, ln, h)
}

func serve(name string, ln net.Listener, h fasthttp.RequestHandler) error {
	srv := &fasthttp.Server{
		Handler:                      h,
		Name:                         name,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("%s: serving on %s", name, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		log.Printf("%s: shutdown: %v", name, err)
	}
	return nil
}
