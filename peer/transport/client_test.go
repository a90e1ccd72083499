package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// queued returns the number of Apply calls waiting in tr's queue for addr.
func (tr *Transport) queued(addr string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	l := tr.lanes[laneKey{addr, laneApply}]
	if l == nil {
		return 0
	}
	return len(l.calls)
}

// waitHeld waits until the requests held by a fakeBlock carry want
// mutations in all, counting what tr still has queued for addr as held.
// It returns the number of requests held.
func waitHeld(t *testing.T, entered <-chan int, tr *Transport, addr string, want int) int {
	t.Helper()
	held, reqs, queued := 0, 0, 0
	defer func() {
		if held+queued != want { // wait.For failed the test
			t.Logf("%d mutations held in %d requests, %d calls queued", held, reqs, queued)
		}
	}()
	wait.For(t, time.Minute, func() bool {
		for {
			select {
			case n := <-entered:
				held += n
				reqs++
			default:
				queued = tr.queued(addr)
				return held+queued == want
			}
		}
	}, fmt.Sprintf("%d mutations held or queued", want))
	return reqs
}

// waitQueued waits until n Apply calls wait in tr's queue for addr.
func waitQueued(t *testing.T, tr *Transport, addr string, n int) {
	t.Helper()
	wait.For(t, time.Minute, func() bool { return tr.queued(addr) == n }, fmt.Sprintf("%d queued calls", n))
}

func TestTransportApply(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	ms := testMutations("k", 3, 4)
	if err := tr.Apply(testCtx(t, 10*time.Second), addr, ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if got := ts.cl.record(string(m.Key)); !bytes.Equal(got, m.Record) {
			t.Errorf("record of %q = %x, want %x", m.Key, got, m.Record)
		}
	}
	if applies, applied := ts.cl.counts(); applies != 1 || applied != 3 {
		t.Errorf("ApplyLocal: %d calls, %d mutations; want 1, 3", applies, applied)
	}
	// A newer version wins, an older one does not.
	newer := []peer.Mutation{{Key: ms[0].Key, Record: testRecord(5, "newer")}}
	older := []peer.Mutation{{Key: ms[1].Key, Record: testRecord(3, "older")}}
	for _, b := range [][]peer.Mutation{newer, older} {
		if err := tr.Apply(testCtx(t, 10*time.Second), addr, b); err != nil {
			t.Fatal(err)
		}
	}
	if got := ts.cl.record(string(ms[0].Key)); !bytes.Equal(got, newer[0].Record) {
		t.Errorf("the newer record did not win")
	}
	if got := ts.cl.record(string(ms[1].Key)); !bytes.Equal(got, ms[1].Record) {
		t.Errorf("the older record won")
	}
}

// TestTransportApplyBatches: concurrent Apply calls to one peer queue
// behind the requests in flight and go out together.
func TestTransportApplyBatches(t *testing.T) {
	const calls = 200
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	entered, release := ts.cl.blockApply(t)
	ctx := testCtx(t, 30*time.Second)
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			m := peer.Mutation{Key: fmt.Appendf(nil, "key-%03d", i), Record: testRecord(uint64(i+1), "v")}
			errs <- tr.Apply(ctx, addr, []peer.Mutation{m})
		})
	}
	// Every call is in a request the server holds or in the queue.
	held := waitHeld(t, entered, tr, addr, calls)
	if held > 4 {
		t.Errorf("%d requests in flight, want at most Senders (4)", held)
	}
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	applies, applied := ts.cl.counts()
	t.Logf("%d Apply calls went out in %d requests", calls, applies)
	if applied != calls {
		t.Errorf("the server got %d mutations, want %d", applied, calls)
	}
	if applies >= calls {
		t.Errorf("%d requests for %d calls: no batching", applies, calls)
	}
	for i := range calls {
		if ts.cl.record(fmt.Sprintf("key-%03d", i)) == nil {
			t.Fatalf("key-%03d was not delivered", i)
		}
	}
}

// TestTransportApplyBatchLimit: calls that queue up behind a request in
// flight are batched, but a batch must not exceed MaxBatch mutations,
// which the receiver refuses.
func TestTransportApplyBatchLimit(t *testing.T) {
	// Byte limits out of the way: this is about the count.
	ts, addr, tr := newTransportPair(t, Config{}, Config{Senders: 1, MaxBatchBytes: 1 << 30})
	entered, release := ts.cl.blockApply(t)
	ctx := testCtx(t, 30*time.Second)
	const big = 3000 // two of them make more than MaxBatch
	batches := [][]peer.Mutation{testMutations("first", 1, 1), testMutations("a", big, 1), testMutations("b", big, 1)}
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, ms := range batches {
		wg.Go(func() { errs[i] = tr.Apply(ctx, addr, ms) })
		// Queue them in order: the first is in flight, the others wait.
		if i == 0 {
			waitHeld(t, entered, tr, addr, 1)
		} else {
			waitQueued(t, tr, addr, i)
		}
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply of %d mutations: %v", len(batches[i]), err)
		}
	}
	if _, applied := ts.cl.counts(); applied != 1+2*big {
		t.Errorf("the server got %d mutations, want %d", applied, 1+2*big)
	}
}

