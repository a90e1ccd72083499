package sstable

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// paxosKey is the engine's storage key of user key k's Paxos state (see
// engine/keys.go).
func paxosKey(k string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{'p'}, engine.Token([]byte(k))), k...)
}

// TestStreamCarriesPaxosState: a span's stream brings the Paxos states of
// its keys, and only those, to the receiver's sink, once its records are
// merged; the digests of both sides count them.
func TestStreamCarriesPaxosState(t *testing.T) {
	ctx := context.Background()
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	a, b := openEngine(t, fs, "a"), openEngine(t, fs, "b")
	defer a.Close()
	defer b.Close()
	const lo, hi = 1 << 62, 3 << 62
	want := map[string]string{}
	for i := range 200 {
		k := fmt.Sprint("k", i)
		must(t, a.Write([]byte(k), rec(ts+uint64(i), "v"), false))
		if i%3 == 0 {
			st := fmt.Sprint("state-", i)
			must(t, a.WritePaxos([]byte(k), []byte(st), nil))
			if tok := engine.Token([]byte(k)); tok >= lo && tok < hi {
				want[k] = st
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("no state in the span: the test proves nothing")
	}
	data := stream(t, a, lo, hi)
	got := map[string]string{}
	sink := func(_ context.Context, es []PaxosEntry) error {
		for _, e := range es {
			if _, _, err := b.Get(nil, e.Key); err != nil {
				t.Errorf("the state of %q came before its record: %v", e.Key, err)
			}
			got[string(e.Key)] = string(e.State)
		}
		return nil
	}
	d, err := ReceivePaxos(ctx, b, lo, hi, bytes.NewReader(data), "xfer", 0, nil, sink)
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("the sink got %d states, want %d", len(got), len(want))
	}
	for k, st := range want {
		if got[k] != st {
			t.Fatalf("state of %s = %q, want %q", k, got[k], st)
		}
	}
	if n, err := digestSpan(ctx, a, lo, hi); err != nil || d.Keys != n.Keys+int64(len(want)) {
		t.Fatalf("digest counts %d frames; the span holds %d records (%v) and %d states", d.Keys, n.Keys, err, len(want))
	}
	// Receive, with no sink, takes the same stream and drops the states.
	if _, err := Receive(ctx, b, lo, hi, bytes.NewReader(data), "xfer", 0, nil); err != nil {
		t.Fatalf("Receive of a stream with states: %v", err)
	}
}

// TestReceiveRejectsPaxosFrames: a paxos frame outside the span, with a
// malformed key, or in a version 1 stream refuses the whole stream:
// nothing is merged and the sink is never called.
func TestReceiveRejectsPaxosFrames(t *testing.T) {
	ctx := context.Background()
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	b := openEngine(t, fs, "b")
	defer b.Close()
	var in, out string // a key in the span [0, 1<<63) and one outside
	for i := 0; in == "" || out == ""; i++ {
		k := fmt.Sprint("k", i)
		if engine.Token([]byte(k)) < 1<<63 {
			in = k
		} else {
			out = k
		}
	}
	rec1 := rec(ts, "v").Append(nil)
	withPaxos := func(version byte, pk []byte) []byte {
		b := frames(0, 1<<63, [][2][]byte{{storageKey(in), rec1}, {pk, []byte("state")}}, 0)
		b[4] = version
		// frames writes every frame as a record: make the second a state.
		i := headerLen + 1 + uvarintLen(uint64(len(storageKey(in)))) + len(storageKey(in)) + uvarintLen(uint64(len(rec1))) + len(rec1)
		b[i] = framePaxos
		return b
	}
	bad := paxosKey(in)
	bad[1] ^= 1 // a token not the key's
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"outside the span", withPaxos(streamVersion, paxosKey(out)), engine.ErrInvalidTable},
		{"malformed key", withPaxos(streamVersion, bad), engine.ErrInvalidTable},
		{"a data key", withPaxos(streamVersion, storageKey(in)), ErrBadStream}, // not after the record
		{"version 1", withPaxos(streamV1, paxosKey(in)), ErrBadStream},
	} {
		called := false
		sink := func(context.Context, []PaxosEntry) error { called = true; return nil }
		_, err := ReceivePaxos(ctx, b, 0, 1<<63, bytes.NewReader(c.data), "xfer", 0, nil, sink)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if called {
			t.Errorf("%s: the sink was called", c.name)
		}
		if _, _, err := b.Get(nil, []byte(in)); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s: a refused stream merged its record: %v", c.name, err)
		}
	}
	// The same frames, well formed, are taken.
	called := false
	sink := func(_ context.Context, es []PaxosEntry) error {
		called = len(es) == 1 && string(es[0].Key) == in && string(es[0].State) == "state"
		return nil
	}
	if _, err := ReceivePaxos(ctx, b, 0, 1<<63, bytes.NewReader(withPaxos(streamVersion, paxosKey(in))), "xfer", 0, nil, sink); err != nil || !called {
		t.Fatalf("a good stream with a state: %v, sink called with it: %v", err, called)
	}
}
