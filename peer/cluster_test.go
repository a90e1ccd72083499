package peer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
)

var bg = context.Background()

func key(i int) []byte { return fmt.Appendf(nil, "key-%05d", i) }

func put(t *testing.T, n *peer.Node, k, v string, c peer.Consistency) error {
	t.Helper()
	_, err := n.Put(bg, []byte(k), []byte(v), peer.WriteOptions{Consistency: c})
	return err
}

func get(t *testing.T, n *peer.Node, k []byte, c peer.Consistency) (string, error) {
	t.Helper()
	v, _, err := n.Get(bg, nil, k, c)
	return string(v), err
}

// replicasOf returns the indexes of key's owners.
func replicasOf(c *peertest.Cluster, k []byte) []int {
	var out []int
	for _, id := range c.Nodes[0].View().Ring.KeyOwners(k) {
		out = append(out, c.Index(id))
	}
	return out
}

func TestWriteReachesEveryReplica(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 5})
	for i := range 100 {
		if err := put(t, c.Nodes[i%5], string(key(i)), fmt.Sprint("v", i), peer.Quorum); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	c.Settle()
	for i := range 100 {
		owners := replicasOf(c, key(i))
		if len(owners) != 3 {
			t.Fatalf("key %d has %d owners", i, len(owners))
		}
		for j := range 5 {
			has := c.Local(j, key(i)) != nil
			if want := slices.Contains(owners, j); has != want {
				t.Errorf("key %d on %s: stored=%v, owner=%v", i, c.IDs[j], has, want)
			}
		}
		for j := range 5 {
			if v, err := get(t, c.Nodes[j], key(i), peer.All); err != nil || v != fmt.Sprint("v", i) {
				t.Errorf("get key %d via %s at all = %q, %v", i, c.IDs[j], v, err)
			}
		}
	}
	if c.HintsPending() != 0 {
		t.Errorf("%d hints pending in a healthy cluster", c.HintsPending())
	}
}

// A node cut off during writes misses nothing it is owed: every write
// acknowledged at quorum stays readable at quorum, and once the network
// heals, hints bring the node's replicas up to date.
func TestPartitionedNodeCatchesUpFromHints(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprint(size, "nodes"), func(t *testing.T) {
			c := peertest.NewCluster(t, peertest.Options{Nodes: size})
			const cut = 1
			c.Net.Isolate(c.Addrs[cut])
			acked := map[string]string{}
			for i := range 300 {
				coord := i % size
				k, v := string(key(i)), fmt.Sprint("v", i)
				err := put(t, c.Nodes[coord], k, v, peer.Quorum)
				switch {
				case coord == cut:
					// Alone, the cut node has at most one replica.
					if !errors.Is(err, peer.ErrUnavailable) {
						t.Fatalf("put via the cut node: err = %v, want unavailable", err)
					}
				case err != nil:
					t.Fatalf("put %s via %s: %v", k, c.IDs[coord], err)
				default:
					acked[k] = v
				}
			}
			// Failure detection catches up: the cut node is marked dead,
			// so new writes hint without trying it.
			c.MarkDown(cut)
			for i := 300; i < 350; i++ {
				k, v := string(key(i)), fmt.Sprint("v", i)
				if err := put(t, c.Nodes[0], k, v, peer.Quorum); err != nil {
					t.Fatal(err)
				}
				acked[k] = v
			}
			for k, v := range acked {
				if got, err := get(t, c.Nodes[(cut+1)%size], []byte(k), peer.Quorum); err != nil || got != v {
					t.Fatalf("during the partition, get %s = %q, %v; want %q", k, got, err, v)
				}
			}
			c.Settle()
			if c.HintsPending() == 0 {
				t.Fatal("no hints kept for the cut node")
			}
			c.Net.Heal()
			c.MarkUp(cut)
			if n := c.ReplayHints(); n == 0 {
				t.Fatal("no hints replayed")
			}
			if p := c.HintsPending(); p != 0 {
				t.Fatalf("%d hints still pending after replay", p)
			}
			// The cut node now holds every acknowledged key it owns.
			missing := 0
			for k, v := range acked {
				owners := replicasOf(c, []byte(k))
				if !slices.Contains(owners, cut) {
					continue
				}
				rec := c.Local(cut, []byte(k))
				if r, err := memtable.Decode(rec); rec == nil || err != nil || string(r.Value) != v {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("%d acknowledged keys missing on the healed node", missing)
			}
			// And every acknowledged write reads back at quorum from anywhere.
			for k, v := range acked {
				if got, err := get(t, c.Nodes[cut], []byte(k), peer.Quorum); err != nil || got != v {
					t.Fatalf("after healing, get %s via the healed node = %q, %v; want %q", k, got, err, v)
				}
			}
		})
	}
}

