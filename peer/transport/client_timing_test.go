package transport

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/keyring"
)

// benchPeer serves a nopLocal on a loopback port until b ends, and
// returns its address: a peer whose own cost is about one allocation per
// batch (BenchmarkInternalApply), so that a client benchmark's allocs/op
// are mostly the client's.
func benchPeer(b *testing.B, secrets *keyring.Keyring) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Skip("no loopback:", err)
	}
	tr := mustNew(b, Config{Local: nopLocal{rec: testRecord(1, "value")}, Secrets: secrets, Logger: slog.New(slog.DiscardHandler)})
	srv := &fasthttp.Server{Handler: tr.Handler(nil), NoDefaultContentType: true}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
		<-served
		tr.Close()
	})
	return ln.Addr().String()
}

// BenchmarkClientApply is one replica write through ApplyAsync, answered
// before the next is sent (so one call a batch): the client's queueing,
// batching and request, with a peer that costs next to nothing; signed,
// with a cluster secret. ns/op on a shared machine is noise.
func BenchmarkClientApply(b *testing.B) {
	forSigning(b, func(b *testing.B, secrets *keyring.Keyring) {
		addr := benchPeer(b, secrets)
		tr := mustNew(b, Config{NodeID: "n1", Secrets: secrets, Logger: slog.New(slog.DiscardHandler)})
		defer tr.Close()
		ms := testMutations("user:", 1, 1)
		answered := make(chan error, 1)
		done := func(err error) { answered <- err }
		b.ReportAllocs()
		for b.Loop() {
			tr.ApplyAsync(addr, ms, time.Now().Add(10*time.Second), done)
			if err := <-answered; err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClientRead is BenchmarkClientApply's read: one ReadAsync at a
// time.
func BenchmarkClientRead(b *testing.B) {
	forSigning(b, func(b *testing.B, secrets *keyring.Keyring) {
		addr := benchPeer(b, secrets)
		tr := mustNew(b, Config{NodeID: "n1", Secrets: secrets, Logger: slog.New(slog.DiscardHandler)})
		defer tr.Close()
		key := []byte("user:0001")
		answered := make(chan error, 1)
		got := func(_ []byte, err error) { answered <- err }
		b.ReportAllocs()
		for b.Loop() {
			tr.ReadAsync(addr, key, time.Now().Add(10*time.Second), got)
			if err := <-answered; err != nil {
				b.Fatal(err)
			}
		}
	})
}

// forSigning runs f unsigned, then signed with a cluster secret.
func forSigning(b *testing.B, f func(b *testing.B, secrets *keyring.Keyring)) {
	b.Run("plain", func(b *testing.B) { f(b, nil) })
	b.Run("signed", func(b *testing.B) { f(b, keyring.New("bench", []byte("secret"))) })
}
