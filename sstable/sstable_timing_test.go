package sstable

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// BenchmarkExportIngest moves 64 MiB of records with 100-byte values from
// one engine to another: Export from a snapshot, then Ingest (digest check,
// ingest and excise). Bytes are the records' storage keys and values.
func BenchmarkExportIngest(b *testing.B) {
	for _, disk := range []bool{false, true} {
		name := "fs=mem"
		if disk {
			name = "fs=disk"
		}
		b.Run(name, func(b *testing.B) {
			fs, dir := vfs.FS(vfs.NewMem()), ""
			if disk {
				fs, dir = vfs.Default, b.TempDir()
			}
			ctx := context.Background()
			src, dst := openEngine(b, fs, fs.PathJoin(dir, "src")), openEngine(b, fs, fs.PathJoin(dir, "dst"))
			defer src.Close()
			defer dst.Close()
			const valueSize, total = 100, 64 << 20
			val := []byte(value(0))[:valueSize]
			batch := src.NewBatch()
			for i := range total / valueSize {
				r := memtable.Record{Version: memtable.Version{TS: uint64(i + 1), Node: 1}, Value: val}
				must(b, batch.Write(fmt.Appendf(nil, "key-%08d", i), &r))
				if batch.Len() == 4096 {
					must(b, src.Commit(batch, false))
					batch = src.NewBatch()
				}
			}
			must(b, src.Commit(batch, false))
			// Settle the donor's LSM, so its compactions do not run
			// during the measurement.
			must(b, src.Compact(ctx))
			var size int64
			must(b, src.ExportSpan(ctx, 0, 0, func(k, v []byte) error { size += int64(len(k) + len(v)); return nil }))
			b.SetBytes(size)
			xfer := fs.PathJoin(dir, "xfer")
			for b.Loop() {
				snap, err := src.NewSnapshot()
				must(b, err)
				files, d, err := Export(ctx, snap, 0, 0, xfer, 0)
				snap.Close()
				must(b, err)
				must(b, Ingest(ctx, dst, 0, 0, files, d))
			}
		})
	}
}

func BenchmarkDigest(b *testing.B) {
	k, v := []byte("d01234567key-00000001"), []byte(value(0))
	d := newDigester()
	b.SetBytes(int64(len(k) + len(v)))
	for b.Loop() {
		d.add(k, v)
	}
}
