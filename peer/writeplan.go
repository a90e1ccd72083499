package peer

import (
	"errors"
	"slices"
)

// errDown stands for a replica the view says is dead: it is not asked, and
// its share of a write becomes a hint at once.
var errDown = errors.New("replica is down")

// writeEnv is what a write plan knows of the cluster: values taken from
// the view the write began with, and a lookup into it. It does no I/O.
type writeEnv struct {
	op     string   // "put" or "delete", for errors
	self   string   // this node's id
	owners []string // the key's owners, in ring order
	need   int      // acknowledgements the write's consistency needs
	// reachable reports whether a replica write can be sent to id: it is
	// not known dead, and this node has a transport.
	reachable func(id string) bool
	// checked: this node's clock has been compared with a majority of the
	// peers that answer (ClockVerdict.Compared).
	checked bool
}

// writeAct is what a write does for one owner.
type writeAct uint8

const (
	writeSend  writeAct = iota // send the record to the owner
	writeHint                  // the owner is down: keep a hint, count a failure
	writeLocal                 // this node is the owner: store its copy now
)

// writeStep is one owner's part in a write.
type writeStep struct {
	id  string
	act writeAct
}

// writePlan decides a quorum write: what each owner gets, when the write
// has its W acknowledgements, and when it cannot have them. It is a pure
// state machine driven by the I/O loop in clusterWrite (and by the
// transcripts in testdata/writeplan): start, then one call per answer
// or timeout, until done. A writePlan is not safe for concurrent use.
//
// The rules:
//   - Every owner is sent the record, but those the view says are dead,
//     which get a hint and count as failed at once. Owners still pulling
//     the key's range are owners like the others: their acks count.
//   - A clock not yet compared with a majority of the peers that answer
//     might be far ahead: then this node's own copy waits until a replica
//     accepts the record, and is not written if one refused it as from
//     the future, or if none accepted it. With no replica to ask, the
//     write is refused (errClockUnchecked): no copy, no hint.
//   - The write is done once W owners acknowledged it, and fails once
//     more than N - W did not (or the timeout passes), naming a clock
//     refusal among them as the cause.
type writePlan struct {
	env   writeEnv
	steps []writeStep
	// deferred: this node's copy waits for a replica's acceptance.
	deferred    bool
	sent        int // replica sends not yet answered
	acks, fails int
	refusal     error // a replica's clock refusal, the cause of a failure
	done        bool
	err         error // nil when done with W acknowledgements
}

// newWritePlan returns the plan of a write in env, before its first step.
func newWritePlan(env writeEnv) *writePlan {
	p := &writePlan{}
	p.reset(env)
	return p
}

// reset makes p the plan of a write in env, before its first step, as
// newWritePlan's, keeping the steps buffer of the write it last planned
// (a pooled write's, see putState).
func (p *writePlan) reset(env writeEnv) {
	steps := p.steps[:0]
	clear(steps[:cap(steps)])
	*p = writePlan{env: env, steps: steps}
}

// start returns each owner's step, in ring order; the write may be done
// (refused) at once. A writeLocal step is the own copy to store now; when
// it must wait for a replica's word there is none, and onAnswer says when.
func (p *writePlan) start() []writeStep {
	local, remote := false, 0
	for _, id := range p.env.owners {
		switch {
		case id == p.env.self:
			local = true
		case p.env.reachable(id):
			remote++
		}
	}
	if !p.env.checked && remote == 0 {
		// Nobody to give its word on the clock: no copy, no hint.
		p.finish(&UnavailableError{Op: p.env.op, Needed: p.env.need, Cause: errClockUnchecked})
		return nil
	}
	p.steps = slices.Grow(p.steps[:0], len(p.env.owners))
	for _, id := range p.env.owners {
		switch {
		case id == p.env.self:
		case p.env.reachable(id):
			p.steps = append(p.steps, writeStep{id: id, act: writeSend})
			p.sent++
		default:
			p.steps = append(p.steps, writeStep{id: id, act: writeHint})
		}
	}
	if local && (p.env.checked || remote == 0) {
		p.steps = append(p.steps, writeStep{id: p.env.self, act: writeLocal})
	} else {
		p.deferred = local
	}
	return p.steps
}

// onAnswer takes one owner's outcome: a replica's (replica set) or this
// node's own copy, or a down owner's errDown. It reports whether this
// node's copy, deferred until a replica's word, is now to be stored.
func (p *writePlan) onAnswer(replica bool, err error) (storeLocal bool) {
	if p.done {
		return false
	}
	if replica {
		p.sent--
	}
	if replica && p.deferred {
		// A replica's word on an unchecked clock: only an acceptance is
		// one. Another failure (a timeout, a replica restarting) says
		// nothing of the clock, so the copy waits for the next replica;
		// stored on it, a record stamped far ahead would beat the writes
		// acknowledged after it.
		switch {
		case err == nil:
			p.deferred, storeLocal = false, true
		case errors.Is(err, ErrClockOffset) || p.sent == 0:
			p.deferred = false
			p.fails++ // this node's own copy is not written
			if p.refusal == nil && !errors.Is(err, ErrClockOffset) {
				p.refusal = errClockUnchecked // no replica accepted
			}
		}
	}
	if err == nil {
		p.acks++
		if p.acks >= p.env.need {
			p.finish(nil)
		}
		return storeLocal
	}
	p.fails++
	if errors.Is(err, ErrClockOffset) {
		p.refusal = err
	}
	if len(p.env.owners)-p.fails < p.env.need {
		p.finish(&UnavailableError{Op: p.env.op, Needed: p.env.need, Answered: p.acks, Cause: p.refusal})
	}
	return storeLocal
}

// onTimeout ends the write: the request timeout passed.
func (p *writePlan) onTimeout() {
	if !p.done {
		p.finish(&UnavailableError{Op: p.env.op, Needed: p.env.need, Answered: p.acks, TimedOut: true, Cause: p.refusal})
	}
}

func (p *writePlan) finish(err error) {
	p.done, p.err = true, err
}

// replicaFailure says what a replica's failed write leaves to do, whether
// or not the request still waits for it: a record refused as from the
// future marks this node's clock suspect and gets no hint (it would land
// once the replica's clock caught up, ahead of writes made since); any
// other failure keeps a hint.
func replicaFailure(err error) (hint, clockRefused bool) {
	switch {
	case err == nil:
		return false, false
	case errors.Is(err, ErrClockOffset):
		return false, true
	default:
		return true, false
	}
}