// TestTransportApplyLargeBatch: a batch of values that are each within
// MaxValueSize must be delivered, however many there are: hint replay
// sends 256 at once, and the sender batches up to MaxBatch.
func TestTransportApplyLargeBatch(t *testing.T) {
	const maxValue = 1024
	ts, addr, tr := newTransportPairBody(t, Config{}, Config{}, 2*maxValue+64<<10)
	ms := make([]peer.Mutation, 100)
	for i := range ms {
		ms[i] = peer.Mutation{Key: fmt.Appendf(nil, "k%03d", i), Record: testRecord(1, strings.Repeat("v", maxValue))}
	}
	if err := tr.Apply(testCtx(t, 10*time.Second), addr, ms); err != nil {
		t.Fatalf("Apply of %d values of %d bytes: %v", len(ms), maxValue, err)
	}
	if _, applied := ts.cl.counts(); applied != len(ms) {
		t.Errorf("the server got %d mutations, want %d", applied, len(ms))
	}
}

func TestTransportRead(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)
	big := testRecord(9, strings.Repeat("v", 256<<10))
	ms := []peer.Mutation{{Key: []byte("k"), Record: testRecord(9, "value")}, {Key: []byte("big"), Record: big}}
	if err := tr.Apply(ctx, addr, ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		got, err := tr.Read(ctx, addr, m.Key)
		if err != nil {
			t.Fatalf("Read(%q): %v", m.Key, err)
		}
		if !bytes.Equal(got, m.Record) {
			t.Errorf("Read(%q) = %x, want %x", m.Key, clipB(got), clipB(m.Record))
		}
	}
	_, err := tr.Read(ctx, addr, []byte("missing"))
	if !errors.Is(err, peer.ErrNotFound) {
		t.Errorf("Read(missing) = %v, want ErrNotFound", err)
	}
	_ = ts
}

// TestTransportConcurrentReads: reads of one peer that arrive while a
// read is in flight queue and go out together, past MaxReadBatch too;
// each gets its own key's record, or none.
func TestTransportConcurrentReads(t *testing.T) {
	const reads = 150 // more than two batches of MaxReadBatch
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	ctx := testCtx(t, 30*time.Second)
	ms := testMutations("k", reads, 1)
	if err := tr.Apply(ctx, addr, ms[:reads/2]); err != nil { // the other half stays absent
		t.Fatal(err)
	}
	entered, release := ts.cl.blockRead(t)
	errs := make(chan error, reads)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			got, err := tr.Read(ctx, addr, m.Key)
			switch {
			case i < reads/2 && err == nil && !bytes.Equal(got, m.Record):
				err = fmt.Errorf("read %s: got %x, want %x", m.Key, got, m.Record)
			case i >= reads/2 && !errors.Is(err, peer.ErrNotFound):
				err = fmt.Errorf("read of absent %s: %x, %v; want ErrNotFound", m.Key, got, err)
			case i >= reads/2:
				err = nil
			}
			errs <- err
		})
	}
	<-entered // the first batch is held; the rest queue behind it
	wait.For(t, time.Minute, func() bool { return queuedReads(tr, addr) != 0 }, "reads to queue behind the batch in flight")
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// queuedReads returns the number of reads waiting in tr's queue for addr.
func queuedReads(tr *Transport, addr string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if l := tr.lanes[laneKey{addr, laneRead}]; l != nil {
		return len(l.calls)
	}
	return 0
}

