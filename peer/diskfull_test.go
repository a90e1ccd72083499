package peer_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// TestFullReplicaIsAFailedOne: a replica whose disk is below its floor
// refuses the coordinator's writes at once; they become hints, quorum
// writes go on through the others, a write that needs every replica fails
// promptly, and once space is back the hints are delivered.
func TestFullReplicaIsAFailedOne(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, RequestTimeout: 5 * time.Second})
	full := c.FS[2].(*vfs.MemFS)
	full.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 1 << 30, UsedBytes: 1<<30 - 1<<20})
	wait.For(t, time.Minute, func() bool { return len(c.Nodes[2].Health()) != 0 }, "n3 to measure its full disk")
	if h := c.Nodes[2].Health(); h[0].Reason != "disk full" {
		t.Fatalf("n3 health = %+v", h)
	}
	// Writes through the full node too: its own copy fails, the others take
	// it (with no hint for it: its disk cannot keep one; anti-entropy
	// brings it the keys). Writes through the others keep hints for it.
	for i := range 30 {
		if err := put(t, c.Nodes[i%3], string(key(i)), "v", peer.Quorum); err != nil {
			t.Fatalf("quorum put %d with one full replica: %v", i, err)
		}
	}
	c.Settle()
	for i := range 30 {
		if c.Local(2, key(i)) != nil {
			t.Fatalf("full n3 stored key %d", i)
		}
	}
	if c.Nodes[0].Hints().Pending()+c.Nodes[1].Hints().Pending() != 20 {
		t.Errorf("hints for the full replica: %d and %d", c.Nodes[0].Hints().Pending(), c.Nodes[1].Hints().Pending())
	}
	start := time.Now()
	err := put(t, c.Nodes[0], "all", "v", peer.All)
	if !errors.Is(err, peer.ErrUnavailable) {
		t.Errorf("put at all with a full replica: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("put at all took %s: a full replica should fail at once", d)
	}

	full.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 900 << 20, TotalBytes: 1 << 30, UsedBytes: 124 << 20})
	wait.For(t, time.Minute, func() bool { return len(c.Nodes[2].Health()) == 0 }, "n3 to measure the space that came back")
	c.ReplayHints()
	for i := range 30 {
		if i%3 != 2 && c.Local(2, key(i)) == nil {
			t.Errorf("key %d not on n3 after the hints", i)
		}
		if v, err := get(t, c.Nodes[2], key(i), peer.Quorum); err != nil || v != "v" {
			t.Errorf("key %d through n3 = %q, %v", i, v, err)
		}
	}
}
