package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/ring"
)

// TestTransportOpenSpan: OpenSpan streams what the node's ServeSpan writes,
// for the span asked; bad bounds are a 400 and a missing secret a 401.
func TestTransportOpenSpan(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{Secrets: keyring.New("", []byte("s"))}, Config{NodeID: "n1", Secrets: keyring.New("", []byte("s"))})
	ctx := testCtx(t, 10*time.Second)
	body := bytes.Repeat([]byte("span-bytes "), 300_000) // over 3MiB: several deadline chunks
	ts.cl.SetSpanBody(body)
	rc, err := tr.OpenSpan(ctx, addr, 0x10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("stream: %d bytes of %d, %v", len(got), len(body), err)
	}
	reqs := ts.cl.SpanReqs()
	if len(reqs) != 1 || reqs[0] != [2]uint64{0x10, 0} {
		t.Errorf("ServeSpan asked for %x", reqs)
	}
	if _, err := tr.OpenSpan(ctx, addr, 0x20, 0x10); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("lo > hi: %v", err)
	}
	bad := mustNew(t, Config{})
	defer bad.Close()
	if _, err := bad.OpenSpan(ctx, addr, 0, 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the secret: %v", err)
	}
	// A donor that fails mid-stream ends the stream where it failed, with
	// nothing (no error text) appended: the stream's own trailer, which a
	// failed Send never writes, is how the receiver tells.
	ts.cl.SetSpanErr(errors.New("disk gone"))
	rc, err = tr.OpenSpan(ctx, addr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Errorf("failed stream: %d bytes, want the %d the node wrote and nothing else", len(got), len(body))
	}
}

// TestTransportReadPending: a key whose range the node is still pulling
// comes back as ErrRangePending naming the range's old owners, with the
// record the node holds, without failing the other keys batched with it.
func TestTransportReadPending(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)
	if err := tr.Apply(ctx, addr, testMutations("k", 2, 1)); err != nil {
		t.Fatal(err)
	}
	ts.cl.SetPending("k0001")
	held := ts.cl.Record("k0001")
	rec, err := tr.Read(ctx, addr, []byte("k0001"))
	var pe *peer.PendingError
	if !errors.Is(err, peer.ErrRangePending) || !errors.As(err, &pe) || !slices.Equal(pe.From, []string{"node-1", "node-4"}) {
		t.Errorf("pending key: %#v, want ErrRangePending from node-1 and node-4", err)
	}
	if len(held) == 0 || !bytes.Equal(rec, held) {
		t.Errorf("pending key: came with %x, want the record the node holds, %x", rec, held)
	}
	if rec, err := tr.Read(ctx, addr, []byte("k0000")); err != nil || rec == nil {
		t.Errorf("other key: %x, %v", rec, err)
	}
}

// TestTransportMerkle: Merkle fetches the node's tree of a range as the
// node builds it; bad parameters are a 400.
func TestTransportMerkle(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)
	if err := tr.Apply(ctx, addr, testMutations("k", 50, 1)); err != nil {
		t.Fatal(err)
	}
	rg := ring.Range{Start: 1 << 62, End: 3 << 62}
	got, err := tr.Merkle(ctx, addr, rg, 6)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ts.cl.LocalMerkle(ctx, rg, 6)
	if got.Root() != want.Root() || got.Root().Count == 0 || got.Depth() != want.Depth() {
		t.Errorf("tree root %+v depth %d, want %+v depth %d", got.Root(), got.Depth(), want.Root(), want.Depth())
	}
	for _, q := range []string{"start=x&end=1&depth=3", "start=1&end=2&depth=99", "start=1&end=2"} {
		code, body, err := fasthttp.Get(nil, "http://"+addr+"/internal/merkle?"+q)
		if err != nil || code != 400 {
			t.Errorf("%s: %d %s %v", q, code, body, err)
		}
	}
}

// stallSpan is a fakeLocal whose range streams send a first part, then
// wait for their context to end, as a donor paced to a halt would.
type stallSpan struct {
	*fakeLocal
	stopped chan error
}

func (s *stallSpan) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	if _, err := w.Write(make([]byte, 64<<10)); err != nil { // past the writer's buffer: sent
		return err
	}
	<-ctx.Done()
	s.stopped <- ctx.Err()
	return ctx.Err()
}

// TestTransportOpenSpanStops: ctx ending stops a range stream, in the
// middle of its body and while its headers are awaited, and the donor's
// side of a stream stops once its puller is gone.
func TestTransportOpenSpanStops(t *testing.T) {
	local := &stallSpan{fakeLocal: newFakeLocal(), stopped: make(chan error, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	srvTr := mustNew(t, Config{Local: local, Logger: slog.New(slog.DiscardHandler)})
	defer srvTr.Close()
	srv := &fasthttp.Server{Handler: srvTr.Handler(nil), CloseOnShutdown: true}
	go srv.Serve(ln)
	defer srv.Shutdown()
	tr := mustNew(t, Config{})
	defer tr.Close()

	ctx, cancel := context.WithCancel(context.Background())
	rc, err := tr.OpenSpan(ctx, ln.Addr().String(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if n, err := io.Copy(io.Discard, rc); err == nil {
		t.Errorf("the stream went on to its end (%d more bytes) after ctx ended", n)
	}
	rc.Close()
	select {
	case <-local.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the donor's stream did not stop once its puller was gone")
	}

	// A peer that takes the call and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	hctx, hcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer hcancel()
	if _, err := tr.OpenSpan(hctx, mute.Addr().String(), 0, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("OpenSpan of a mute peer: %v, want the context's deadline", err)
	}
}
