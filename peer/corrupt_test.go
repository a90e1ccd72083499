package peer_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// flipLargestTable overwrites 16 bytes in the middle of the largest .sst
// at the root of fs, and returns its name.
func flipLargestTable(t *testing.T, fs vfs.FS) string {
	t.Helper()
	names, err := fs.List("")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var size int64
	for _, n := range names {
		if !strings.HasSuffix(n, ".sst") {
			continue
		}
		if st, err := fs.Stat(n); err == nil && st.Size() > size {
			name, size = n, st.Size()
		}
	}
	if name == "" {
		t.Fatalf("no table in %v", names)
	}
	f, err := fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	if _, err := f.ReadAt(b, size/2); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x5a
	}
	if _, err := f.WriteAt(b, size/2); err != nil {
		t.Fatal(err)
	}
	return name
}

// A replica with a damaged block keeps serving: quorum reads through it
// find every value on the two healthy replicas, and it excises the damaged
// span and pulls it back, after which it holds every key again.
func TestDamagedReplicaIsRepaired(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	const keys = 400
	val := func(i int) string { return fmt.Sprint("value-", i, strings.Repeat("x", 100)) }
	for i := range keys {
		if err := put(t, c.Nodes[i%3], string(key(i)), val(i), peer.All); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	c.Settle()
	const bad = 0
	if err := c.Engine(bad).Flush(); err != nil {
		t.Fatal(err)
	}
	var file string
	c.RestartAfter(bad, func(fs vfs.FS) { file = flipLargestTable(t, fs) })

	for i := range keys {
		if v, err := get(t, c.Nodes[bad], key(i), peer.Quorum); err != nil || v != val(i) {
			t.Fatalf("quorum get %d through the damaged node = %q, %v", i, v, err)
		}
	}
	eng := c.Engine(bad)
	if eng.LSM().Corruption.Events == 0 {
		t.Fatal("no corruption reported: the damage was not read")
	}
	sp := eng.Corruption()
	wait.For(t, time.Minute, func() bool {
		sp = eng.Corruption()
		return len(sp) > 0 && sp[0].State == engine.CorruptRepaired
	}, "the damaged table repaired from the replicas")
	if sp[0].File != file {
		t.Fatalf("repaired %s, damaged %s", sp[0].File, file)
	}
	// The replica holds every key again, read from its own store.
	for i := range keys {
		if c.Local(bad, key(i)) == nil {
			t.Fatalf("key %d missing on the repaired replica", i)
		}
		if v, err := get(t, c.Nodes[bad], key(i), peer.One); err != nil || v != val(i) {
			t.Fatalf("get %d at one through the repaired node = %q, %v", i, v, err)
		}
	}
	// Compactions no longer meet the damage.
	if err := eng.Compact(bg); err != nil {
		t.Fatalf("compaction after repair: %v", err)
	}
}

// A node alone has no replica to repair from: it keeps serving, answers
// reads of the damaged span with an error naming the file, and excises
// nothing.
func TestDamagedSoloNodeSaysWhere(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1})
	for i := range 400 {
		if err := put(t, c.Nodes[0], string(key(i)), strings.Repeat("v", 100), peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Engine(0).Flush(); err != nil {
		t.Fatal(err)
	}
	var file string
	c.RestartAfter(0, func(fs vfs.FS) { file = flipLargestTable(t, fs) })
	var failed error
	ok := 0
	for i := range 400 {
		if _, err := get(t, c.Nodes[0], key(i), peer.Quorum); err != nil {
			failed = err
		} else {
			ok++
		}
	}
	// Only the keys of the damaged block fail.
	if ok < 300 {
		t.Fatalf("%d of 400 reads succeeded on a node with one damaged block", ok)
	}
	if !errors.Is(failed, peer.ErrCorruption) || !strings.Contains(failed.Error(), file) || !strings.Contains(failed.Error(), "tokens [") {
		t.Fatalf("read of the damaged span: %v; want ErrCorruption naming %s and its tokens", failed, file)
	}
	if err := c.Nodes[0].AntiEntropy().RepairCorruption(bg); err != nil {
		t.Fatal(err)
	}
	if sp := c.Engine(0).Corruption(); len(sp) != 1 || sp[0].State != engine.CorruptDamaged {
		t.Fatalf("a lone node changed its damaged span: %+v", sp)
	}
}
