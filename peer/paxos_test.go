package peer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/ringkv/ringkv/memtable"
)

// TestCASPlan runs the transcripts in testdata/casplan: each step feeds
// one attempt of a conditional write (or serial read) an owner's answer
// or the timeout, and prints what the plan sends and how it ended (go test
// -run TestCASPlan -rewrite regenerates them). Ballots and record
// versions are written TS.NODE; a record is VERSION[:VALUE] or
// VERSION(tomb).
//
//	plan owners=(n1,n2,n3) ballot=10.1 [if=absent|present|match=V|serial] [value=NEW] [mine=(REC,...)]
//	promise from=n1 [current=REC] [accepted=B value=REC] [committed=B]
//	refuse from=n1 promised=B        (a prepare or a proposal refused)
//	accept from=n1
//	committed from=n1
//	fail from=n1                     (no answer in this phase)
//	timeout
func TestCASPlan(t *testing.T) {
	var p *casPlan
	datadriven.RunTest(t, "testdata/casplan", func(t *testing.T, d *datadriven.TestData) string {
		var msg casMsg
		var id string
		if d.Cmd != "plan" && d.Cmd != "timeout" {
			d.ScanArgs(t, "from", &id)
		}
		switch d.Cmd {
		case "plan":
			var owners []string
			var b string
			d.ScanArgs(t, "owners", &owners)
			d.ScanArgs(t, "ballot", &b)
			p = newCASPlan(owners, ballotOf(t, d, b), condOf(t, d), minesOf(t, d))
			msg = p.start()
		case "promise":
			pr := PaxosReply{OK: true}
			if d.HasArg("current") {
				pr.Current = recordArg(t, d, "current")
			}
			if d.HasArg("accepted") {
				pr.Accepted = ballotArg(t, d, "accepted")
				pr.Value = recordArg(t, d, "value")
			}
			if d.HasArg("committed") {
				pr.Committed = ballotArg(t, d, "committed")
			}
			msg = p.onPromise(id, pr, nil)
		case "refuse":
			b := ballotArg(t, d, "promised")
			if p.phase == casPreparing {
				msg = p.onPromise(id, PaxosReply{Promised: b}, nil)
			} else {
				msg = p.onAccept(id, false, b, nil)
			}
		case "accept":
			msg = p.onAccept(id, true, p.ballot, nil)
		case "committed":
			msg = p.onCommitted(id, nil)
		case "fail":
			err := errors.New("connection refused")
			switch p.phase {
			case casPreparing:
				msg = p.onPromise(id, PaxosReply{}, err)
			case casRepairing, casProposing:
				msg = p.onAccept(id, false, Ballot{}, err)
			default:
				msg = p.onCommitted(id, err)
			}
		case "timeout":
			p.onTimeout()
		default:
			d.Fatalf(t, "unknown command %s", d.Cmd)
		}
		return casStateString(p, msg)
	})
}

// minesOf is the records earlier attempts proposed: mine=(REC,...).
func minesOf(t *testing.T, d *datadriven.TestData) [][]byte {
	var mines [][]byte
	for _, a := range d.CmdArgs {
		if a.Key != "mine" {
			continue
		}
		for _, v := range a.Vals {
			mines = append(mines, recordOf(t, d, v))
		}
	}
	return mines
}

// condOf is the condition a plan step names, as the HTTP validators will
// build them: if=absent (If-None-Match: *), if=present (If-Match: *),
// if=match=V (If-Match: "V"), or if=serial (a serial read).
func condOf(t *testing.T, d *datadriven.TestData) casCond {
	var value string
	d.MaybeScanArgs(t, "value", &value)
	next := memtable.Record{Value: []byte(value)}
	live := func(cur []byte) (memtable.Record, bool) {
		if cur == nil {
			return memtable.Record{}, false
		}
		r, err := memtable.Decode(cur)
		return r, err == nil && !r.Tombstone
	}
	var cond string
	d.ScanArgs(t, "if", &cond)
	switch {
	case cond == "serial":
		return nil
	case cond == "absent":
		return func(cur []byte) (memtable.Record, bool) { _, ok := live(cur); return next, !ok }
	case cond == "present":
		return func(cur []byte) (memtable.Record, bool) { _, ok := live(cur); return next, ok }
	case strings.HasPrefix(cond, "match="):
		want := ballotOf(t, d, strings.TrimPrefix(cond, "match="))
		return func(cur []byte) (memtable.Record, bool) {
			r, ok := live(cur)
			return next, ok && r.Version == want
		}
	}
	d.Fatalf(t, "unknown if=%s", cond)
	return nil
}

func ballotArg(t *testing.T, d *datadriven.TestData, key string) Ballot {
	var s string
	d.ScanArgs(t, key, &s)
	return ballotOf(t, d, s)
}

func ballotOf(t *testing.T, d *datadriven.TestData, s string) Ballot {
	ts, node, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseUint(ts, 10, 64)
	b, err2 := strconv.ParseUint(node, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		d.Fatalf(t, "bad ballot %q: want TS.NODE", s)
	}
	return Ballot{TS: a, Node: b}
}

