package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer"
)

// TestJoinMovesData: a node loaded alone is joined by two empty ones; they
// pull the ranges the ring gives them over HTTP, so that with the first
// node killed, the other two serve every key at quorum. The transfers show
// in /v1/cluster while they run and are gone once settled, and
// ringkv_transfer_bytes_total counts them.
func TestJoinMovesData(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 3, "--replicas", "3", "--anti-entropy-interval", "300ms")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.start()
	const keys = 1500
	for i := range keys {
		code, b, err := call(http.MethodPut, kvURL(n1.http, fmt.Sprintf("mv/%04d", i), ""), fmt.Sprint("v", i))
		if err != nil || code/100 != 2 {
			t.Fatalf("PUT: %d %s %v", code, b, err)
		}
	}
	n2.start("--join", n1.gossip)
	n3.start("--join", n1.gossip)
	waitAllAlive(t, 30*time.Second, nodes)
	poll(t, 60*time.Second, "every node holds its ranges", func() (bool, string) {
		var why []string
		for _, c := range nodes {
			st, err := status(c.http)
			if err != nil {
				return false, err.Error()
			}
			if !st.Settled || len(st.Transfers) != 0 || len(st.Members) != 3 {
				why = append(why, fmt.Sprintf("%s: settled %v, transfers %+v, members %d", c.id, st.Settled, st.Transfers, len(st.Members)))
			}
		}
		return len(why) == 0, strings.Join(why, "; ")
	})
	moved := transferBytes(t, n2.http) + transferBytes(t, n3.http)
	if moved == 0 {
		t.Fatal("ringkv_transfer_bytes_total is 0 on both joiners")
	}
	t.Logf("joiners pulled %.0f bytes", moved)
	// Anti-entropy runs on real processes too: passes complete, and with
	// every replica equal they find nothing to pull.
	poll(t, 30*time.Second, "an anti-entropy pass on n2", func() (bool, string) {
		p := metric(t, n2.http, "ringkv_anti_entropy_passes_total")
		return p > 0, fmt.Sprint("passes ", p)
	})
	if s := metric(t, n2.http, "ringkv_anti_entropy_spans_repaired_total"); s != 0 {
		t.Logf("anti-entropy repaired %v spans on n2 (writes raced the snapshots)", s)
	}
	n1.kill9()
	for i := range keys {
		k := fmt.Sprintf("mv/%04d", i)
		code, b, err := call(http.MethodGet, kvURL(n2.http, k, "quorum"), "")
		if err != nil || code != http.StatusOK || string(b) != fmt.Sprint("v", i) {
			t.Fatalf("GET %s from the joiners alone: %d %q %v", k, code, b, err)
		}
	}
}

// transferBytes reads ringkv_transfer_bytes_total from addr's /metrics.
func transferBytes(t *testing.T, addr string) float64 {
	t.Helper()
	return metric(t, addr, "ringkv_transfer_bytes_total")
}

// metric reads an unlabelled metric from addr's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	code, b, err := call(http.MethodGet, "http://"+addr+"/metrics", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("no %s at %s", name, addr)
	return 0
}

// TestTransferSurvivesKills: a move interrupted by SIGKILL of either side
// recovers. The receiver, killed mid-move and restarted, resumes with the
// ranges it had already merged (the rest are pulled again, never half);
// the donor, killed mid-move, holds the move until it is back, and then
// it completes. In the end the joiner alone serves every key.
func TestTransferSurvivesKills(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 2, "--replicas", "2", "--transfer-rate", "256KiB")
	n1, n2 := nodes[0], nodes[1]
	n1.start()
	const keys = 3000
	val := strings.Repeat("x", 200)
	for i := range keys {
		code, b, err := call(http.MethodPut, kvURL(n1.http, fmt.Sprintf("tk/%04d", i), ""), fmt.Sprint(val, i))
		if err != nil || code/100 != 2 {
			t.Fatalf("PUT: %d %s %v", code, b, err)
		}
	}
	n2.start("--join", n1.gossip)
	progress := func(min int) func() (bool, string) {
		return func() (bool, string) {
			st, err := status(n2.http)
			if err != nil || len(st.Transfers) == 0 {
				return false, fmt.Sprint(err)
			}
			return st.Transfers[0].RangesDone >= min, fmt.Sprintf("%+v", st.Transfers[0])
		}
	}
	poll(t, 60*time.Second, "the move under way", progress(10))
	n2.kill9()
	n2.start()
	var resumed peer.Transfer
	poll(t, 10*time.Second, "the restarted joiner shows its move", func() (bool, string) {
		st, err := status(n2.http)
		if err != nil || len(st.Transfers) != 1 {
			return false, fmt.Sprint(st.Transfers, err)
		}
		resumed = st.Transfers[0]
		return true, ""
	})
	if resumed.RangesDone < 10 {
		t.Errorf("the restarted joiner starts over: %+v", resumed)
	}
	poll(t, 60*time.Second, "the move goes on", progress(20))
	n1.kill9()
	poll(t, 30*time.Second, "the joiner's pulls fail without the donor", func() (bool, string) {
		st, err := status(n2.http)
		if err != nil || len(st.Transfers) == 0 {
			return false, fmt.Sprint(err)
		}
		return st.Transfers[0].LastError != "" && !st.Settled, fmt.Sprintf("%+v", st.Transfers[0])
	})
	n1.start()
	poll(t, 120*time.Second, "the joiner holds every range", func() (bool, string) {
		st, err := status(n2.http)
		if err != nil {
			return false, err.Error()
		}
		return st.Settled, fmt.Sprintf("%+v", st.Transfers)
	})
	n1.kill9()
	for i := range keys {
		k := fmt.Sprintf("tk/%04d", i)
		code, b, err := call(http.MethodGet, kvURL(n2.http, k, "one"), "")
		if err != nil || code != http.StatusOK || string(b) != fmt.Sprint(val, i) {
			t.Fatalf("GET %s from the joiner alone: %d %q %v", k, code, b, err)
		}
	}
}
