package peer

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the coordinator's metrics: ringkv_hints_pending (per
// owner), ringkv_hints_replayed_total, ringkv_read_repairs_total,
// ringkv_transfer_bytes_total and the anti-entropy counters.
func (n *Node) Collector() prometheus.Collector { return &collector{n: n} }

type collector struct{ n *Node }

var (
	descHintsPending = prometheus.NewDesc("ringkv_hints_pending",
		"Hints this node holds for replicas that missed writes, by owner.", []string{"node"}, nil)
	descHintsReplayed = prometheus.NewDesc("ringkv_hints_replayed_total",
		"Hints delivered to their owners since start.", nil, nil)
	descReadRepairs = prometheus.NewDesc("ringkv_read_repairs_total",
		"Stale replicas a read rewrote with the newest record since start.", nil, nil)
	descTransferBytes = prometheus.NewDesc("ringkv_transfer_bytes_total",
		"Bytes of ranges this node pulled from other nodes since start.", nil, nil)
	descAEPasses = prometheus.NewDesc("ringkv_anti_entropy_passes_total",
		"Anti-entropy passes over every range this node owns, completed since start.", nil, nil)
	descAESpans = prometheus.NewDesc("ringkv_anti_entropy_spans_repaired_total",
		"Token spans anti-entropy found different from another owner's and pulled, since start.", nil, nil)
	descCorruptRepairs = prometheus.NewDesc("ringkv_corruption_repairs_total",
		"Spans of damaged files excised and pulled back from the other replicas, since start.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHintsPending
	ch <- descHintsReplayed
	ch <- descReadRepairs
	ch <- descTransferBytes
	ch <- descAEPasses
	ch <- descAESpans
	ch <- descCorruptRepairs
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
	ch <- prometheus.MustNewConstMetric(descHintsReplayed, prometheus.CounterValue, float64(c.n.hintsReplayd.Load()))
	ch <- prometheus.MustNewConstMetric(descReadRepairs, prometheus.CounterValue, float64(c.n.readRepairs.Load()))
	ch <- prometheus.MustNewConstMetric(descTransferBytes, prometheus.CounterValue, float64(c.n.reb.bytes.Load()))
	ch <- prometheus.MustNewConstMetric(descAEPasses, prometheus.CounterValue, float64(c.n.aePasses.Load()))
	ch <- prometheus.MustNewConstMetric(descAESpans, prometheus.CounterValue, float64(c.n.aeSpans.Load()))
	ch <- prometheus.MustNewConstMetric(descCorruptRepairs, prometheus.CounterValue, float64(c.n.repairs.Load()))
}
