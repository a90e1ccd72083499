package transport

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// nopLocal stores nothing and has one 100-byte record of every key: the
// handler's own cost, without a store's.
type nopLocal struct{ rec []byte }

func (l nopLocal) ApplyLocal([]peer.Mutation) error { return nil }
func (l nopLocal) Paxos(peer.PaxosRequest) (peer.PaxosReply, error) {
	return peer.PaxosReply{OK: true}, nil
}
func (l nopLocal) ReadLocal(dst, _ []byte) ([]byte, error) {
	return append(dst, l.rec...), nil
}
func (nopLocal) ScanLocal(context.Context, peer.LocalScan) (peer.LocalPage, error) {
	return peer.LocalPage{}, nil
}
func (nopLocal) GossipAddrs() []string                                      { return nil }
func (nopLocal) ServeSpan(context.Context, uint64, uint64, io.Writer) error { return nil }
func (nopLocal) LocalMerkle(context.Context, ring.Range, int) (*peer.Merkle, error) {
	return nil, nil
}

// benchInternal serves raw, over and over, through the handler, as httpd
// calls it, and checks its status.
func benchInternal(b *testing.B, raw []byte, want int) {
	tr := mustNew(b, Config{Local: nopLocal{rec: testRecord(1, string(make([]byte, 100)))}, Logger: slog.New(slog.DiscardHandler)})
	defer tr.Close()
	h := tr.Handler(nil)
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	ctx.Init(&req, nil, nil)
	h(&ctx)
	if ctx.Response.StatusCode() != want {
		b.Fatalf("status %d, want %d: %s", ctx.Response.StatusCode(), want, ctx.Response.Body())
	}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h(&ctx)
	}
}

// BenchmarkInternalApply is a replica's side of a batch of 16 writes:
// decode, check and hand to Local.ApplyLocal.
func BenchmarkInternalApply(b *testing.B) {
	benchInternal(b, rawRequest("POST", "/internal/apply", AppendApply(nil, testMutations("user:", 16, 1))), fasthttp.StatusNoContent)
}

// BenchmarkInternalRead is a replica's side of a batch of 16 reads, the
// answer built in the response's buffer.
func BenchmarkInternalRead(b *testing.B) {
	keys := make([][]byte, 16)
	for i, m := range testMutations("user:", 16, 1) {
		keys[i] = m.Key
	}
	benchInternal(b, rawRequest("POST", "/internal/read", AppendRead(nil, keys)), fasthttp.StatusOK)
}