// recordArg encodes the record VERSION[:VALUE] or VERSION(tomb) of arg key.
func recordArg(t *testing.T, d *datadriven.TestData, key string) []byte {
	var s string
	d.ScanArgs(t, key, &s)
	return recordOf(t, d, s)
}

func recordOf(t *testing.T, d *datadriven.TestData, s string) []byte {
	var r memtable.Record
	v, value, _ := strings.Cut(s, ":")
	if strings.HasSuffix(v, "(tomb)") {
		v, r.Tombstone = strings.TrimSuffix(v, "(tomb)"), true
	}
	r.Version, r.Value = ballotOf(t, d, v), []byte(value)
	return r.Append(nil)
}

func casRecString(rec []byte) string {
	if rec == nil {
		return "none"
	}
	if len(rec) == 0 {
		return "no-op"
	}
	r, err := memtable.Decode(rec)
	switch {
	case err != nil:
		return "corrupt"
	case r.Tombstone:
		return fmt.Sprintf("%d.%d(tomb)", r.TS, r.Node)
	}
	return fmt.Sprintf("%d.%d:%s", r.TS, r.Node, r.Value)
}

func casStateString(p *casPlan, m casMsg) string {
	var b strings.Builder
	switch m.Kind {
	case PaxosPrepare:
		fmt.Fprintf(&b, "send prepare %d.%d\n", m.Ballot.TS, m.Ballot.Node)
	case PaxosPropose:
		fmt.Fprintf(&b, "send propose %d.%d %s\n", m.Ballot.TS, m.Ballot.Node, casRecString(m.Record))
	case PaxosCommit:
		fmt.Fprintf(&b, "send commit %d.%d %s\n", m.Ballot.TS, m.Ballot.Node, casRecString(m.Record))
	}
	if p.phase != casDone {
		fmt.Fprintf(&b, "%s: %d of %d answered, %d ok\n", p.phase, len(p.answered), len(p.owners), p.oks)
		return b.String()
	}
	r := p.result
	fmt.Fprintf(&b, "done: %s", r.Outcome)
	switch r.Outcome {
	case casApplied:
		fmt.Fprintf(&b, " %s", casRecString(r.Written))
	case casFailed, casRead:
		fmt.Fprintf(&b, "; current %s", casRecString(r.Current))
	case casContended, casRetry:
		fmt.Fprintf(&b, "; retry above %d.%d", r.RetryAbove.TS, r.RetryAbove.Node)
		if r.Proposed != nil {
			fmt.Fprintf(&b, "; mine %s", casRecString(r.Proposed))
		}
	case casUnavailable, casUnknown:
		fmt.Fprintf(&b, "; %d answered", r.Answered)
	}
	b.WriteString("\n")
	return b.String()
}