func TestTransportScan(t *testing.T) {
	_, addr, tr := newTransportPair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)
	all := append(testMutations("a/", 5, 1), testMutations("b/", 2, 1)...)
	if err := tr.Apply(ctx, addr, all); err != nil {
		t.Fatal(err)
	}
	p, err := tr.Scan(ctx, addr, peer.LocalScan{Prefix: []byte("a/"), Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 3 || !p.More {
		t.Fatalf("first page: %d items, more=%v; want 3, true", len(p.Items), p.More)
	}
	p2, err := tr.Scan(ctx, addr, peer.LocalScan{Prefix: []byte("a/"), After: p.Items[2].Key, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Items) != 2 || p2.More {
		t.Fatalf("second page: %d items, more=%v; want 2, false", len(p2.Items), p2.More)
	}
	for i, m := range append(p.Items, p2.Items...) {
		if !bytes.Equal(m.Key, all[i].Key) || !bytes.Equal(m.Record, all[i].Record) {
			t.Errorf("item %d = %q, want %q", i, m.Key, all[i].Key)
		}
	}
	// A bad query is refused by the server.
	if _, err := tr.Scan(ctx, addr, peer.LocalScan{}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("Scan with a zero limit: %v, want a 400", err)
	}
}

func TestTransportGossipAddrs(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	got, err := tr.GossipAddrs(testCtx(t, 10*time.Second), addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := ts.cl.GossipAddrs(); !slices.Equal(got, want) {
		t.Errorf("GossipAddrs = %q, want %q", got, want)
	}
}

// TestTransportUnreachable: calls to a closed port, or to a peer that
// accepts and never answers, fail by the ctx deadline.
func TestTransportUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	closed := ln.Addr().String()
	ln.Close()

	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hung.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	tr := mustNew(t, Config{})
	defer tr.Close()
	const timeout = 300 * time.Millisecond
	calls := map[string]func(ctx context.Context, addr string) error{
		"Apply": func(ctx context.Context, addr string) error {
			return tr.Apply(ctx, addr, testMutations("k", 1, 1))
		},
		"Read": func(ctx context.Context, addr string) error {
			_, err := tr.Read(ctx, addr, []byte("k"))
			return err
		},
		"Scan": func(ctx context.Context, addr string) error {
			_, err := tr.Scan(ctx, addr, peer.LocalScan{Limit: 1})
			return err
		},
		"GossipAddrs": func(ctx context.Context, addr string) error {
			_, err := tr.GossipAddrs(ctx, addr)
			return err
		},
	}
	for _, addr := range []string{closed, hung.Addr().String()} {
		for name, call := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			start := time.Now()
			err := call(ctx, addr)
			took := time.Since(start)
			cancel()
			if err == nil {
				t.Errorf("%s to %s succeeded", name, addr)
			}
			if errors.Is(err, peer.ErrNotFound) {
				t.Errorf("%s to %s: %v reads as not found", name, addr, err)
			}
			if took > timeout+time.Second {
				t.Errorf("%s to %s took %v, ctx deadline %v", name, addr, took, timeout)
			}
		}
	}
}

func TestTransportSecret(t *testing.T) {
	_, addr, good := newTransportPair(t, Config{Secrets: keyring.New("", []byte("s3cret"))},
		Config{NodeID: "n1", Secrets: keyring.New("", []byte("s3cret"))})
	ctx := testCtx(t, 10*time.Second)
	if err := good.Apply(ctx, addr, testMutations("k", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := good.Read(ctx, addr, []byte("k0000")); err != nil {
		t.Fatal(err)
	}
	if _, err := good.Scan(ctx, addr, peer.LocalScan{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := good.GossipAddrs(ctx, addr); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"", "wrong"} {
		var secrets *keyring.Keyring
		if secret != "" {
			secrets = keyring.New("", []byte(secret))
		}
		tr := mustNew(t, Config{NodeID: "n1", Secrets: secrets})
		errs := map[string]error{"Apply": tr.Apply(ctx, addr, testMutations("k", 1, 2))}
		_, errs["Read"] = tr.Read(ctx, addr, []byte("k0000"))
		_, errs["Scan"] = tr.Scan(ctx, addr, peer.LocalScan{Limit: 1})
		_, errs["GossipAddrs"] = tr.GossipAddrs(ctx, addr)
		for name, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("%s with secret %q: %v, want an error mentioning 401", name, secret, err)
			}
		}
		tr.Close()
	}
}

// transportGoroutines counts the goroutines running a Transport's code or
// fasthttp's client, but for fasthttp's connection cleaners: they sleep
// out their interval (up to MaxIdleConnDuration, a minute) before they
// notice that no connection is left.
func transportGoroutines() (n int, stacks string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var kept []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "connsCleaner") || strings.Contains(g, "mCleaner") {
			continue
		}
		if strings.Contains(g, "transport.(*Transport)") || strings.Contains(g, "fasthttp.(*HostClient)") || strings.Contains(g, "fasthttp.(*Client)") {
			kept = append(kept, g)
		}
	}
	return len(kept), strings.Join(kept, "\n\n")
}

