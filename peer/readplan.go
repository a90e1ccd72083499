package peer

import (
	"errors"
	"slices"

	"github.com/ringkv/ringkv/memtable"
)

// reply is one replica's answer to a read.
type reply struct {
	id  string
	rec []byte // encoded record; nil when the replica has none
	err error
}

// readEnv is what a read plan knows of the cluster: values taken from the
// view the read began with, and lookups into it. It does no I/O.
type readEnv struct {
	self   string   // this node's id
	owners []string // the key's owners, in ring order
	need   int      // answers the read's consistency needs
	// room bounds how many nodes the read may ask in all: the owners and
	// as many more as the old owners of a range being moved can add.
	room int
	// reachable reports whether requests should be sent to id.
	reachable func(id string) bool
	// beyond returns the nodes after the owners in ring order (two at
	// most), asked when an owner still pulling the key's range does not
	// say where from.
	beyond func() []string
	// allOwners: every node of the ring owns the key (the ring has at most
	// N nodes).
	allOwners bool
}

// readPlan decides a quorum read: whom to ask, in what order, when to
// hedge, and when the read is done with what result. It is a pure state
// machine driven by the I/O loop in clusterGet (and by the transcripts in
// testdata/readplan): start, then one call per reply, hedge tick or
// timeout, until done. A readPlan is not safe for concurrent use.
//
// The rules:
//   - Ask this node first, then live owners, dead ones only as a last
//     resort; the first round asks need of them. Among the live (and
//     among the dead) this node prefers the same ones for every key: the
//     order of node ids starting after its own (byPreference).
//   - A replica that fails is replaced by the next in that order; as many
//     asks are kept in flight as answers are missing.
//   - A replica that hangs must not hold the read: each hedge tick asks
//     one more, while there is one.
//   - An owner still pulling the key's range answers "pending", naming
//     the old owners it pulls from: they are asked in its place (an older
//     node that names none makes the read ask the owners after the N).
//     Its copy never counts toward the quorum, but a newer record in it
//     wins.
//   - With nobody left to ask and too few answers, the copies of pending
//     owners count when the ring grew from fewer than N nodes (every old
//     owner answered), and this node's own pending copy counts in any
//     case; otherwise the read is unavailable.
type readPlan struct {
	env      readEnv
	order    []string // everyone the read may ask, in the order it asks
	next     int      // order[:next] have been asked
	inflight int      // asks not yet answered
	extended bool     // order holds the nodes beyond the owners
	got      []reply  // answers that count toward the quorum
	pending  []reply  // answers of owners still pulling the key's range
	corrupt  error    // the first answer that met damaged data
	hedging  bool     // the hedge timer is armed
	done     bool
	result   readResult
	// repairBuf is the backing array of result.repair, kept by reset.
	repairBuf []string
}

// readResult is how a read plan ended.
type readResult struct {
	// rec is the newest record among the answers; nil when none has one
	// (the key is not found) or the read failed.
	rec []byte
	// repair lists the replicas that answered with an older record than
	// rec, or none, to be written rec in the background.
	repair []string
	// err is why the read failed: an *UnavailableError, or a replica's
	// corruption when the key has one replica only.
	err error
}

// newReadPlan returns the plan of a read in env, before its first asks.
func newReadPlan(env readEnv) *readPlan {
	p := &readPlan{order: make([]string, 0, env.room)}
	p.reset(env)
	return p
}

// reset makes p the plan of a read in env, before its first asks, as
// newReadPlan's, keeping the buffers of the read it last planned (a
// pooled read's, see getState): nothing of that read is used again.
func (p *readPlan) reset(env readEnv) {
	order, got, pending, repair := p.order[:0], p.got[:0], p.pending[:0], p.repairBuf[:0]
	*p = readPlan{env: env, order: order, got: got, pending: pending, repairBuf: repair, hedging: true}
	for _, id := range env.owners {
		if id == env.self {
			p.order = append(p.order, id)
		}
	}
	live := len(p.order)
	for _, id := range env.owners {
		if id != env.self && env.reachable(id) {
			p.order = append(p.order, id)
		}
	}
	dead := len(p.order)
	for _, id := range env.owners {
		if id != env.self && !env.reachable(id) {
			p.order = append(p.order, id)
		}
	}
	byPreference(p.order[live:dead], env.self)
	byPreference(p.order[dead:], env.self)
}