// TestAcceptor checks one replica's Paxos rules, step by step.
func TestAcceptor(t *testing.T) {
	b := func(ts uint64, node uint64) Ballot { return Ballot{TS: ts, Node: node} }
	rec := func(s string) []byte { return []byte(s) }
	var s acceptorState

	s, pr := s.prepare(b(5, 1))
	if !pr.OK || s.Promised != b(5, 1) || !pr.Accepted.IsZero() {
		t.Fatalf("first prepare: %+v, state %+v", pr, s)
	}
	if _, pr := s.prepare(b(4, 9)); pr.OK || pr.Promised != b(5, 1) {
		t.Fatalf("a lower prepare was promised: %+v", pr)
	}
	if _, pr := s.prepare(b(5, 1)); !pr.OK {
		t.Fatalf("a retransmitted prepare was refused: %+v", pr)
	}
	if _, ok, promised := s.propose(b(4, 9), rec("low")); ok || promised != b(5, 1) {
		t.Fatalf("a proposal below the promise was accepted (%v, %v)", ok, promised)
	}
	s, ok, _ := s.propose(b(5, 1), rec("v5"))
	if !ok || s.Accepted != b(5, 1) || string(s.Value) != "v5" {
		t.Fatalf("proposal at the promise: ok=%v state %+v", ok, s)
	}
	// A higher prepare learns the accepted proposal.
	s, pr = s.prepare(b(6, 2))
	if !pr.OK || pr.Accepted != b(5, 1) || string(pr.Value) != "v5" || !pr.Committed.IsZero() {
		t.Fatalf("prepare after accept: %+v", pr)
	}
	// The commit of 5.1 settles it; a stale commit changes nothing.
	s = s.commit(b(5, 1))
	if !s.Accepted.IsZero() || s.Value != nil || s.Committed != b(5, 1) {
		t.Fatalf("after commit: %+v", s)
	}
	if s2 := s.commit(b(3, 3)); s2.Committed != b(5, 1) {
		t.Fatalf("a stale commit lowered Committed: %+v", s2)
	}
	// A commit below an accepted proposal leaves the proposal in flight.
	s, _, _ = s.propose(b(6, 2), rec("v6"))
	if s2 := s.commit(b(5, 9)); s2.Accepted != b(6, 2) {
		t.Fatalf("a lower commit settled a higher proposal: %+v", s2)
	}

	// The encoding round-trips, with and without a proposal in flight.
	for _, st := range []acceptorState{{}, s, s.commit(b(6, 2))} {
		got, err := decodeAcceptorState(st.append(nil))
		if err != nil || got.Promised != st.Promised || got.Accepted != st.Accepted ||
			got.Committed != st.Committed || string(got.Value) != string(st.Value) || (got.Value == nil) != (st.Value == nil) {
			t.Fatalf("round trip of %+v: %+v, %v", st, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, make([]byte, acceptorHeader-1)} {
		if _, err := decodeAcceptorState(bad); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
}

// TestAcceptorStateMerge: the state a range's new owner keeps from its
// own and an old owner's never goes below either: the higher promise and
// commit, the accepted proposal of the higher ballot, unless a commit at
// or above it settles it; and merging is the same either way round.
func TestAcceptorStateMerge(t *testing.T) {
	b := func(ts uint64) Ballot { return Ballot{TS: ts, Node: 1} }
	v := func(s string) []byte { return []byte(s) }
	for _, c := range []struct {
		name       string
		mine, sent acceptorState
		want       acceptorState
	}{
		{name: "nothing here", sent: acceptorState{Promised: b(5), Accepted: b(5), Value: v("x"), Committed: b(3)},
			want: acceptorState{Promised: b(5), Accepted: b(5), Value: v("x"), Committed: b(3)}},
		{name: "nothing sent", mine: acceptorState{Promised: b(4), Committed: b(4)},
			want: acceptorState{Promised: b(4), Committed: b(4)}},
		{name: "higher promise wins", mine: acceptorState{Promised: b(4)}, sent: acceptorState{Promised: b(9)},
			want: acceptorState{Promised: b(9)}},
		{name: "higher accepted wins", mine: acceptorState{Promised: b(7), Accepted: b(6), Value: v("old")},
			sent: acceptorState{Promised: b(8), Accepted: b(8), Value: v("new")},
			want: acceptorState{Promised: b(8), Accepted: b(8), Value: v("new")}},
		{name: "same ballot from another tag is a different ballot", mine: acceptorState{Promised: b(6), Accepted: b(6), Value: v("a")},
			sent: acceptorState{Promised: Ballot{TS: 6, Node: 2}, Accepted: Ballot{TS: 6, Node: 2}, Value: v("b")},
			want: acceptorState{Promised: Ballot{TS: 6, Node: 2}, Accepted: Ballot{TS: 6, Node: 2}, Value: v("b")}},
		{name: "a commit above settles the accepted", mine: acceptorState{Promised: b(6), Accepted: b(6), Value: v("x")},
			sent: acceptorState{Promised: b(7), Committed: b(7)},
			want: acceptorState{Promised: b(7), Committed: b(7)}},
		{name: "a commit of its ballot settles it", mine: acceptorState{Promised: b(6), Accepted: b(6), Value: v("x")},
			sent: acceptorState{Promised: b(6), Committed: b(6)},
			want: acceptorState{Promised: b(6), Committed: b(6)}},
		{name: "a commit below leaves it in flight", mine: acceptorState{Promised: b(6), Accepted: b(6), Value: v("x"), Committed: b(2)},
			sent: acceptorState{Promised: b(5), Committed: b(5)},
			want: acceptorState{Promised: b(6), Accepted: b(6), Value: v("x"), Committed: b(5)}},
		{name: "a settled older one does not come back", mine: acceptorState{Promised: b(9), Committed: b(9)},
			sent: acceptorState{Promised: b(8), Accepted: b(8), Value: v("x"), Committed: b(1)},
			want: acceptorState{Promised: b(9), Committed: b(9)}},
	} {
		for _, swap := range []bool{false, true} {
			a, o := c.mine, c.sent
			if swap {
				a, o = o, a
			}
			if got := a.merge(o); !got.equal(c.want) {
				t.Errorf("%s (swapped %v): %+v, want %+v", c.name, swap, got, c.want)
			}
		}
	}
}

// TestCASPause: the pause after a contended attempt grows from the
// attempt's own duration, doubling, within casMaxPause, and is never 0.
func TestCASPause(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		took    time.Duration
		want    time.Duration // the window: the pause at r -> 1
	}{
		{1, 0, time.Millisecond},
		{1, 20 * time.Millisecond, 20 * time.Millisecond},
		{3, 20 * time.Millisecond, 80 * time.Millisecond},
		{6, 20 * time.Millisecond, casMaxPause},
		{40, time.Hour, casMaxPause},
	} {
		if got := casPauseFor(tc.attempt, tc.took, 0.999999); got < tc.want*99/100 || got > tc.want+time.Microsecond {
			t.Errorf("attempt %d after %v: window %v, want %v", tc.attempt, tc.took, got, tc.want)
		}
		if got := casPauseFor(tc.attempt, tc.took, 0); got <= 0 {
			t.Errorf("attempt %d: a zero pause", tc.attempt)
		}
	}
}
