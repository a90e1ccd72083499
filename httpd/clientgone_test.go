package httpd

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// TestBackupClientGoneCounted: a backup whose client hangs up while the
// checkpoint is taken is stopped, and counted as
// ringkv_http_limited_total{reason="client_gone"}, as the internode
// streams' departed callers are (transport.ClientContext serves both).
func TestBackupClientGoneCounted(t *testing.T) {
	started := make(chan struct{}, 1)
	stopped := make(chan error, 1)
	reg := prometheus.NewRegistry()
	cfg := Config{Registry: reg, Backup: func(ctx context.Context) (func(io.Writer) error, error) {
		started <- struct{}{}
		<-ctx.Done() // a checkpoint that only the context stops
		stopped <- ctx.Err()
		return nil, ctx.Err()
	}}
	ln := listenTCP(t)
	startServer(t, cfg, newFakeStore(), &fakeOps{}, ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(rawRequest("GET", "/v1/admin/backup", nil)); err != nil {
		t.Fatal(err)
	}
	<-started
	c.Close()
	if err := <-stopped; err == nil {
		t.Fatal("the backup's context ended without an error")
	}
	wait.For(t, 20*time.Second, func() bool { return clientGone(t, reg) == 1 }, "one client_gone counted")
}

// clientGone returns ringkv_http_limited_total{reason="client_gone"}.
func clientGone(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ringkv_http_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "client_gone" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
