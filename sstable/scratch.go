package sstable

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ringkv/ringkv/engine"
)

// backupScratch is the suffix of the checkpoint directories a node makes
// beside its data directory while it streams a backup.
const backupScratch = ".backup-"

// scratchName matches what BackupStream appends to DATA_DIR+backupScratch.
var scratchName = regexp.MustCompile(`^[0-9]+-[0-9a-f]{8}$`)

// BackupStream is a node's httpd.Config.Backup: each backup checkpoints
// e, whose directory is dataDir, beside it (same filesystem: hard links)
// and streams the checkpoint as an archive (Checkpoint.WriteTo).
func BackupStream(e *engine.Engine, dataDir string) func(ctx context.Context) (func(io.Writer) error, error) {
	return func(ctx context.Context) (func(io.Writer) error, error) {
		scratch := fmt.Sprintf("%s%s%d-%08x", filepath.Clean(dataDir), backupScratch, time.Now().UnixNano(), rand.Uint32())
		cp, err := TakeCheckpoint(e, scratch)
		if err != nil {
			return nil, err
		}
		return func(w io.Writer) error {
			defer cp.Close()
			_, err := cp.WriteTo(ctx, w)
			return err
		}, nil
	}
}

// RemoveStaleBackups deletes the checkpoints that backups a crash cut
// short left beside dataDir: they hold hard links to tables the store may
// since have dropped. Only names BackupStream makes are touched
// (DATA_DIR.backup-NANOS-RAND): a user's own DATA_DIR.backup-nov is not
// ours to delete. Failures are logged: they cost disk, not correctness.
func RemoveStaleBackups(dataDir string, lg *slog.Logger) {
	// Listed rather than globbed: a data dir may hold glob characters.
	clean := filepath.Clean(dataDir)
	entries, err := os.ReadDir(filepath.Dir(clean))
	if err != nil {
		lg.Warn("cannot look for stale backup checkpoints", "dir", filepath.Dir(clean), "err", err)
		return
	}
	for _, ent := range entries {
		rest, ok := strings.CutPrefix(ent.Name(), filepath.Base(clean)+backupScratch)
		if !ok || !scratchName.MatchString(rest) {
			continue
		}
		d := filepath.Join(filepath.Dir(clean), ent.Name())
		if err := os.RemoveAll(d); err != nil {
			lg.Warn("cannot remove a stale backup checkpoint", "dir", d, "err", err)
		}
	}
}
