package peer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
)

// TestClusterGetLateAnswer: a replica that answers after its read has
// returned (it was hedged around) does not reach the next read, which a
// pooled request state might otherwise be serving by then.
func TestClusterGetLateAnswer(t *testing.T) {
	k := []byte("k")
	co, v, ft, tr := loopCoordinator(t, k, 5)
	get := func() chan getResult {
		got := make(chan getResult, 1)
		go func() {
			val, ver, err := co.clusterGet(context.Background(), v, nil, k, Quorum)
			got <- getResult{val, ver, err}
		}()
		return got
	}
	for range 20 { // pools are random under the race detector: try often
		got := get()
		late := tr.next(t)
		ft.waitArmed(t, 2) // the request timeout and the hedge
		ft.advance(100 * time.Millisecond)
		tr.next(t).read(testRec(5, false), nil)
		if r := <-got; r.err != nil || r.ver.TS != 5 {
			t.Fatalf("hedged get = %q %v %v", r.val, r.ver, r.err)
		}
		ft.drain()

		got = get()
		next := tr.next(t)
		ft.waitArmed(t, 2)
		// The first read's straggler, newer than anything: it is not the
		// second read's answer.
		late.read(testRec(9, false), nil)
		next.read(testRec(5, false), nil)
		if r := <-got; r.err != nil || r.ver.TS != 5 {
			t.Fatalf("get after a late answer = %q %v %v, want the record at 5", r.val, r.ver, r.err)
		}
		ft.drain()
	}
}

// TestClusterWriteLateAnswer: replicas that answer after their write has
// returned do not reach the next write, which a pooled request state might
// otherwise be serving by then.
func TestClusterWriteLateAnswer(t *testing.T) {
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
	for range 20 { // pools are random under the race detector: try often
		// One: this node's copy answers it; both replicas answer late.
		got := write(One)
		a, b := tr.next(t), tr.next(t)
		ft.waitArmed(t, 2) // the request timeout and the commit wait
		ft.advance(time.Millisecond)
		if r := <-got; r.err != nil {
			t.Fatalf("put at one: %v", r.err)
		}
		ft.drain()

		got = write(All)
		c, d := tr.next(t), tr.next(t)
		ft.waitArmed(t, 1) // the request timeout
		// The first write's stragglers fail: not the second write's
		// replicas, which all succeed.
		a.apply(errors.New("late"))
		b.apply(errors.New("late"))
		c.apply(nil)
		d.apply(nil)
		select {
		case r := <-got:
			t.Fatalf("put at all after late failures ended before its commit wait: %v", r.err)
		case <-ft.armed: // the commit wait
		case <-time.After(time.Minute): // a hang, not a timing assumption
			t.Fatal("no commit wait")
		}
		ft.advance(time.Millisecond)
		if r := <-got; r.err != nil {
			t.Fatalf("put at all after late failures: %v", r.err)
		}
		ft.drain()
	}
}

// TestTimerReuse: a pooled request's timer that fired unseen (its
// request ended on an answer first) is stopped and emptied, so that the
// next request's timer, reset, does not tick at once.
func TestTimerReuse(t *testing.T) {
	ft := newFakeTime()
	var tm Timer
	armTimer(ft, &tm, time.Second)
	ft.advance(time.Second) // fires: a tick waits in its channel, unseen
	stopTimer(tm)
	armTimer(ft, &tm, time.Second)
	select {
	case <-tm.C():
		t.Fatal("the reused timer ticked before its time")
	default:
	}
	ft.advance(time.Second)
	select {
	case <-tm.C():
	default:
		t.Fatal("the reused timer did not tick")
	}
}
