package peer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// benchTransport is a Transport that allocates nothing: every replica has
// rec and takes every write. Inline, it answers before the call returns;
// otherwise on a goroutine of its own, as the real one answers on its
// senders, so that answers come after the request has returned too.
type benchTransport struct {
	Transport // the rest is never called
	rec       []byte
	jobs      chan benchJob // nil: answer inline
}

type benchJob struct {
	got  func([]byte, error)
	done func(error)
}

func (t *benchTransport) ReadAsync(addr string, key []byte, deadline time.Time, got func([]byte, error)) {
	if t.jobs == nil {
		got(t.rec, nil)
		return
	}
	t.jobs <- benchJob{got: got}
}

func (t *benchTransport) ApplyAsync(addr string, ms []Mutation, deadline time.Time, done func(error)) {
	if t.jobs == nil {
		done(nil)
		return
	}
	t.jobs <- benchJob{done: done}
}

// run answers the jobs until jobs is closed.
func (t *benchTransport) run() {
	for j := range t.jobs {
		if j.got != nil {
			j.got(t.rec, nil)
		} else {
			j.done(nil)
		}
	}
}

// benchCoordinator returns n1 of a three-node ring on real time (N = 3,
// so every node owns every key) over a benchTransport, with key k stored
// locally as the replicas hold it.
func benchCoordinator(b *testing.B, k []byte, async bool) (*coordinator, *View) {
	b.Helper()
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	rec := memtable.Record{Version: memtable.Version{TS: 5 << 16, Node: 1}, Value: []byte("value")}
	if err := e.Write(k, &rec, false); err != nil {
		b.Fatal(err)
	}
	tr := &benchTransport{rec: rec.Append(nil)}
	if async {
		tr.jobs = make(chan benchJob, 1024)
		go tr.run()
	}
	cfg := &Config{NodeID: "n1", Engine: e, Logger: lg, Transport: tr, Replicas: 3,
		RequestTimeout: 5 * time.Second, HedgeAfter: time.Second, Now: time.Now, Clock: memtable.NewClock(time.Now)}
	v := &View{Ring: ring.New([]string{"n1", "n2", "n3"}, 8, 3), Members: map[string]Member{}}
	for _, id := range v.Ring.Nodes() {
		v.Members[id] = Member{ID: id, HTTPAddr: id, State: Alive}
	}
	co := &coordinator{cfg: cfg, time: RealTime{}, view: &atomic.Pointer[View]{}, bg: &sync.WaitGroup{},
		hint:        func(string, Mutation) {},
		pendingFrom: func(uint64) ([]string, bool) { return nil, false }}
	co.view.Store(v)
	b.Cleanup(func() {
		co.bg.Wait()
		if tr.jobs != nil {
			close(tr.jobs)
		}
	})
	return co, v
}

// BenchmarkClusterGet measures one quorum read's coordinator work (Get:
// this node's copy and one replica's) over a transport that costs nothing:
// allocs/op is the coordinator's own. ns/op on a shared machine is noise.
func BenchmarkClusterGet(b *testing.B) {
	for _, async := range []bool{false, true} {
		b.Run(map[bool]string{false: "inline", true: "async"}[async], func(b *testing.B) {
			k := []byte("bench-key")
			co, _ := benchCoordinator(b, k, async)
			ctx := context.Background()
			var dst []byte
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var err error
				dst, _, err = co.Get(ctx, dst[:0], k, Quorum)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClusterPut measures one quorum write's coordinator work (this
// node's copy, two replicas) over a transport that costs nothing; the
// record is stamped in the past, so that there is no commit wait, as with
// clocks in sync. The local engine write is in it (BenchmarkLocalWrite
// alone).
func BenchmarkClusterPut(b *testing.B) {
	for _, async := range []bool{false, true} {
		b.Run(map[bool]string{false: "inline", true: "async"}[async], func(b *testing.B) {
			k := []byte("bench-key")
			co, v := benchCoordinator(b, k, async)
			ctx := context.Background()
			vd := ClockVerdict{Verified: true, Compared: true}
			rec := memtable.Record{Version: memtable.Version{TS: 6 << 16, Node: 1}, Value: []byte("value")}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := co.clusterWrite(ctx, v, "put", k, &rec, Quorum, vd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLocalWrite is the engine write inside BenchmarkClusterPut.
func BenchmarkLocalWrite(b *testing.B) {
	k := []byte("bench-key")
	co, _ := benchCoordinator(b, k, false)
	rec := memtable.Record{Version: memtable.Version{TS: 6 << 16, Node: 1}, Value: []byte("value")}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := co.cfg.Engine.Write(k, &rec, false); err != nil {
			b.Fatal(err)
		}
	}
}
