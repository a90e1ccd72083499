package peer

import (
	"context"
	"errors"
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

// fakeTime is a TimeSource that moves only when a test advances it.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan struct{} // one token per timer armed (NewTimer, Reset)
}

func newFakeTime() *fakeTime {
	return &fakeTime{now: time.Unix(1_800_000_000, 0), armed: make(chan struct{}, 64)}
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	f.timers = append(f.timers, t)
	f.mu.Unlock()
	t.Reset(d)
	return t
}

// waitArmed waits until k more timers have been armed.
func (f *fakeTime) waitArmed(t *testing.T, k int) {
	t.Helper()
	for range k {
		select {
		case <-f.armed:
		case <-time.After(time.Minute): // a hang, not a timing assumption
			t.Fatal("no timer armed")
		}
	}
}

// drain forgets the timers armed so far.
func (f *fakeTime) drain() {
	for {
		select {
		case <-f.armed:
		default:
			return
		}
	}
}

// advance moves the time on by d and fires the timers due.
func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.timers {
		if t.active && !t.at.After(f.now) {
			t.active = false
			t.c <- f.now
		}
	}
}

type fakeTimer struct {
	f      *fakeTime
	c      chan time.Time
	at     time.Time // under f.mu
	active bool      // under f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	was := t.active
	t.at, t.active = t.f.now.Add(d), true
	t.f.mu.Unlock()
	t.f.armed <- struct{}{}
	return was
}

// call is one asynchronous call a fakeTransport holds for the test to answer.
type call struct {
	addr  string
	read  func(rec []byte, err error)
	apply func(error)
}

// fakeTransport hands every read and replica write to the test, on calls.
type fakeTransport struct {
	Transport // the rest is never called
	calls     chan call
}

func (f *fakeTransport) ReadAsync(addr string, key []byte, deadline time.Time, got func([]byte, error)) {
	f.calls <- call{addr: addr, read: got}
}

func (f *fakeTransport) ApplyAsync(addr string, ms []Mutation, deadline time.Time, done func(error)) {
	f.calls <- call{addr: addr, apply: done}
}

// next returns the next call the coordinator made.
func (f *fakeTransport) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(time.Minute): // a hang, not a timing assumption
		t.Fatal("no call")
		return call{}
	}
}

// loopCoordinator returns a coordinator n1 of a three-node ring (N = 3,
// so every node owns every key) on fake time and a fake transport, with
// key k stored locally at version (ts, 1).
func loopCoordinator(t *testing.T, k []byte, ts uint64) (*coordinator, *View, *fakeTime, *fakeTransport) {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Write(k, &memtable.Record{Version: memtable.Version{TS: ts, Node: 1}, Value: []byte("local")}, false); err != nil {
		t.Fatal(err)
	}
	ft, tr := newFakeTime(), &fakeTransport{calls: make(chan call, 16)}
	cfg := &Config{NodeID: "n1", Engine: e, Logger: lg, Transport: tr, Replicas: 3,
		RequestTimeout: time.Second, HedgeAfter: 100 * time.Millisecond, Now: ft.Now, Clock: memtable.NewClock(ft.Now)}
	v := &View{Ring: ring.New([]string{"n1", "n2", "n3"}, 8, 3), Members: map[string]Member{}}
	for _, id := range v.Ring.Nodes() {
		v.Members[id] = Member{ID: id, HTTPAddr: id, State: Alive}
	}
	co := &coordinator{cfg: cfg, time: ft, view: &atomic.Pointer[View]{}, bg: &sync.WaitGroup{},
		hint:        func(string, Mutation) {},
		pendingFrom: func(uint64) ([]string, bool) { return nil, false }}
	co.view.Store(v)
	t.Cleanup(co.bg.Wait)
	return co, v, ft, tr
}

type getResult struct {
	val []byte
	ver Version
	err error
}

// TestClusterGetHedges drives clusterGet's hedge and timeout on fake time:
// with n2 hanging, a quorum read is answered from this node's copy and
// n3's, asked only once the hedge timer fired; with n3 hanging too, the
// request timeout ends it.
func TestClusterGetHedges(t *testing.T) {
	k := []byte("k")
	co, v, ft, tr := loopCoordinator(t, k, 5)
	got := make(chan getResult, 1)
	go func() {
		val, ver, err := co.clusterGet(context.Background(), v, nil, k, Quorum)
		got <- getResult{val, ver, err}
	}()
	// The first round asks one other replica (this node's own copy
	// answers at once).
	first := tr.next(t)
	ft.waitArmed(t, 2) // the request timeout and the hedge
	ft.advance(99 * time.Millisecond)
	select {
	case c := <-tr.calls:
		t.Fatalf("asked %s before the hedge", c.addr)
	default:
	}
	ft.advance(time.Millisecond)
	hedged := tr.next(t)
	if hedged.addr == first.addr || hedged.addr == "n1" {
		t.Fatalf("the hedge asked %s; the first round asked %s", hedged.addr, first.addr)
	}
	hedged.read(testRec(7, false), nil)
	r := <-got
	if r.err != nil || string(r.val) != "v7" || r.ver.TS != 7 {
		t.Fatalf("get = %q %v %v, want the hedged replica's newer record", r.val, r.ver, r.err)
	}
	ft.drain()
	// The stale local copy was repaired.
	if _, rec, err := co.cfg.Engine.Get(nil, k); err != nil || string(rec.Value) != "v7" {
		t.Fatalf("local copy after the read: %q, %v", rec.Value, err)
	}

	// Both others hang: the hedge asks the third, and the timeout ends it.
	go func() {
		val, ver, err := co.clusterGet(context.Background(), v, nil, k, Quorum)
		got <- getResult{val, ver, err}
	}()
	tr.next(t)
	ft.waitArmed(t, 2)
	ft.advance(100 * time.Millisecond)
	tr.next(t)
	ft.waitArmed(t, 1) // the hedge, again
	ft.advance(900 * time.Millisecond)
	r = <-got
	var ue *UnavailableError
	if !errors.As(r.err, &ue) || !ue.TimedOut || ue.Answered != 1 {
		t.Fatalf("get with two replicas hanging = %v", r.err)
	}
}
