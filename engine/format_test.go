package engine

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestFormatMajorVersion: the format 'ringkv version' reports is the one
// an opened store is at.
func TestFormatMajorVersion(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()
	if got := uint64(e.db.FormatMajorVersion()); got != FormatMajorVersion {
		t.Fatalf("store at format %d, FormatMajorVersion says %d", got, FormatMajorVersion)
	}
}
