package httpd

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/peer/kv"
)

// TestConfigKeyLimit: the front end accepts no key the coordinator would
// refuse: a longer MaxKeySize would answer a client's long key with a 500
// instead of a 400.
func TestConfigKeyLimit(t *testing.T) {
	for _, c := range []struct {
		max  int
		want string
	}{
		{0, ""},
		{16, ""},
		{kv.MaxKeySize, ""},
		{kv.MaxKeySize + 1, "MaxKeySize"},
		{1 << 20, "MaxKeySize"},
	} {
		cfg := Config{Registry: prometheus.NewRegistry(), MaxKeySize: c.max}
		cfg.EnsureDefaults()
		err := cfg.Validate()
		if (err != nil) != (c.want != "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("MaxKeySize %d: Validate = %v, want an error naming %q", c.max, err, c.want)
		}
	}
	var cfg Config
	cfg.EnsureDefaults()
	if cfg.MaxKeySize != kv.MaxKeySize {
		t.Errorf("default MaxKeySize %d, want kv.MaxKeySize %d", cfg.MaxKeySize, kv.MaxKeySize)
	}
}
