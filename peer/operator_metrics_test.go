package peer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// The gauges deploy/prometheus/alerts.yaml compares with their bounds
// follow the node's state: members by state as failure detection sees
// them, the clock bound and anti-entropy interval as configured, the
// start of the last clean anti-entropy pass, and the ranges a join has
// still to pull and the failed tries of the current one.
func TestOperatorGauges(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3,
		MaxClockOffset: 250 * time.Millisecond, AntiEntropyInterval: time.Hour})
	n := c.Nodes[0]
	gauge := func(name, label string) float64 { return peer.GaugeValue(t, n, name, label) }
	want := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	want("alive members", gauge("ringkv_members", "alive"), 3)
	want("dead members", gauge("ringkv_members", "dead"), 0)
	want("suspect members", gauge("ringkv_members", "suspect"), 0)
	want("clock bound", gauge("ringkv_clock_offset_max_seconds", ""), 0.25)
	want("anti-entropy interval", gauge("ringkv_anti_entropy_interval_seconds", ""), 3600)
	want("clean pass before any", gauge("ringkv_anti_entropy_clean_timestamp_seconds", ""), 0)
	want("ranges pending when settled", gauge("ringkv_transfer_ranges_pending", ""), 0)

	c.MarkDown(2)
	want("alive members, one down", gauge("ringkv_members", "alive"), 2)
	want("dead members, one down", gauge("ringkv_members", "dead"), 1)
	c.MarkUp(2)

	before := time.Now()
	if err := n.AntiEntropy().Pass(bg); err != nil {
		t.Fatal(err)
	}
	clean := gauge("ringkv_anti_entropy_clean_timestamp_seconds", "")
	if wantTS := float64(memtable.TimestampTime(n.ClusterStatus().AntiEntropyClean).UnixMilli()) / 1e3; clean != wantTS || clean < float64(before.Add(-time.Second).Unix()) {
		t.Fatalf("clean pass at %v, want %v (the status's), not before %v", clean, wantTS, before)
	}

	// A joiner cut off from its donors has its whole move left to pull,
	// and counts its failed tries.
	c.Net.Isolate(fmt.Sprintf("mem-%d:80", 4))
	n4 := c.Nodes[c.AddNode()]
	wait.For(t, time.Minute, func() bool {
		return peer.GaugeValue(t, n4, "ringkv_transfer_range_failed_attempts", "") > 0
	}, "the joiner to count a failed pull")
	if tr := n4.Rebalancer().Transfers(); len(tr) != 1 || peer.GaugeValue(t, n4, "ringkv_transfer_ranges_pending", "") != float64(tr[0].RangesTotal) || tr[0].RangesTotal == 0 {
		t.Fatalf("ranges pending = %v, transfers %+v", peer.GaugeValue(t, n4, "ringkv_transfer_ranges_pending", ""), tr)
	}
	c.Net.Heal()
	c.WaitSettled(30 * time.Second)
	if p, a := peer.GaugeValue(t, n4, "ringkv_transfer_ranges_pending", ""), peer.GaugeValue(t, n4, "ringkv_transfer_range_failed_attempts", ""); p != 0 || a != 0 {
		t.Fatalf("settled joiner: ranges pending %v, failed attempts %v; want 0, 0", p, a)
	}
}
