package peer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ringkv/ringkv/memtable"
)

// Collector exports the coordinator's metrics: ringkv_hints_pending (per
// owner), ringkv_hints_replayed_total, ringkv_hints_lost_total,
// ringkv_read_repairs_total, ringkv_replica_failures_total (per op),
// ringkv_transfer_bytes_total, ringkv_transfer_drops_withheld_total,
// ringkv_apply_refused_total, the anti-entropy counters, and the gauges
// an alert compares against a bound (operatorGauges).
func (n *Node) Collector() prometheus.Collector { return &collector{n: n} }

type collector struct{ n *Node }

var (
	descHintsPending = prometheus.NewDesc("ringkv_hints_pending",
		"Hints this node holds for replicas that missed writes, by owner.", []string{"node"}, nil)
	descHintsReplayed = prometheus.NewDesc("ringkv_hints_replayed_total",
		"Hints delivered to their owners since start.", nil, nil)
	descHintsLost = prometheus.NewDesc("ringkv_hints_lost_total",
		"Hints this node could not keep (a full disk refuses them) since start; those replicas rely on read repair and anti-entropy.", nil, nil)
	descHintsDropped = prometheus.NewDesc("ringkv_hints_dropped_total",
		"Hints dropped by a bound since start (reason bytes: --max-hint-bytes for their member; age: older than --max-hint-age); those replicas rely on anti-entropy.", []string{"reason"}, nil)
	descReadRepairs = prometheus.NewDesc("ringkv_read_repairs_total",
		"Stale replicas a read rewrote with the newest record since start.", nil, nil)
	descReplicaFailures = prometheus.NewDesc("ringkv_replica_failures_total",
		"Replica calls a coordinator saw fail or time out, or skipped as the replica was down, since start, by op: a write that became a hint, or a read answered by another replica.", []string{"op"}, nil)
	descTransferBytes = prometheus.NewDesc("ringkv_transfer_bytes_total",
		"Bytes of ranges this node pulled from other nodes since start.", nil, nil)
	descAEPasses = prometheus.NewDesc("ringkv_anti_entropy_passes_total",
		"Anti-entropy passes over every range this node owns, completed since start.", nil, nil)
	descClockOffset = prometheus.NewDesc("ringkv_clock_offset_seconds",
		"Each peer's clock minus this node's, as last measured by a gossip probe.", []string{"peer"}, nil)
	descClockOff = prometheus.NewDesc("ringkv_clock_offset_exceeded",
		"1 while this node's clock is off from a majority of its peers by more than --max-clock-offset (it then coordinates no writes).", nil, nil)
	descCommitWaits = prometheus.NewDesc("ringkv_commit_waits_total",
		"Writes whose answer waited for every peer's clock to pass their timestamp, since start.", nil, nil)
	descCommitWaitSeconds = prometheus.NewDesc("ringkv_commit_wait_seconds_total",
		"Time writes' answers spent waiting for peers' clocks, since start.", nil, nil)
	descAESpans = prometheus.NewDesc("ringkv_anti_entropy_spans_repaired_total",
		"Token spans anti-entropy found different from another owner's and pulled, since start.", nil, nil)
	descDropsWithheld = prometheus.NewDesc("ringkv_transfer_drops_withheld_total",
		"Times this node kept ranges it gave away because a new owner could not be shown to hold them (its Merkle tree and records differ), since start.", nil, nil)
	descApplyRefused = prometheus.NewDesc("ringkv_apply_refused_total",
		"Replica writes this node refused because the key is not in a range it owns, since start.", nil, nil)
	descCorruptRepairs = prometheus.NewDesc("ringkv_corruption_repairs_total",
		"Spans of damaged files excised and pulled back from the other replicas, since start.", nil, nil)

	descPaxosSwept = prometheus.NewDesc("ringkv_paxos_states_swept_total",
		"Settled Paxos acceptor states deleted by the sweep (older than the Paxos horizon).", nil, nil)
	descMembers = prometheus.NewDesc("ringkv_members",
		"Members of the cluster as this node's failure detection sees them, by state (alive, suspect, dead, left).", []string{"state"}, nil)
	descClockBound = prometheus.NewDesc("ringkv_clock_offset_max_seconds",
		"--max-clock-offset: the bound ringkv_clock_offset_seconds must stay within for this node to coordinate writes.", nil, nil)
	descAEInterval = prometheus.NewDesc("ringkv_anti_entropy_interval_seconds",
		"--anti-entropy-interval (0: anti-entropy is off).", nil, nil)
	descAEClean = prometheus.NewDesc("ringkv_anti_entropy_clean_timestamp_seconds",
		"Unix time at which this node's last complete anti-entropy pass began (0: none yet since start).", nil, nil)
	descRangesPending = prometheus.NewDesc("ringkv_transfer_ranges_pending",
		"Ranges of the move under way this node has still to pull (0: it holds every range it was given).", nil, nil)
	descRangeAttempts = prometheus.NewDesc("ringkv_transfer_range_failed_attempts",
		"Failed tries of the range this node is pulling now (0 once it is in, or with no move under way).", nil, nil)
)

