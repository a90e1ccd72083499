package transport

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/httpd/tlstest"
)

// TestTLSRefusalNamed: a call whose certificate the peer refuses fails
// with an error that says so (fasthttp alone reports a connection closed
// before the first response byte), and a call the peer accepts works
// through the transport's own TLS.
func TestTLSRefusalNamed(t *testing.T) {
	ca, other := tlstest.NewCA(t, "cluster"), tlstest.NewCA(t, "rogue")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`["127.0.0.1:7946"]`) }}
	tl := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, "n1").TLS(t)},
		ClientCAs:    ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	})
	go srv.Serve(tl)
	defer srv.Shutdown()
	addr := ln.Addr().String()
	call := func(cert tls.Certificate) error {
		tr := mustNew(t, Config{NodeID: "n2", TLS: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}})
		defer tr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := tr.GossipAddrs(ctx, addr)
		return err
	}
	if err := call(ca.Issue(t, "n2").TLS(t)); err != nil {
		t.Fatalf("a call with the cluster's certificate: %v", err)
	}
	err = call(other.Issue(t, "n2").TLS(t))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a call with another CA's certificate: %v, want an error naming the certificate", err)
	}
	t.Log(err)
}
