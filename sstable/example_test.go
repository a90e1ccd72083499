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

	// The donor streams a snapshot of the span; the receiver stages the
	// records as tables and merges them in once the trailer matched, so
	// writes it took meanwhile are kept. Between two nodes the pipe is an
	// HTTP response (GET /internal/span).
	lo, hi := uint64(1)<<63, uint64(0) // [2^63, 2^64)
	snap, err := donor.NewSnapshot()
	if err != nil {
		panic(err)
	}
	pr, pw := io.Pipe()
	sent := make(chan sstable.Digest, 1)
	go func() {
		defer snap.Close()
		d, _, err := sstable.Send(ctx, snap, lo, hi, pw, nil)
		pw.CloseWithError(err)
		sent <- d
	}()
	got, err := sstable.Receive(ctx, receiver, lo, hi, pr, "incoming", 0, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(got.Keys > 0, got == <-sent)
	// Output: true true
}
