package peer

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// MetricValue reads the counter name{first label = label} from n's
// collector, for this package's tests and peer_test's; it fails the test
// when there is none.
func MetricValue(t testing.TB, n *Node, name, label string) float64 {
	t.Helper()
	return metricOf(t, n, name, label).GetCounter().GetValue()
}

// GaugeValue reads the gauge name{first label = label} from n's
// collector (label "" for a gauge without labels); it fails the test
// when there is none.
func GaugeValue(t testing.TB, n *Node, name, label string) float64 {
	t.Helper()
	return metricOf(t, n, name, label).GetGauge().GetValue()
}

// metricOf gathers n's collector and returns name{first label = label}.
func metricOf(t testing.TB, n *Node, name, label string) *dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m
			}
		}
	}
	t.Fatalf("no %s{%q}", name, label)
	return nil
}