// byPreference sorts ids into the order in which node self prefers to ask
// them: the order of ids, starting after self's and wrapping around. Every
// read of a coordinator then asks the same replica first, whatever the
// key, so its reads to that replica go out together in larger batches
// (half the internode requests of asking in ring order, with 3 nodes):
// fewer syscalls and wakeups per read. Over the coordinators the load
// still spreads: with 3 nodes, n1 asks n2, n2 asks n3, n3 asks n1. An
// insertion sort: ids holds at most the key's owners, and a sort with a
// closure would allocate on every read.
func byPreference(ids []string, self string) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && preferred(ids[j], ids[j-1], self); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// preferred reports whether self asks a before b: ids after self's come
// first, each group in the order of ids.
func preferred(a, b, self string) bool {
	if aAfter, bAfter := a > self, b > self; aAfter != bAfter {
		return aAfter
	}
	return a < b
}

// forget drops p's references to the records and ids of its read, so that
// a pooled plan keeps none alive.
func (p *readPlan) forget() {
	clear(p.order[:cap(p.order)])
	clear(p.got[:cap(p.got)])
	clear(p.pending[:cap(p.pending)])
	clear(p.repairBuf[:cap(p.repairBuf)])
	p.env, p.result, p.corrupt = readEnv{}, readResult{}, nil
}

// start returns the first round's asks. The caller sends them last to
// first, so remote replicas run while this node reads its own copy.
func (p *readPlan) start() []string {
	p.next = min(p.env.need, len(p.order))
	p.inflight = p.next
	p.checkDone()
	return p.order[:p.next]
}

// onHedge handles the hedge timer's tick: it returns the one more node to
// ask (none when there is nobody left), and whether to arm the timer again.
func (p *readPlan) onHedge() (ask []string, rearm bool) {
	if p.done || !p.hedging {
		return nil, false
	}
	if p.next == len(p.order) {
		p.hedging = false // as a timer not reset: it never ticks again
		return nil, false
	}
	return p.ask(1), true
}

// onTimeout ends the read: the request timeout passed.
func (p *readPlan) onTimeout() {
	if !p.done {
		p.finish(readResult{err: &UnavailableError{Op: "get", Needed: p.env.need, Answered: len(p.got), TimedOut: true}})
	}
}

// onReply takes one replica's answer and returns the nodes to ask next.
func (p *readPlan) onReply(r reply) []string {
	if p.done {
		return nil
	}
	p.inflight--
	if r.err != nil {
		p.failed(r)
	} else {
		p.got = append(p.got, r)
	}
	// Keep as many asks in flight as answers are missing: a pending
	// answer may have added several old owners at once.
	from := p.next
	for len(p.got)+p.inflight < p.env.need && p.next < len(p.order) {
		p.next++
		p.inflight++
	}
	ask := p.order[from:p.next]
	p.checkDone()
	return ask
}

// failed takes an answer that does not count toward the quorum.
func (p *readPlan) failed(r reply) {
	if errors.Is(r.err, ErrCorruption) && p.corrupt == nil {
		p.corrupt = r.err
	}
	if errors.Is(r.err, ErrRangePending) {
		p.pending = append(p.pending, reply{id: r.id, rec: r.rec})
	}
	var pe *PendingError
	switch {
	case errors.As(r.err, &pe) && len(pe.From) > 0:
		// A new owner still pulling: ask the old owners it pulls from,
		// the ones it displaced among them. Only they (and settled
		// owners) held the key before.
		for _, id := range pe.From {
			p.also(id)
		}
	case errors.Is(r.err, ErrRangePending) && !p.extended:
		// One that does not say where from (an older node): ask the
		// owners after the N, in the hope that the displaced one is
		// among them.
		p.extended = true
		for _, id := range p.env.beyond() {
			p.also(id)
		}
	}
}

