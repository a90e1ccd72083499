package transport

import (
	"strings"
	"testing"
)

// TestConfigValidate: New refuses a Config it cannot run with, and the
// error names the field.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{NodeID: strings.Repeat("n", 256)}, "NodeID"},
		{Config{MaxBatchBytes: 2 << 30}, "MaxBatchBytes"},
		{Config{Senders: 65}, "Senders"},
		{Config{Senders: 4, MaxConnsPerHost: 2}, "Senders"},
		{Config{MaxScanBytes: 2 << 30}, "MaxScanBytes"},
	} {
		tr, err := New(tc.cfg)
		if err == nil {
			tr.Close()
			t.Errorf("New(%+v) succeeded", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New's error %q does not name %s", err, tc.field)
		}
	}
	for _, cfg := range []Config{{}, {NodeID: strings.Repeat("n", 255), Senders: 64, MaxBatchBytes: 1 << 30}} {
		tr, err := New(cfg)
		if err != nil {
			t.Errorf("New refused a valid Config: %v", err)
			continue
		}
		tr.Close()
	}
}
