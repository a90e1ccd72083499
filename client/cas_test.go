package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ringkv/ringkv/client"
)

// TestCompareAndSwap: PutIfAbsent, CompareAndSwap and DeleteIf against a
// real node, with the current version of a failed condition, and
// GetVersioned's serial read.
func TestCompareAndSwap(t *testing.T) {
	n := newNode(t, nil)
	c := newClient(t, n.addr)
	ctx := context.Background()
	v1, err := c.PutIfAbsent(ctx, "lock", []byte("owner-a"))
	if err != nil || v1 == "" {
		t.Fatalf("PutIfAbsent = %q, %v", v1, err)
	}
	_, err = c.PutIfAbsent(ctx, "lock", []byte("owner-b"))
	var ce *client.ConditionError
	if !errors.Is(err, client.ErrConditionFailed) || !errors.As(err, &ce) || !ce.Exists || ce.Current != v1 {
		t.Fatalf("a second PutIfAbsent: %v (%+v), want a ConditionError at %q", err, ce, v1)
	}
	val, ver, err := c.GetVersioned(ctx, "lock")
	if err != nil || string(val) != "owner-a" || ver != v1 {
		t.Fatalf("GetVersioned = %q %q %v", val, ver, err)
	}
	v2, err := c.CompareAndSwap(ctx, "lock", v1, []byte("owner-c"))
	if err != nil || v2 == "" || v2 == v1 {
		t.Fatalf("CompareAndSwap = %q, %v", v2, err)
	}
	if _, err := c.CompareAndSwap(ctx, "lock", v1, []byte("stale")); !errors.As(err, &ce) || ce.Current != v2 {
		t.Fatalf("a stale CompareAndSwap: %v", err)
	}
	if _, err := c.DeleteIf(ctx, "lock", v1); !errors.Is(err, client.ErrConditionFailed) {
		t.Fatalf("a stale DeleteIf: %v", err)
	}
	if _, err := c.DeleteIf(ctx, "lock", v2); err != nil {
		t.Fatalf("DeleteIf: %v", err)
	}
	if _, err := c.CompareAndSwap(ctx, "lock", v2, []byte("x")); !errors.As(err, &ce) || ce.Exists {
		t.Fatalf("CompareAndSwap of a deleted key: %v (%+v)", err, ce)
	}
	if _, _, err := c.GetVersioned(ctx, "lock"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetVersioned of a deleted key: %v", err)
	}
	if _, err := c.CompareAndSwap(ctx, "lock", "", []byte("x")); err == nil {
		t.Fatal("CompareAndSwap without a version was sent")
	}
}

// TestConditionalNoDoubleWrite: a conditional write whose outcome a node
// could not tell is not sent to another node (it could be applied
// twice); one the node says it did not apply (503) is.
func TestConditionalNoDoubleWrite(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, nil)
	var unknownCalls atomic.Int64
	unknown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		unknownCalls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"conditional write of \"k\": outcome unknown: the conditional write may or may not have been applied"}`+"\n")
	}))
	t.Cleanup(unknown.Close)
	c := newClient(t, unknown.Listener.Addr().String(), n.addr)
	_, err := c.PutIfAbsent(ctx, "k", []byte("v"))
	if !errors.Is(err, client.ErrOutcomeUnknown) || !errors.Is(err, client.ErrUnavailable) || unknownCalls.Load() != 1 {
		t.Fatalf("outcome unknown: %v after %d calls; want ErrOutcomeUnknown from that node alone", err, unknownCalls.Load())
	}
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the write went to the other node too: %v", err)
	}
	busy, busyCalls := answering(t, http.StatusServiceUnavailable)
	if _, err := newClient(t, busy, n.addr).PutIfAbsent(ctx, "k", []byte("v")); err != nil || busyCalls.Load() != 1 {
		t.Fatalf("after a plain 503: %v (%d calls); want the next node to take it", err, busyCalls.Load())
	}
	dead := deadAddr(t)
	if _, err := newClient(t, dead, n.addr).PutIfAbsent(ctx, "k2", []byte("v")); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("a conditional write to a node that did not answer: %v; want its error, not a retry elsewhere", err)
	}
}
