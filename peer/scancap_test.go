package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestScanByteCap: a page ends once its keys and values reach MaxBytes
// (one item always fits), with Next continuing, and paging still visits
// every key once; a member's own answer (ScanLocal) is capped the same
// way and says More.
func TestScanByteCap(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), 1000)
	for i := range 40 {
		if _, err := n.Put(ctx, fmt.Appendf(nil, "k%02d", i), val, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f := func(maxBytes, wantPerPage int) {
		t.Helper()
		seen := map[string]bool{}
		var after []byte
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("scan does not end")
			}
			p, err := n.Scan(ctx, ScanQuery{After: after, Limit: MaxScanLimit, MaxBytes: maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) > wantPerPage || (p.Next != nil && len(p.Items) != wantPerPage) {
				t.Fatalf("MaxBytes %d: page of %d items, want %d", maxBytes, len(p.Items), wantPerPage)
			}
			for _, it := range p.Items {
				if seen[string(it.Key)] {
					t.Fatalf("%s twice", it.Key)
				}
				seen[string(it.Key)] = true
			}
			if p.Next == nil {
				break
			}
			after = p.Next
		}
		if len(seen) != 40 {
			t.Fatalf("MaxBytes %d: %d keys, want 40", maxBytes, len(seen))
		}
	}
	f(5000, 5)   // 1003 bytes an item: the fifth reaches the cap
	f(1, 1)      // always one
	f(50000, 40) // one page

	p, err := n.Local().ScanLocal(ctx, LocalScan{Limit: MaxScanLimit, MaxBytes: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 3 || !p.More {
		t.Fatalf("ScanLocal with MaxBytes 3000: %d items, More %v; want 3 and More", len(p.Items), p.More)
	}
	// No cap given: the default, far above this store.
	if p, _ := n.Local().ScanLocal(ctx, LocalScan{Limit: MaxScanLimit}); len(p.Items) != 40 || p.More {
		t.Fatalf("ScanLocal with the default cap: %d items, More %v", len(p.Items), p.More)
	}
}

// TestMergePagesByteCap: the merge of members' pages stops at maxBytes too.
func TestMergePagesByteCap(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), 100)
	for i := range 20 {
		if _, err := n.Put(ctx, fmt.Appendf(nil, "k%02d", i), val, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := n.Local().ScanLocal(ctx, LocalScan{Limit: MaxScanLimit})
	if err != nil {
		t.Fatal(err)
	}
	// Two replicas' identical pages: each key counted once.
	page := mergePages([]LocalPage{p, p}, MaxScanLimit, 1030, n.cfg.Now().UnixMilli())
	if len(page.Items) != 10 || page.Next == nil || !bytes.Equal(page.Next, page.Items[9].Key) {
		t.Fatalf("merge capped at 1030 bytes: %d items, next %q", len(page.Items), page.Next)
	}
}

// TestScanDeadline: a scan whose deadline has passed stops instead of
// reading the whole store (a sparse prefix makes it read every key).
func TestScanDeadline(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	for i := range 5000 {
		if _, err := n.Put(ctx, fmt.Appendf(nil, "k%05d", i), []byte("v"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dead, cancel := context.WithDeadline(ctx, n.cfg.Now().Add(-1))
	defer cancel()
	if _, err := n.Scan(dead, ScanQuery{Prefix: []byte("none"), Limit: 10}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan past its deadline: %v, want DeadlineExceeded", err)
	}
	if _, err := n.Local().ScanLocal(dead, LocalScan{Prefix: []byte("none"), Limit: 10}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ScanLocal past its deadline: %v, want DeadlineExceeded", err)
	}
}
