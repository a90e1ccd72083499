package peer

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer/peertest/casmodel"
)

// TestPaxosLinearizable is a seeded model test of conditional writes: a
// few coordinators run compare-and-set and serial reads on two hot keys
// through casPlan, against three acceptors on real engines, over a
// network that delivers messages in any order, drops some, and crashes
// acceptors (losing every unsynced byte) and restarts them. porcupine
// then checks each key's history against a register: every seed must be
// linearizable. Operations whose outcome is unknown may or may not have
// happened, at any time after they began.
func TestPaxosLinearizable(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	outcomes := map[string]int{}
	for seed := range seeds {
		h := runPaxosSim(t, uint64(seed), 60)
		for _, op := range h {
			out := op.Output.(casmodel.Output)
			switch {
			case out.Unknown:
				outcomes["unknown"]++
			case out.NotApplied:
				outcomes["unavailable"]++
			case op.Input.(casmodel.Input).Kind == "read":
				outcomes["read"]++
			case out.Applied:
				outcomes["applied"]++
			default:
				outcomes["condition-failed"]++
			}
		}
		res, info := porcupine.CheckOperationsVerbose(casmodel.Model, h, 10*time.Second)
		if res != porcupine.Ok {
			path := t.TempDir() + "/history.html"
			_ = porcupine.VisualizePath(casmodel.Model, info, path)
			t.Fatalf("seed %d: history of %d operations is %s (see %s)", seed, len(h), res, path)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	// The test means something only if every kind of answer occurs.
	for _, k := range []string{"applied", "condition-failed", "read", "unknown"} {
		if outcomes[k] == 0 {
			t.Errorf("no operation ended %s: the simulation does not exercise it", k)
		}
	}
}

// simAcceptor is one replica of the model test: an acceptor on an engine
// over a crashable in-memory filesystem.
type simAcceptor struct {
	fs  *vfs.MemFS
	eng *engine.Engine
	acc *acceptor
}

func (a *simAcceptor) open(t *testing.T) {
	e, err := engine.Open(engine.Options{FS: a.fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GCInterval: engine.Off, SkipRowCacheWarm: true})
	if err != nil {
		t.Fatal(err)
	}
	a.eng = e
	a.acc = &acceptor{eng: e, clock: func(uint64) error { return nil }}
}

// crash loses what a is doing and everything it did not sync.
func (a *simAcceptor) crash(t *testing.T) {
	clone := a.fs.CrashClone(vfs.CrashCloneCfg{})
	_ = a.eng.Close()
	a.fs = clone
	a.open(t)
}

// simMsg is a message in flight: a request to an acceptor, or its answer
// on the way back to the operation that sent it.
type simMsg struct {
	op      *simOp
	attempt int
	to      int // the acceptor
	m       casMsg
	reply   bool
	pr      PaxosReply
	ok      bool
	ballot  Ballot
	err     error
}

// simOp is one operation in flight.
type simOp struct {
	id      int
	coord   uint64 // the coordinator's node tag
	in      casmodel.Input
	call    int64
	plan    *casPlan
	attempt int
	tries   int
	mines   [][]byte
}

func runPaxosSim(t *testing.T, seed uint64, nops int) []porcupine.Operation {
	rng := rand.New(rand.NewPCG(seed, 17))
	owners := []string{"a0", "a1", "a2"}
	accs := make([]*simAcceptor, len(owners))
	for i := range accs {
		accs[i] = &simAcceptor{fs: vfs.NewCrashableMem()}
		accs[i].open(t)
	}
	defer func() {
		for _, a := range accs {
			_ = a.eng.Close()
		}
	}()
	keys := []string{"x", "y"}
	var (
		now      int64 // the step counter: the history's clock
		inflight []simMsg
		running  []*simOp
		history  []porcupine.Operation
		started  int
		clock    [4]uint64 // each coordinator's last ballot
		lastSeen = map[string]string{}
	)
	ballot := func(coord uint64, above Ballot) Ballot {
		ts := max(clock[coord]+1, uint64(now)+1, above.TS+1)
		clock[coord] = ts
		return Ballot{TS: ts, Node: coord}
	}
	send := func(op *simOp, m casMsg) {
		if m.Kind == casNone {
			return
		}
		for i := range owners {
			inflight = append(inflight, simMsg{op: op, attempt: op.attempt, to: i, m: m})
		}
	}
	begin := func(op *simOp, above Ballot) {
		op.attempt++
		op.tries++
		var cond casCond
		if op.in.Kind != "read" {
			expect, next := op.in.Expect, op.in.Next
			cond = func(cur []byte) (memtable.Record, bool) {
				v := ""
				if cur != nil {
					if r, err := memtable.Decode(cur); err == nil && !r.Tombstone {
						v = string(r.Value)
					}
				}
				return memtable.Record{Value: []byte(next)}, v == expect
			}
		}
		op.plan = newCASPlan(owners, ballot(op.coord, above), cond, op.mines)
		send(op, op.plan.start())
	}
	end := func(op *simOp) {
		r := op.plan.result
		var out casmodel.Output
		ret := now
		switch r.Outcome {
		case casApplied:
			out.Applied = true
			lastSeen[op.in.Key] = op.in.Next
		case casFailed, casRead:
			if r.Current != nil {
				if rec, err := memtable.Decode(r.Current); err == nil && !rec.Tombstone {
					out.Value = string(rec.Value)
				}
			}
			// A failed condition names the value it found.
			out.CondFailed, out.Known = r.Outcome == casFailed, r.Outcome == casFailed
			lastSeen[op.in.Key] = out.Value
		case casContended, casRetry:
			if r.Proposed != nil {
				op.mines = append(op.mines, r.Proposed)
			}
			if op.tries < 8 {
				begin(op, r.RetryAbove)
				return
			}
			if len(op.mines) == 0 {
				out.NotApplied = true
			} else {
				out.Unknown = true
				ret = 1 << 60
			}
		case casUnavailable:
			// Nothing of this operation was applied: it did not happen
			// (the model holds the plan to that).
			out.NotApplied = true
		default:
			// Unknown: it may have happened, at any time from its call on.
			out.Unknown = true
			ret = 1 << 60
		}
		history = append(history, porcupine.Operation{ClientId: op.id, Input: op.in, Call: op.call, Output: out, Return: ret})
		running = slices.DeleteFunc(running, func(o *simOp) bool { return o == op })
	}
	deliver := func(msg simMsg) {
		op := msg.op
		if op.plan == nil || msg.attempt != op.attempt || op.plan.phase == casDone {
			return // an answer to an attempt that ended
		}
		if !msg.reply {
			key := []byte(op.in.Key)
			a := accs[msg.to].acc
			r := simMsg{op: op, attempt: msg.attempt, to: msg.to, m: msg.m, reply: true}
			switch msg.m.Kind {
			case PaxosPrepare:
				r.pr, r.err = a.prepare(key, msg.m.Ballot)
			case PaxosPropose:
				r.ok, r.ballot, r.err = a.propose(key, msg.m.Ballot, msg.m.Record)
			case PaxosCommit:
				r.err = a.commit(key, msg.m.Ballot, msg.m.Record)
			}
			if r.err != nil {
				t.Fatalf("seed %d: acceptor %d: %v", seed, msg.to, r.err)
			}
			inflight = append(inflight, r)
			return
		}
		var next casMsg
		id := owners[msg.to]
		switch msg.m.Kind {
		case PaxosPrepare:
			next = op.plan.onPromise(id, msg.pr, nil)
		case PaxosPropose:
			next = op.plan.onAccept(id, msg.ok, msg.ballot, nil)
		case PaxosCommit:
			next = op.plan.onCommitted(id, nil)
		}
		send(op, next)
		if op.plan.phase == casDone {
			end(op)
		}
	}
	for steps := 0; (started < nops || len(running) > 0) && steps < 200_000; steps++ {
		now++
		switch x := rng.IntN(100); {
		case x < 10 && started < nops && len(running) < 4:
			key := keys[rng.IntN(len(keys))]
			op := &simOp{id: started, coord: uint64(1 + rng.IntN(3)), call: now}
			if rng.IntN(4) == 0 {
				op.in = casmodel.Input{Kind: "read", Key: key}
			} else {
				// Mostly the value last seen, sometimes a stale guess.
				expect := lastSeen[key]
				if rng.IntN(5) == 0 {
					expect = ""
				}
				op.in = casmodel.Input{Kind: "cas", Key: key, Expect: expect, Next: fmt.Sprintf("v%d", started)}
			}
			started++
			running = append(running, op)
			begin(op, Ballot{})
		case x < 12 && len(inflight) > 0:
			// Lose a message.
			i := rng.IntN(len(inflight))
			inflight = slices.Delete(inflight, i, i+1)
		case x == 12:
			// Crash an acceptor: what is on its way to it is lost too.
			i := rng.IntN(len(accs))
			accs[i].crash(t)
			inflight = slices.DeleteFunc(inflight, func(m simMsg) bool { return !m.reply && m.to == i })
		case len(inflight) > 0:
			i := rng.IntN(len(inflight))
			msg := inflight[i]
			inflight = slices.Delete(inflight, i, i+1)
			deliver(msg)
		}
		// An operation with nothing in flight times out.
		for _, op := range slices.Clone(running) {
			if !slices.ContainsFunc(inflight, func(m simMsg) bool { return m.op == op && m.attempt == op.attempt }) {
				op.plan.onTimeout()
				end(op)
			}
		}
	}
	if len(running) > 0 {
		t.Fatalf("seed %d: %d operations still running", seed, len(running))
	}
	return history
}
