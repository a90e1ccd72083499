package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Hints are kept per target in write order, survive a restart with their
// counts, are deleted exactly as delivered, and can be dropped wholesale.
func TestHints(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs, nil, nil)
	for i := range 5 {
		r := rec(uint64(100+i), 1, fmt.Sprint("v", i))
		if err := e.AddHint("n2", fmt.Appendf(nil, "k%d", i), r.Append(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddHint("n3", []byte("x"), rec(50, 1, "x").Append(nil)); err != nil {
		t.Fatal(err)
	}
	if err := e.AddHint("n2", []byte("bad"), []byte("not a record")); err == nil {
		t.Fatal("a malformed record was queued")
	}
	if got := e.PendingHints(); got["n2"] != 5 || got["n3"] != 1 || len(got) != 2 {
		t.Fatalf("pending = %v", got)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, fs, nil, nil)
	defer e.Close()
	if got := e.PendingHints(); got["n2"] != 5 || got["n3"] != 1 {
		t.Fatalf("after reopen, pending = %v", got)
	}
	hs, err := e.Hints(context.Background(), "n2", 3)
	if err != nil || len(hs) != 3 {
		t.Fatalf("hints = %d, %v", len(hs), err)
	}
	for i, h := range hs {
		if string(h.Key) != fmt.Sprint("k", i) {
			t.Fatalf("hint %d is for %q: not in write order", i, h.Key)
		}
	}
	if err := e.DeleteHints("n2", hs); err != nil {
		t.Fatal(err)
	}
	hs, _ = e.Hints(context.Background(), "n2", 10)
	if len(hs) != 2 || string(hs[0].Key) != "k3" {
		t.Fatalf("after delivering 3, left %d starting %q", len(hs), hs[0].Key)
	}
	if got := e.PendingHints()["n2"]; got != 2 {
		t.Fatalf("pending n2 = %d, want 2", got)
	}
	// A target whose id is a prefix of another's keeps its own hints.
	if hs, _ := e.Hints(context.Background(), "n", 10); len(hs) != 0 {
		t.Fatalf("target n sees %d hints of others", len(hs))
	}
	if err := e.DropHints("n2"); err != nil {
		t.Fatal(err)
	}
	if hs, _ := e.Hints(context.Background(), "n2", 10); len(hs) != 0 {
		t.Fatalf("%d hints left after drop", len(hs))
	}
	if got := e.PendingHints(); got["n2"] != 0 || got["n3"] != 1 {
		t.Fatalf("after drop, pending = %v", got)
	}
	// Hints are not data: reads and scans never see them.
	if _, _, err := e.Get(nil, []byte("x")); err != ErrNotFound {
		t.Fatalf("a hint is readable as data: %v", err)
	}
}