// memberStates are the states ringkv_members always reports, at zero
// when no member is in them, so alerts need no absent() guard.
var memberStates = [...]MemberState{Alive, Suspect, Dead, Left}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHintsPending
	ch <- descHintsReplayed
	ch <- descHintsLost
	ch <- descHintsDropped
	ch <- descReadRepairs
	ch <- descReplicaFailures
	ch <- descTransferBytes
	ch <- descAEPasses
	ch <- descAESpans
	ch <- descClockOffset
	ch <- descClockOff
	ch <- descCommitWaits
	ch <- descCommitWaitSeconds
	ch <- descCorruptRepairs
	ch <- descDropsWithheld
	ch <- descApplyRefused
	ch <- descPaxosSwept
	for _, d := range []*prometheus.Desc{descMembers, descClockBound, descAEInterval, descAEClean, descRangesPending, descRangeAttempts} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	pending := c.n.cfg.Engine.PendingHints()
	if len(pending) == 0 {
		// Always present, so alerts on it need no absent() guard.
		ch <- prometheus.MustNewConstMetric(descHintsPending, prometheus.GaugeValue, 0, "")
	}
	for id, v := range pending {
		ch <- prometheus.MustNewConstMetric(descHintsPending, prometheus.GaugeValue, float64(v), id)
	}
	ch <- prometheus.MustNewConstMetric(descHintsReplayed, prometheus.CounterValue, float64(c.n.hints.replayed.Load()))
	ch <- prometheus.MustNewConstMetric(descHintsLost, prometheus.CounterValue, float64(c.n.hints.lost.Load()))
	for r, name := range dropReasonNames {
		ch <- prometheus.MustNewConstMetric(descHintsDropped, prometheus.CounterValue, float64(c.n.hints.dropped[r].Load()), name)
	}
	ch <- prometheus.MustNewConstMetric(descReadRepairs, prometheus.CounterValue, float64(c.n.co.readRepairs.Load()))
	ch <- prometheus.MustNewConstMetric(descReplicaFailures, prometheus.CounterValue, float64(c.n.co.writeFailures.Load()), "write")
	ch <- prometheus.MustNewConstMetric(descReplicaFailures, prometheus.CounterValue, float64(c.n.co.readFailures.Load()), "read")
	ch <- prometheus.MustNewConstMetric(descTransferBytes, prometheus.CounterValue, float64(c.n.reb.bytes.Load()))
	ch <- prometheus.MustNewConstMetric(descAEPasses, prometheus.CounterValue, float64(c.n.ae.passes.Load()))
	ch <- prometheus.MustNewConstMetric(descAESpans, prometheus.CounterValue, float64(c.n.ae.spans.Load()))
	v := c.n.view.Load()
	for id, o := range c.n.cfg.Clocks.Offsets() {
		if v.Ring.Has(id) { // not members removed since
			ch <- prometheus.MustNewConstMetric(descClockOffset, prometheus.GaugeValue, o.Offset.Seconds(), id)
		}
	}
	off := 0.0
	if c.n.co.clockError(v) != nil {
		off = 1
	}
	ch <- prometheus.MustNewConstMetric(descClockOff, prometheus.GaugeValue, off)
	ch <- prometheus.MustNewConstMetric(descCommitWaits, prometheus.CounterValue, float64(c.n.co.commitWaits.Load()))
	ch <- prometheus.MustNewConstMetric(descCommitWaitSeconds, prometheus.CounterValue, float64(c.n.co.commitWaitNanos.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(descCorruptRepairs, prometheus.CounterValue, float64(c.n.ae.repairs.Load()))
	ch <- prometheus.MustNewConstMetric(descDropsWithheld, prometheus.CounterValue, float64(c.n.reb.dropsWithheld.Load()))
	ch <- prometheus.MustNewConstMetric(descApplyRefused, prometheus.CounterValue, float64(c.n.co.applyRefused.Load()))
	ch <- prometheus.MustNewConstMetric(descPaxosSwept, prometheus.CounterValue, float64(c.n.co.acc.swept.Load()))
	c.operatorGauges(ch, v)
}

// operatorGauges sends what alert rules need beside the counters: the
// members by state, the bounds a measure is compared with, when
// anti-entropy last completed, and how far the move under way has to go.
func (c *collector) operatorGauges(ch chan<- prometheus.Metric, v *View) {
	g := func(d *prometheus.Desc, x float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, lv...)
	}
	var by [len(memberStates)]int
	for _, m := range v.Members {
		for i, s := range memberStates {
			if m.State == s {
				by[i]++
			}
		}
	}
	for i, s := range memberStates {
		g(descMembers, float64(by[i]), string(s))
	}
	g(descClockBound, c.n.cfg.Clocks.Bound().Seconds())
	g(descAEInterval, max(c.n.cfg.AntiEntropyInterval, 0).Seconds())
	clean := 0.0
	if ts := c.n.ae.cleanSince(); ts != 0 {
		clean = float64(memtable.TimestampTime(ts).UnixMilli()) / 1e3
	}
	g(descAEClean, clean)
	pending, attempts := 0, 0
	for _, t := range c.n.reb.Transfers() {
		pending += t.RangesTotal - t.RangesDone
		attempts = max(attempts, t.Attempts)
	}
	g(descRangesPending, float64(pending))
	g(descRangeAttempts, float64(attempts))
}
