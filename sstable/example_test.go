package sstable_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/sstable"
)

// Moving the upper half of the ring from one store to another.
func Example() {
	ctx := context.Background()
	fs := vfs.NewMem() // files must be on the receiver's filesystem
	open := func(dir string) *engine.Engine {
		e, err := engine.Open(engine.Options{FS: fs, Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GCInterval: -1})
		if err != nil {
			panic(err)
		}
		return e
	}
	donor, receiver := open("donor"), open("receiver")
	defer donor.Close()
	defer receiver.Close()
	for i := range 100 {
		r := memtable.Record{Version: memtable.Version{TS: 1, Node: 1}, Value: []byte("v")}
		if err := donor.Write(fmt.Appendf(nil, "key-%d", i), &r, false); err != nil {
			panic(err)
		}
	}

	lo, hi := uint64(1)<<63, uint64(0) // [2^63, 2^64)
	snap, err := donor.NewSnapshot()
	if err != nil {
		panic(err)
	}
	files, digest, err := sstable.Export(ctx, snap, lo, hi, "transfer", 0)
	snap.Close()
	if err != nil {
		panic(err)
	}
	// ... send files and digest to the receiver ...
	if err := sstable.Ingest(ctx, receiver, lo, hi, files, digest); err != nil {
		panic(err)
	}
	got, err := sstable.DigestSpan(ctx, receiver, lo, hi)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(files), "file,", got == digest)
	// Output: 1 file, true
}