func TestConsistencyAllNeedsEveryReplica(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	c.Net.Isolate(c.Addrs[2])
	_, err := c.Nodes[0].Put(bg, []byte("k"), []byte("v"), peer.WriteOptions{Consistency: peer.All})
	var ue *peer.UnavailableError
	if !errors.As(err, &ue) || ue.Needed != 3 || ue.Answered > 2 {
		t.Fatalf("put at all with a replica cut off: %v", err)
	}
	if err := put(t, c.Nodes[0], "k", "v", peer.Quorum); err != nil {
		t.Fatalf("quorum put: %v", err)
	}
	if err := put(t, c.Nodes[0], "k", "v", peer.One); err != nil {
		t.Fatalf("put at one: %v", err)
	}
	if _, err := get(t, c.Nodes[0], []byte("k"), peer.All); !errors.Is(err, peer.ErrUnavailable) {
		t.Fatalf("get at all with a replica cut off: %v", err)
	}
	if v, err := get(t, c.Nodes[0], []byte("k"), peer.Quorum); err != nil || v != "v" {
		t.Fatalf("quorum get = %q, %v", v, err)
	}
}

// A replica that hangs (not failed, just silent) must not hold a quorum
// write or read once enough others answered.
func TestHungReplicaDoesNotHoldQuorum(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, RequestTimeout: time.Hour})
	c.Net.Hang(c.Addrs[2])
	defer c.Net.Heal()
	// With an hour's timeout, only answers from the two others can end
	// these calls; a hung wait would fail the test by its own timeout.
	for i := range 20 {
		if err := put(t, c.Nodes[i%2], string(key(i)), "v", peer.Quorum); err != nil {
			t.Fatal(err)
		}
		if v, err := get(t, c.Nodes[i%2], key(i), peer.Quorum); err != nil || v != "v" {
			t.Fatalf("get = %q, %v", v, err)
		}
	}
}

// Reads repair the stale replicas they notice.
func TestReadRepair(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	k := []byte("repair-me")
	if err := put(t, c.Nodes[0], string(k), "old", peer.All); err != nil {
		t.Fatal(err)
	}
	// A newer write reaches two replicas; the third's copy is lost (its
	// hint dropped), as if the coordinator had crashed before keeping it.
	c.Net.Isolate(c.Addrs[2])
	if err := put(t, c.Nodes[0], string(k), "new", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	c.Settle()
	c.Net.Heal()
	for i := range c.Nodes {
		if err := dropAllHints(c, i); err != nil {
			t.Fatal(err)
		}
	}
	stale, _ := memtable.Decode(c.Local(2, k))
	if string(stale.Value) != "old" {
		t.Fatalf("setup: node 3 has %q", stale.Value)
	}
	if v, err := get(t, c.Nodes[2], k, peer.All); err != nil || v != "new" {
		t.Fatalf("get at all = %q, %v", v, err)
	}
	c.Settle()
	if r, _ := memtable.Decode(c.Local(2, k)); string(r.Value) != "new" {
		t.Fatalf("after a read, node 3 still has %q", r.Value)
	}
}

func dropAllHints(c *peertest.Cluster, i int) error {
	for _, id := range c.IDs {
		if err := c.Nodes[i].Hints().DropFor(id); err != nil {
			return err
		}
	}
	return nil
}

// Deletes replicate as tombstones: a replica that missed the delete and
// still has the value cannot bring it back.
func TestDeleteWinsOverStaleReplica(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	if err := put(t, c.Nodes[0], "d", "v", peer.All); err != nil {
		t.Fatal(err)
	}
	c.Net.Isolate(c.Addrs[1])
	if _, err := c.Nodes[0].Delete(bg, []byte("d"), peer.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Net.Heal()
	for i := range 3 {
		if _, err := get(t, c.Nodes[i], []byte("d"), peer.All); !errors.Is(err, peer.ErrNotFound) {
			t.Fatalf("get via %s after delete: %v", c.IDs[i], err)
		}
	}
}

// Random drops: whatever was acknowledged is readable at quorum, and after
// replay every replica agrees.
func TestDropsLoseNoAcknowledgedWrite(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Seed: 7})
	c.Net.SetDrop(0.25)
	acked := map[string]string{}
	for i := range 400 {
		k, v := string(key(i%150)), fmt.Sprint("v", i)
		if err := put(t, c.Nodes[i%3], k, v, peer.Quorum); err == nil {
			acked[k] = v
		} else if !errors.Is(err, peer.ErrUnavailable) {
			t.Fatal(err)
		} else {
			delete(acked, k) // a failed write may or may not have landed
		}
	}
	c.Net.SetDrop(0)
	c.ReplayHints()
	for k, v := range acked {
		if got, err := get(t, c.Nodes[0], []byte(k), peer.Quorum); err != nil || got != v {
			t.Fatalf("get %s = %q, %v; want %q", k, got, err, v)
		}
		var recs [][]byte
		for _, j := range replicasOf(c, []byte(k)) {
			recs = append(recs, c.Local(j, []byte(k)))
		}
		for _, r := range recs[1:] {
			if string(r) != string(recs[0]) {
				t.Fatalf("replicas of %s disagree after replay", k)
			}
		}
	}
	if len(acked) < 100 {
		t.Fatalf("only %d keys acknowledged: the drop rate starves the test", len(acked))
	}
}

