package peer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
)

type writeResult struct {
	ver Version
	err error
}

// TestClusterWriteOnFakeTime drives clusterWrite's timeout and commit wait
// on fake time: at consistency all, a hanging replica fails the write
// only when the request timeout passes; at quorum, the write is answered
// once its timestamp's next millisecond has passed on this node's clock.
func TestClusterWriteOnFakeTime(t *testing.T) {
	k := []byte("k")
	co, v, ft, tr := loopCoordinator(t, k, 1)
	write := func(cons Consistency) chan writeResult {
		rec := &memtable.Record{Version: memtable.Version{Node: 1, TS: co.cfg.Clock.Now()}, Value: []byte("w")}
		out := make(chan writeResult, 1)
		go func() {
			ver, err := co.clusterWrite(context.Background(), v, "put", k, rec, cons, ClockVerdict{Verified: true, Compared: true})
			out <- writeResult{ver, err}
		}()
		return out
	}
	got := write(All)
	a, b := tr.next(t), tr.next(t)
	a.apply(nil)
	ft.waitArmed(t, 1) // the request timeout
	ft.advance(999 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("the write ended before the timeout: %v", r.err)
	default:
	}
	ft.advance(time.Millisecond)
	r := <-got
	var ue *UnavailableError
	if !errors.As(r.err, &ue) || !ue.TimedOut || ue.Answered != 2 || ue.Needed != 3 {
		t.Fatalf("put at all with a replica hanging = %v", r.err)
	}
	b.apply(errors.New("too late")) // its hint is kept all the same
	ft.drain()

	got = write(Quorum)
	tr.next(t).apply(nil)
	hung := tr.next(t)
	defer hung.apply(errors.New("too late")) // before the coordinator's WaitGroup
	ft.waitArmed(t, 2)                       // the request timeout and the commit wait
	select {
	case r := <-got:
		t.Fatalf("the write was answered before its commit wait: %v", r.err)
	default:
	}
	ft.advance(time.Millisecond)
	if r := <-got; r.err != nil {
		t.Fatalf("quorum put: %v", r.err)
	}
	if co.commitWaits.Load() != 1 {
		t.Fatalf("%d commit waits, want 1", co.commitWaits.Load())
	}
}