func TestTransportCloseStopsSenders(t *testing.T) {
	_, addr, _ := newTransportPair(t, Config{}, Config{})
	before := runtime.NumGoroutine()
	tr := mustNew(t, Config{Senders: 8})
	ctx := testCtx(t, 10*time.Second)
	if err := tr.Apply(ctx, addr, testMutations("k", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Read(ctx, addr, []byte("k0000")); err != nil {
		t.Fatal(err)
	}
	if n, _ := transportGoroutines(); n < 8 {
		t.Fatalf("%d transport goroutines running, want the 8 senders at least", n)
	}
	tr.Close()
	tr.Close() // twice is fine
	// Close waits for the senders, but a goroutine lingers a moment after
	// it says it is done.
	var left string // the stacks of the last look's transport goroutines
	defer func() {
		if left != "" { // wait.For failed the test
			t.Logf("transport goroutines left after Close:\n%s", left)
		}
	}()
	wait.For(t, time.Minute, func() bool {
		var n int
		n, left = transportGoroutines()
		return n == 0
	}, "the transport's goroutines to end after Close")
	t.Logf("goroutines: %d before, %d after Close (fasthttp's cleaners and server workers linger a while)", before, runtime.NumGoroutine())

	// Calls after Close fail at once.
	start := time.Now()
	if err := tr.Apply(ctx, addr, testMutations("k", 1, 2)); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if time.Since(start) > time.Second {
		t.Error("Apply after Close waited")
	}
}

// TestTransportCloseAnswersQueuedCalls: Apply calls still queued when
// Close is called must return soon, not wait for their ctx.
func TestTransportCloseAnswersQueuedCalls(t *testing.T) {
	for round := range 8 {
		ts, addr, tr := newTransportPair(t, Config{}, Config{Senders: 1})
		entered, release := ts.cl.blockApply(t)
		first := make(chan error, 1)
		go func() { first <- tr.Apply(testCtx(t, 10*time.Second), addr, testMutations("first", 1, 1)) }()
		<-entered // the server holds it
		queued := make(chan error, 1)
		go func() { queued <- tr.Apply(testCtx(t, 10*time.Second), addr, testMutations("queued", 1, 1)) }()
		waitQueued(t, tr, addr, 1)

		closed := make(chan struct{})
		go func() { tr.Close(); close(closed) }()
		<-tr.stop // Close has begun: nothing more is queued
		release()
		<-closed
		if err := <-first; err != nil {
			t.Fatalf("round %d: the Apply in flight: %v", round, err)
		}
		select {
		case err := <-queued:
			t.Logf("round %d: the queued Apply returned %v", round, err)
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: an Apply queued at Close has not returned 2s after Close (it waits for its ctx)", round)
		}
	}
}

// TestTransportQueueFullFailsFast: when a peer hangs and its queue is
// full, further calls fail at once (the coordinator keeps hints) instead
// of holding the client requests that made them.
func TestTransportQueueFullFailsFast(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{Senders: 1, MaxQueued: 2})
	entered, release := ts.cl.blockApply(t)
	defer release()
	deadline := time.Now().Add(30 * time.Second)
	results := make(chan error, 4)
	cb := func(err error) { results <- err }
	tr.ApplyAsync(addr, testMutations("inflight", 1, 1), deadline, cb)
	<-entered // the server holds it: the queue is empty
	tr.ApplyAsync(addr, testMutations("q1", 1, 1), deadline, cb)
	tr.ApplyAsync(addr, testMutations("q2", 1, 1), deadline, cb)
	start := time.Now()
	tr.ApplyAsync(addr, testMutations("over", 1, 1), deadline, cb)
	select {
	case err := <-results:
		if err == nil {
			t.Fatal("a call past MaxQueued succeeded")
		}
		if time.Since(start) > time.Second {
			t.Errorf("a call past MaxQueued took %v to fail", time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call past MaxQueued neither failed nor returned")
	}
	release()
	for range 3 {
		if err := <-results; err != nil {
			t.Errorf("a queued call failed: %v", err)
		}
	}
	if _, applied := ts.cl.counts(); applied != 3 {
		t.Errorf("the server got %d mutations, want 3", applied)
	}
}

// TestTransportApplyRefusals: a replica's refusals come back as the
// errors the coordinator acts on: 409 as ErrClockOffset (no hint), 403
// as ErrNotOwner.
func TestTransportApplyRefusals(t *testing.T) {
	ts, addr, tr := newTransportPair(t, Config{}, Config{})
	for _, want := range []error{peer.ErrClockOffset, peer.ErrNotOwner} {
		ts.cl.setApplyErr(fmt.Errorf("refused: %w", want))
		err := tr.Apply(testCtx(t, 10*time.Second), addr, testMutations("r", 1, 1))
		if !errors.Is(err, want) {
			t.Errorf("Apply refused with %v: got %v", want, err)
		}
	}
}
