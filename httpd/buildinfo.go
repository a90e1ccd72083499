package httpd

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo names the build of the binary a Server runs in, for the
// ringkv_build_info metric. The caller reads it (from runtime/debug and
// its -X flags); httpd only exports it.
type BuildInfo struct {
	// Version is the release (v1.2.3), the module's pseudo-version, or
	// "devel-REVISION".
	Version string
	// Revision is the VCS revision the binary was built from, "" when
	// unknown.
	Revision string
	// GoVersion is the Go toolchain that built it (go1.26.8).
	GoVersion string
}

// registerBuildInfo registers ringkv_build_info{version,revision,goversion}
// 1 on reg: a constant, so that a dashboard can join it to any series by
// instance and show which build each node runs.
func registerBuildInfo(reg *prometheus.Registry, b BuildInfo) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ringkv_build_info",
		Help: "Always 1; the labels name the build this node runs.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion,
		},
	})
	g.Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("cannot register ringkv_build_info: %w", err)
	}
	return nil
}
