package yardstick

import (
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestServeUntilSignal: serve answers with the handler and the server's
// name, and returns nil once SIGTERM comes (the signal is caught, not
// fatal); a taken address is Serve's error.
func TestServeUntilSignal(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := Serve("taken", addr, func(*fasthttp.RequestCtx) {}); err == nil {
		t.Error("Serve on a taken address returned nil")
	}
	done := make(chan error, 1)
	go func() { done <- serve("stick", ln, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }) }()
	// The listener is bound, so this waits for the answer; once it has
	// come, serve has its SIGTERM handler in place.
	resp, err := http.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || resp.Header.Get("Server") != "stick" {
		t.Errorf("answer %q, Server %q", body, resp.Header.Get("Server"))
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not return after SIGTERM")
	}
}
