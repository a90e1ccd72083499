package sstable

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveStaleBackups: a node's start removes the checkpoints a cut-off
// backup left beside its data directory, and nothing else named like them.
func TestRemoveStaleBackups(t *testing.T) {
	for _, name := range []string{"ringkv-data", "data[1]"} { // the second is a bad glob pattern
		t.Run(name, func(t *testing.T) { removeStaleBackupsIn(t, filepath.Join(t.TempDir(), name)) })
	}
}

func removeStaleBackupsIn(t *testing.T, data string) {
	stale := data + backupScratch + "1764412345678901234-0badf00d"
	mine := data + backupScratch + "nov"
	for _, d := range []string{data, stale, mine} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStaleBackups(data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale checkpoint %s still there: %v", stale, err)
	}
	for _, d := range []string{data, mine} {
		if _, err := os.Stat(filepath.Join(d, "sub")); err != nil {
			t.Errorf("%s was touched: %v", d, err)
		}
	}
}