// also adds id to the nodes to ask, once, if it can answer and there is room.
func (p *readPlan) also(id string) {
	if (id == p.env.self || p.env.reachable(id)) && !slices.Contains(p.order, id) && len(p.order) < p.env.room {
		p.order = append(p.order, id)
	}
}

// ask marks the next k nodes of order asked and returns them.
func (p *readPlan) ask(k int) []string {
	from := p.next
	p.next = min(p.next+k, len(p.order))
	p.inflight += p.next - from
	return p.order[from:p.next]
}

// checkDone ends the read once enough answered, or once nobody is left to
// ask and nothing is in flight.
func (p *readPlan) checkDone() {
	if len(p.got) >= p.env.need {
		p.finish(p.newest())
		return
	}
	if p.inflight > 0 {
		// Wait for the asks in flight even when they look too few: one
		// may be a new owner's pending answer that names old owners to
		// ask (the request timeout bounds this).
		return
	}
	// Nobody left to ask and too few answers: what the copies of owners
	// still pulling the key's range allow. They may lack older writes,
	// but hold every write made since the move began.
	switch {
	case len(p.pending) > 0 && p.env.allOwners && p.coversOwners():
		// Every node is an owner, so the ring grew from fewer than N nodes
		// and the owners that answered are all the old owners there are:
		// every earlier write is among the answers, and the new ones'
		// copies add the later ones (which an old owner that was down may
		// lack).
		p.got = append(p.got, p.pending...)
	default:
		// No old owner can answer: this node's own copy, if it is an
		// owner still pulling, is the best there is.
		for _, r := range p.pending {
			if r.id == p.env.self {
				p.got = append(p.got, r)
			}
		}
	}
	switch {
	case len(p.got) >= p.env.need:
		p.finish(p.newest())
	case p.corrupt != nil && len(p.env.owners) == 1:
		// The only replica there is holds the key in a damaged file: say
		// so (and which), rather than "unavailable".
		p.finish(readResult{err: p.corrupt})
	default:
		p.finish(readResult{err: &UnavailableError{Op: "get", Needed: p.env.need, Answered: len(p.got)}})
	}
}

// coversOwners reports whether every owner but those still pulling
// answered.
func (p *readPlan) coversOwners() bool {
	for _, id := range p.env.owners {
		has := func(r reply) bool { return r.id == id }
		if !slices.ContainsFunc(p.pending, has) && !slices.ContainsFunc(p.got, has) {
			return false
		}
	}
	return true
}

// newest is the result of a read with enough answers: the newest record,
// and the replicas to repair.
func (p *readPlan) newest() readResult {
	newest := newestReply(p.got)
	// An owner still pulling the key's range holds every write made since
	// its move began, which the old owners that made up the quorum may
	// lack: its copy never counts toward the quorum, but a newer record
	// in it wins (and is repaired onto the others).
	if q := newestReply(p.pending); q != nil && newest == nil {
		newest = q
	} else if q != nil {
		if newer, err := memtable.Newer(q, newest); err == nil && newer {
			newest = q
		}
	}
	if newest == nil {
		return readResult{}
	}
	repair := p.repairBuf[:0]
	for _, r := range p.got {
		if r.rec != nil {
			if stale, err := memtable.Newer(newest, r.rec); err != nil || !stale {
				continue // already has newest (or something newer)
			}
		}
		repair = append(repair, r.id)
	}
	p.repairBuf = repair
	if len(repair) == 0 {
		repair = nil
	}
	return readResult{rec: newest, repair: repair}
}

func (p *readPlan) finish(r readResult) {
	p.done, p.result = true, r
}

// newestReply returns the newest record among replies, or nil if none has one.
func newestReply(rs []reply) []byte {
	var best []byte
	for _, r := range rs {
		if r.rec == nil {
			continue
		}
		if best == nil {
			best = r.rec
			continue
		}
		if newer, err := memtable.Newer(r.rec, best); err == nil && newer {
			best = r.rec
		}
	}
	return best
}
