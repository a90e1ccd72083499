package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/httpd"
	"github.com/ringkv/ringkv/peer"
)

// node is a real in-process ringkv node: an engine in memory, the
// coordinator over it, and the HTTP front end on a loopback port.
type node struct {
	addr string // HOST:PORT
	stop func()
}

// startNode starts a node; with, when set, changes its httpd.Config.
func startNode(with func(*httpd.Config)) (*node, error) {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		return nil, err
	}
	pn, err := peer.NewNode(peer.Config{NodeID: "n1", HTTPAddr: ln.Addr().String(), Engine: eng, Logger: lg})
	if err != nil {
		ln.Close()
		eng.Close()
		return nil, err
	}
	cfg := httpd.Config{Registry: prometheus.NewRegistry(), NodeID: "n1", Logger: lg}
	if with != nil {
		with(&cfg)
	}
	srv, err := httpd.New(cfg, pn, pn)
	if err != nil {
		ln.Close()
		pn.Close()
		eng.Close()
		return nil, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return &node{addr: ln.Addr().String(), stop: func() {
		srv.Shutdown(context.Background())
		<-served
		pn.Close()
		eng.Close()
	}}, nil
}

func newNode(t *testing.T, with func(*httpd.Config)) *node {
	t.Helper()
	n, err := startNode(with)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// answering is a server that answers every request with code and a JSON
// error, and counts the requests.
func answering(t *testing.T, code int) (addr string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, `{"error":"from the stand-in"}`+"\n")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), calls
}
