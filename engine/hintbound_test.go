package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestHintBounds: a target's hints are refused past maxBytes (others'
// are not), their bytes follow deliveries, drops and a reopen, and
// DropHintsBefore deletes exactly the hints stamped before its cut.
func TestHintBounds(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs, nil, nil)
	r := rec(100, 1, "0123456789").Append(nil)
	size := hintSize("n2", []byte("k0"), r)
	max := 3 * size
	for i := range 3 {
		if err := e.AddHintMax("n2", fmt.Appendf(nil, "k%d", i), rec(uint64(100+i), 1, "0123456789").Append(nil), max); err != nil {
			t.Fatalf("hint %d within the bound: %v", i, err)
		}
	}
	if err := e.AddHintMax("n2", []byte("k3"), rec(103, 1, "0123456789").Append(nil), max); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("hint past the bound: %v, want ErrHintsFull", err)
	}
	if err := e.AddHintMax("n3", []byte("k3"), rec(103, 1, "0123456789").Append(nil), max); err != nil {
		t.Fatalf("another target's hint: %v", err)
	}
	if got := e.HintBytes()["n2"]; got != max {
		t.Fatalf("n2 holds %d bytes, want %d", got, max)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, fs, nil, nil)
	defer e.Close()
	if got := e.HintBytes()["n2"]; got != max {
		t.Fatalf("after reopen n2 holds %d bytes, want %d", got, max)
	}
	if err := e.AddHintMax("n2", []byte("k3"), r, max); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("after reopen, hint past the bound: %v", err)
	}
	hs, err := e.Hints(context.Background(), "n2", 1)
	if err != nil || len(hs) != 1 {
		t.Fatal(len(hs), err)
	}
	if err := e.DeleteHints("n2", hs); err != nil {
		t.Fatal(err)
	}
	if got := e.HintBytes()["n2"]; got != 2*size {
		t.Fatalf("after one delivered, n2 holds %d bytes, want %d", got, 2*size)
	}
	if err := e.AddHintMax("n2", []byte("k3"), rec(103, 1, "0123456789").Append(nil), max); err != nil {
		t.Fatalf("hint after room was made: %v", err)
	}

	// n2 holds stamps 101, 102, 103: drop those before 103.
	n, err := e.DropHintsBefore("n2", 103)
	if err != nil || n != 2 {
		t.Fatalf("DropHintsBefore = %d, %v; want 2", n, err)
	}
	hs, _ = e.Hints(context.Background(), "n2", 10)
	if len(hs) != 1 || string(hs[0].Key) != "k3" {
		t.Fatalf("left %d hints, want k3 alone", len(hs))
	}
	if got, want := e.HintBytes()["n2"], size; got != want || e.PendingHints()["n2"] != 1 {
		t.Fatalf("after the drop: %d bytes, %d hints; want %d and 1", got, e.PendingHints()["n2"], want)
	}
	if n, _ := e.DropHintsBefore("n2", 103); n != 0 {
		t.Fatalf("second drop deleted %d", n)
	}
	if got := e.PendingHints()["n3"]; got != 1 {
		t.Fatalf("n3's hint touched: %d pending", got)
	}
}
