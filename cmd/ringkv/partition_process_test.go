package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// partitionCut is how long a partition test keeps its cut: long enough for
// failure detection to declare the far side dead (about 5s here), which is
// what used to make a partition permanent. RINGKV_PARTITION_SECONDS sets
// it, to measure heals after longer cuts.
func partitionCut(t *testing.T) time.Duration {
	if s := os.Getenv("RINGKV_PARTITION_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("RINGKV_PARTITION_SECONDS=%q: want a positive number of seconds", s)
		}
		return time.Duration(n) * time.Second
	}
	return 12 * time.Second
}

// TestPartitionHeals: three nodes on hosts of their own; n3 is cut off
// from the others (both ways, then one way) for longer than failure
// detection takes to call it dead. While cut, quorum writes through the
// majority succeed and keep hints for n3; through n3 they fail. Once the
// network heals, without any restart, every node sees every member alive
// again, the hints are replayed, and n3's own copy of every key is current.
// With RINGKV_PARTITION_NODES=5 it splits five nodes 3|2 (n4 and n5 cut
// off) instead.
func TestPartitionHeals(t *testing.T) {
	size := 3
	if os.Getenv("RINGKV_PARTITION_NODES") == "5" {
		size = 5
	}
	_, hosts, nodes := labCluster(t, size, "--replicas", "3", "--anti-entropy-interval", "5s")
	n1 := nodes[0]
	cutOff := hosts[(size+1)/2:] // the minority: n3 of 3, n4 and n5 of 5
	majority := hosts[:(size+1)/2]
	minority := nodes[(size+1)/2:]
	n3 := minority[0]
	t0 := time.Now()
	stage := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	n1.start()
	for _, c := range nodes[1:] {
		c.start("--join", n1.gossip)
	}
	waitCond(t, 60*time.Second, "every node sees every node alive", func() (bool, string) { return seesAll(nodes) })
	stage("cluster up")

	want := map[string]string{}
	put := func(c *cnode, key, val, consistency string) int {
		code, b, err := call(http.MethodPut, kvURL(c.http, key, consistency), val)
		if err != nil {
			t.Fatalf("PUT %s via %s: %v", key, c.id, err)
		}
		if code == http.StatusNoContent {
			want[key] = val
		} else if code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
			t.Fatalf("PUT %s via %s: %d %s", key, c.id, code, b)
		}
		return code
	}
	for i := range 50 {
		if code := put(n1, fmt.Sprintf("before-%d", i), "v", "all"); code != http.StatusNoContent {
			t.Fatalf("PUT at all before the cut: %d", code)
		}
	}

	cut := partitionCut(t)
	for round, oneWay := range []bool{false, true} {
		kind := "both ways"
		if oneWay {
			kind = "one way (the cut-off side hears nothing)"
		}
		for _, h := range cutOff {
			h.cut(oneWay, majority...)
		}
		cutAt := time.Now()
		stage(fmt.Sprintf("%d of %d nodes cut off %s", len(cutOff), size, kind))
		// Failure detection on the majority's side must call them dead.
		waitCond(t, 60*time.Second, "n1 sees the cut-off nodes dead", func() (bool, string) {
			st, err := status(n1.http)
			if err != nil {
				return false, err.Error()
			}
			dead := 0
			for _, m := range st.Members {
				for _, c := range minority {
					if m.ID == c.id && m.State == "dead" {
						dead++
					}
				}
			}
			return dead == len(minority), "n1 sees " + memberStates(st)
		})
		stage("n1 sees the cut-off nodes dead")
		for i := range 50 {
			key := fmt.Sprintf("during-%d-%d", round, i)
			// With 5 nodes a key may have two owners in the minority: its
			// quorum write fails (and that is right).
			if code := put(n1, key, "v", "quorum"); code != http.StatusNoContent && size == 3 {
				t.Fatalf("PUT %s at quorum through the majority: %d", key, code)
			}
		}
		if !oneWay && size == 3 {
			if code := put(n3, fmt.Sprintf("minority-%d", round), "x", "quorum"); code == http.StatusNoContent {
				t.Fatal("a quorum write through the cut-off node succeeded")
			}
		}
		if d := time.Until(cutAt.Add(cut)); d > 0 {
			time.Sleep(d) // the cut's length is the scenario, not a wait for a condition
		}
		for _, h := range cutOff {
			h.heal()
		}
		stage(fmt.Sprintf("healed after a %s cut", time.Since(cutAt).Round(time.Second)))
		took := waitCond(t, 90*time.Second, "every node sees every node alive after the heal", func() (bool, string) { return seesAll(nodes) })
		stage(fmt.Sprintf("every node sees every node alive %.1fs after the heal", took.Seconds()))
		waitCond(t, 90*time.Second, "hints for n3 replayed", func() (bool, string) {
			st, err := status(n1.http)
			if err != nil {
				return false, err.Error()
			}
			return hintsTotal(st) == 0, fmt.Sprintf("n1 holds %v", st.HintsPending)
		})
		stage("hints replayed")
		// A cut-off node's own copy (a read at one through it answers
		// from it when it is an owner) holds every acknowledged write.
		waitCond(t, 90*time.Second, "the cut-off nodes hold every acknowledged write", func() (bool, string) {
			for _, c := range minority {
				for key, val := range want {
					code, b, err := call(http.MethodGet, kvURL(c.http, key, "one"), "")
					if err != nil || code != http.StatusOK || string(b) != val {
						return false, fmt.Sprintf("GET %s at one via %s: %d %q %v", key, c.id, code, b, err)
					}
				}
			}
			return true, ""
		})
		stage("the cut-off nodes hold every acknowledged write")
		for key, val := range want {
			code, b, err := call(http.MethodGet, kvURL(n1.http, key, "all"), "")
			if err != nil || code != http.StatusOK || string(b) != val {
				t.Fatalf("GET %s at all via n1: %d %q %v", key, code, b, err)
			}
		}
	}
}