// Hints are durable: a coordinator that restarts still delivers them.
func TestHintsSurviveCoordinatorRestart(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	c.Net.Isolate(c.Addrs[2])
	c.MarkDown(2)
	for i := range 50 {
		if err := put(t, c.Nodes[0], string(key(i)), "v", peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	before := c.Nodes[0].Hints().Pending()
	if before == 0 {
		t.Fatal("no hints kept")
	}
	c.Restart(0)
	if got := c.Nodes[0].Hints().Pending(); got != before {
		t.Fatalf("after restart %d hints pending, want %d", got, before)
	}
	c.Net.Heal()
	c.MarkUp(2)
	c.ReplayHints()
	for i := range 50 {
		if slices.Contains(replicasOf(c, key(i)), 2) && c.Local(2, key(i)) == nil {
			t.Fatalf("key %d not delivered to node 3", i)
		}
	}
}

// A scan covers the whole cluster: every live key once, newest value,
// deleted keys hidden, across pages; it tolerates N - quorum nodes down.
func TestClusterScan(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 5})
	want := map[string]string{}
	for i := range 120 {
		k := fmt.Sprintf("p/%03d", i)
		if err := put(t, c.Nodes[i%5], k, "v1", peer.Quorum); err != nil {
			t.Fatal(err)
		}
		want[k] = "v1"
	}
	for i := range 120 {
		k := fmt.Sprintf("p/%03d", i)
		switch i % 3 {
		case 0:
			if _, err := c.Nodes[1].Delete(bg, []byte(k), peer.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			delete(want, k)
		case 1:
			if err := put(t, c.Nodes[2], k, "v2", peer.Quorum); err != nil {
				t.Fatal(err)
			}
			want[k] = "v2"
		}
	}
	if err := put(t, c.Nodes[0], "other", "x", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	c.Settle()
	scanAll := func(n *peer.Node) (map[string]string, error) {
		got := map[string]string{}
		var after []byte
		for pages := 0; ; pages++ {
			if pages > 200 {
				return nil, errors.New("scan does not end")
			}
			p, err := n.Scan(bg, peer.ScanQuery{Prefix: []byte("p/"), After: after, Limit: 7})
			if err != nil {
				return nil, err
			}
			for _, kv := range p.Items {
				if _, dup := got[string(kv.Key)]; dup {
					return nil, fmt.Errorf("key %s twice", kv.Key)
				}
				got[string(kv.Key)] = string(kv.Value)
			}
			if p.Next == nil {
				return got, nil
			}
			after = p.Next
		}
	}
	check := func(what string, got map[string]string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d keys, want %d", what, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %s = %q, want %q", what, k, got[k], v)
			}
		}
	}
	got, err := scanAll(c.Nodes[3])
	check("healthy", got, err)
	c.Net.Isolate(c.Addrs[4])
	c.MarkDown(4)
	got, err = scanAll(c.Nodes[0])
	check("one node down", got, err)
	c.Net.Isolate(c.Addrs[3])
	c.MarkDown(3)
	if _, err := scanAll(c.Nodes[0]); !errors.Is(err, peer.ErrUnavailable) {
		t.Fatalf("scan with two of five down at quorum: %v, want unavailable", err)
	}
}

// replicaFailures reads ringkv_replica_failures_total{op} from n's
// collector.
func replicaFailures(t *testing.T, n *peer.Node, op string) float64 {
	t.Helper()
	return peer.MetricValue(t, n, "ringkv_replica_failures_total", op)
}

// The coordinator counts the replica calls that fail, by op: a write to
// a cut-off replica (tried, or skipped once it is known down) and a read
// it could not answer; calls that succeed count nothing.
func TestReplicaFailuresCounted(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	n := c.Nodes[0]
	if err := put(t, n, "k", "v", peer.All); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, n, []byte("k"), peer.All); err != nil {
		t.Fatal(err)
	}
	c.Settle()
	if w, r := replicaFailures(t, n, "write"), replicaFailures(t, n, "read"); w != 0 || r != 0 {
		t.Fatalf("with every replica up: write failures %v, read failures %v; want 0, 0", w, r)
	}
	c.Net.Isolate(c.Addrs[2])
	if err := put(t, n, "k", "v2", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	c.Settle() // the cut replica's answer may come after the quorum's
	if w := replicaFailures(t, n, "write"); w != 1 {
		t.Fatalf("after a write to a cut-off replica: write failures %v, want 1", w)
	}
	// At all, the read must ask the cut replica, and fails with it.
	if _, err := get(t, n, []byte("k"), peer.All); !errors.Is(err, peer.ErrUnavailable) {
		t.Fatalf("get at all with a replica cut off: %v", err)
	}
	if r := replicaFailures(t, n, "read"); r < 1 {
		t.Fatalf("after a read from a cut-off replica: read failures %v, want >= 1", r)
	}
	// Once known down, the replica is not tried: its write is a hint, and
	// counted all the same.
	c.MarkDown(2)
	if err := put(t, n, "k", "v3", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	c.Settle()
	if w := replicaFailures(t, n, "write"); w != 2 {
		t.Fatalf("after a write to a replica known down: write failures %v, want 2", w)
	}
}
