package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/ringkv/ringkv/memtable"
)

// Conditional writes (If-Match, If-None-Match) and serial reads are
// single-decree Paxos per key among the key's owners, as Cassandra's
// lightweight transactions: a coordinator prepares a ballot at a quorum of
// them, finishes any round it finds in flight, evaluates the condition
// against the newest record the quorum holds, proposes the new record, and
// commits it once a quorum accepted. This file holds the two pure halves:
// the acceptor's rules over one key's state, and casPlan, the
// coordinator's state machine (driven by the transcripts in
// testdata/casplan). Neither does I/O.
//
// Three rules beyond textbook Paxos, each against a known failure:
//   - The read is folded into the prepare: each promise carries the
//     replica's stored record, so a round costs three round trips (prepare
//     and read, propose, commit) where Cassandra's costs four.
//   - A round found in flight is finished only if its ballot is above
//     every commit the quorum reports (Cassandra's "most recent commit"
//     check): an older accepted proposal was superseded, and repeating it
//     would undo a later commit.
//   - An attempt whose proposal may have been accepted somewhere
//     (refused by some owners, accepted by others, or not answered) is
//     retried under a higher ballot, carrying that record ("mine") to
//     the next attempt, which then settles it before anything else: a
//     round in flight that is one of mine is finished, and the operation
//     is applied; the quorum's newest record being one of mine, applied
//     too; the newest record newer than one of mine, the outcome is
//     unknown (mine may have been committed, then written over); else
//     none of mine was committed (a commit reaches a quorum, which this
//     prepare meets), and the condition is decided anew on the newest
//     record. A condition that then fails is answered only after a fence:
//     the newest record proposed and committed again, unchanged, under
//     the new ballot, so that no round can finish a lost proposal of
//     mine later. Without these a retry could apply the write twice, or
//     a "condition failed" be followed by the write it refused.
//   - A round found in flight is finished, and the attempt then starts
//     again under a new ballot (one value per ballot).
//   - A proposal or commit of an empty record is a no-op: a fence of a
//     key that has no record writes none.
//
// Committed records are stamped above both the ballot and the record they
// replace, so last-writer-wins orders commits as Paxos does; plain writes
// to the same key stay last-writer-wins among themselves and with commits.

// Ballot numbers one Paxos round of a key: an HLC timestamp and the
// coordinator's node tag, so no two coordinators pick the same one, and a
// coordinator that learns a higher ballot picks above it.
type Ballot = memtable.Version

// acceptorState is one replica's Paxos state for one key.
type acceptorState struct {
	// Promised is the highest ballot this replica promised or accepted.
	Promised Ballot
	// Accepted is the ballot of the proposal accepted and not committed
	// since (zero when none), and Value that proposal's record.
	Accepted Ballot
	Value    []byte
	// Committed is the highest ballot this replica committed.
	Committed Ballot
}

// PaxosReply is a replica's answer to a PaxosRequest. To a prepare: OK
// when it promised, else the Promised ballot that outranks it; its
// accepted proposal not yet committed, if any (Accepted, Value); its
// latest commit (Committed); and its stored record of the key (Current,
// nil when none). To a proposal: OK when it accepted, else Promised. To a
// commit: OK.
type PaxosReply struct {
	OK                            bool
	Promised, Accepted, Committed Ballot
	Value, Current                []byte
}

// prepare handles a prepare of ballot b: it promises unless a higher
// ballot was promised. A prepare of the ballot already promised (a
// retransmission: ballots are unique to their coordinator) is promised
// again.
func (s acceptorState) prepare(b Ballot) (acceptorState, PaxosReply) {
	if b.Less(s.Promised) {
		return s, PaxosReply{Promised: s.Promised}
	}
	s.Promised = b
	p := PaxosReply{OK: true, Promised: b, Committed: s.Committed}
	if !s.Accepted.IsZero() {
		p.Accepted, p.Value = s.Accepted, s.Value
	}
	return s, p
}

// propose handles a proposal of rec under ballot b: it is accepted unless
// a higher ballot was promised; promised is then that ballot.
func (s acceptorState) propose(b Ballot, rec []byte) (next acceptorState, ok bool, promised Ballot) {
	if b.Less(s.Promised) {
		return s, false, s.Promised
	}
	s.Promised, s.Accepted, s.Value = b, b, rec
	return s, true, b
}

// commit handles the commit of ballot b (the caller also writes its
// record to the data, as any replica write): an accepted proposal at or
// below b is settled by it.
func (s acceptorState) commit(b Ballot) acceptorState {
	if s.Committed.Less(b) {
		s.Committed = b
	}
	if !s.Accepted.IsZero() && !b.Less(s.Accepted) {
		s.Accepted, s.Value = Ballot{}, nil
	}
	return s
}

// merge returns the state of an acceptor that holds both s and o (its
// own, and one a range's old owner sent with the range): the higher
// promise, the higher commit, and the accepted proposal of the higher
// ballot unless a commit at or above it settles it. It never goes below
// either: promises and acceptances a quorum of old owners made stay
// binding on the range's new owners.
func (s acceptorState) merge(o acceptorState) acceptorState {
	m := s
	if m.Promised.Less(o.Promised) {
		m.Promised = o.Promised
	}
	if m.Committed.Less(o.Committed) {
		m.Committed = o.Committed
	}
	if m.Accepted.Less(o.Accepted) {
		m.Accepted, m.Value = o.Accepted, o.Value
	}
	if !m.Accepted.IsZero() && !m.Committed.Less(m.Accepted) {
		m.Accepted, m.Value = Ballot{}, nil
	}
	return m
}

// equal reports whether s and o are the same state.
func (s acceptorState) equal(o acceptorState) bool {
	return s.Promised == o.Promised && s.Accepted == o.Accepted && s.Committed == o.Committed && bytes.Equal(s.Value, o.Value)
}

// The encoding of an acceptorState, as kept beside the key's data:
//
//	format byte (1) | promised | accepted | committed | value
//
// with each ballot a big-endian uint64 TS then Node, and the value (the
// accepted record) to the end.
const (
	acceptorFormatV1 = 1
	acceptorHeader   = 1 + 3*16
)

var errAcceptorCorrupt = errors.New("corrupt paxos state")

func (s acceptorState) append(dst []byte) []byte {
	dst = append(dst, acceptorFormatV1)
	for _, b := range [...]Ballot{s.Promised, s.Accepted, s.Committed} {
		dst = binary.BigEndian.AppendUint64(dst, b.TS)
		dst = binary.BigEndian.AppendUint64(dst, b.Node)
	}
	return append(dst, s.Value...)
}

// decodeAcceptorState decodes an acceptorState; Value aliases b.
func decodeAcceptorState(b []byte) (acceptorState, error) {
	if len(b) < acceptorHeader || b[0] != acceptorFormatV1 {
		return acceptorState{}, errAcceptorCorrupt
	}
	var bs [3]Ballot
	for i := range bs {
		o := 1 + 16*i
		bs[i] = Ballot{TS: binary.BigEndian.Uint64(b[o:]), Node: binary.BigEndian.Uint64(b[o+8:])}
	}
	s := acceptorState{Promised: bs[0], Accepted: bs[1], Committed: bs[2]}
	if v := b[acceptorHeader:]; len(v) > 0 || !s.Accepted.IsZero() {
		s.Value = v
	}
	return s, nil
}

// casPhase is where a casPlan is.
type casPhase uint8

const (
	casPreparing  casPhase = iota // waiting for promises
	casRepairing                  // proposing a round found in flight
	casProposing                  // proposing this operation's record
	casCommitting                 // committing what a quorum accepted
	casDone
)

func (p casPhase) String() string {
	return [...]string{"preparing", "repairing", "proposing", "committing", "done"}[p]
}

// PaxosKind is the kind of a Paxos message.
type PaxosKind uint8

const (
	casNone      PaxosKind = iota // nothing to send
	PaxosPrepare                  // a prepare of a ballot
	PaxosPropose                  // a proposal of a record under a ballot
	PaxosCommit                   // the commit of a chosen record under its ballot
)

// PaxosRequest is one Paxos message of a key, as it crosses nodes.
type PaxosRequest struct {
	Kind   PaxosKind
	Key    []byte
	Ballot Ballot
	Record []byte // the record proposed or committed; none in a prepare
}

// casMsg is one message, sent to every owner: a prepare of Ballot, or a
// proposal or commit of Record under it.
type casMsg struct {
	Kind   PaxosKind
	Ballot Ballot
	Record []byte
}

// casCond decides a conditional write from the newest record a quorum
// holds (nil when none does): the record to write (its version is the
// plan's to set) and whether the condition held. A serial read has none.
type casCond func(cur []byte) (next memtable.Record, ok bool)

// casOutcome is how a casPlan ended.
type casOutcome uint8

const (
	casApplied     casOutcome = iota + 1 // the write is committed at a quorum
	casFailed                            // the condition did not hold (412)
	casRead                              // a serial read's answer
	casContended                         // a higher ballot won: retry above RetryAbove (with Proposed among mine), after a pause
	casRetry                             // a round in flight was finished: retry above RetryAbove at once
	casUnavailable                       // too few owners answered; nothing of this operation was applied
	casUnknown                           // this operation's record may or may not be committed
)

func (o casOutcome) String() string {
	return [...]string{"", "applied", "condition-failed", "read", "contended", "retry", "unavailable", "unknown"}[o]
}

// casResult is the end of a casPlan.
type casResult struct {
	Outcome casOutcome
	// Current is the newest record the quorum held when the condition was
	// decided (a failed condition's answer, a serial read's value); nil
	// when none.
	Current []byte
	// Written is the committed record of an applied write.
	Written []byte
	// RetryAbove is the ballot to retry above (contended, retry).
	RetryAbove Ballot
	// Proposed, on a contended or retried end, is this attempt's record
	// if some owner may have accepted it: the next attempt's mine.
	Proposed []byte
	// Answered is how many owners answered the phase that fell short.
	Answered int
}

// casPlan runs one attempt of a conditional write or serial read: a
// ballot's prepare, then either the repair of a round in flight or the
// condition, the proposal of the new record and its commit. An attempt
// that ends contended or in a retry is followed by a new plan with a
// higher ballot. Not safe for concurrent use.
type casPlan struct {
	owners []string
	need   int // a majority of owners
	ballot Ballot
	cond   casCond // nil: a serial read
	// mines are the records earlier attempts of this operation proposed
	// that some owner may have accepted.
	mines [][]byte

	phase    casPhase
	answered map[string]bool // owners that answered this phase
	oks      int             // of them, those that promised, accepted or committed
	refusals int             // of them, those that refused for a higher ballot
	higher   Ballot          // the highest ballot a refusal named
	promises []PaxosReply    // the promises of the prepare
	current  []byte          // newest record of the quorum's promises
	proposed []byte          // the record of the proposal
	kind     proposalKind    // what that proposal is
	result   casResult
}

// proposalKind is what a casPlan proposes.
type proposalKind uint8

const (
	proposeMine   proposalKind = iota + 1 // the operation's record
	proposeRepair                         // a round found in flight, finished
	proposeFence                          // the newest record again, burying lost ones of mine
)

// newCASPlan returns the plan of one attempt by ballot b among owners,
// before its prepare; mines are the records earlier attempts of the same
// operation may have had accepted.
func newCASPlan(owners []string, b Ballot, cond casCond, mines [][]byte) *casPlan {
	return &casPlan{owners: owners, need: len(owners)/2 + 1, ballot: b, cond: cond, mines: mines}
}

// start returns the prepare.
func (p *casPlan) start() casMsg {
	p.enter(casPreparing)
	return casMsg{Kind: PaxosPrepare, Ballot: p.ballot}
}

func (p *casPlan) enter(ph casPhase) {
	p.phase, p.oks, p.refusals = ph, 0, 0
	p.answered = make(map[string]bool, len(p.owners))
}

// onPromise takes an owner's answer to the prepare (err: it did not
// answer) and returns what to send next.
func (p *casPlan) onPromise(id string, pr PaxosReply, err error) casMsg {
	if p.phase != casPreparing || !p.take(id) {
		return casMsg{}
	}
	switch {
	case err != nil:
	case !pr.OK:
		p.refused(pr.Promised)
	default:
		p.oks++
		p.promises = append(p.promises, pr)
		if p.oks == p.need {
			return p.decide()
		}
	}
	return p.checkLost()
}

// onAccept takes an owner's answer to a proposal: ok, or refused for the
// ballot promised (err: it did not answer, or its answer was lost).
func (p *casPlan) onAccept(id string, ok bool, promised Ballot, err error) casMsg {
	if (p.phase != casRepairing && p.phase != casProposing) || !p.take(id) {
		return casMsg{}
	}
	switch {
	case err != nil:
	case !ok:
		p.refused(promised)
	default:
		p.oks++
		if p.oks == p.need {
			p.enter(casCommitting)
			return casMsg{Kind: PaxosCommit, Ballot: p.ballot, Record: p.proposed}
		}
	}
	return p.checkLost()
}

// onCommitted takes an owner's answer to the commit.
func (p *casPlan) onCommitted(id string, err error) casMsg {
	if p.phase != casCommitting || !p.take(id) {
		return casMsg{}
	}
	if err == nil {
		p.oks++
		if p.oks == p.need {
			p.committed()
			return casMsg{}
		}
	}
	return p.checkLost()
}

// take records id's answer in this phase, once; false for a repeat or a
// stranger.
func (p *casPlan) take(id string) bool {
	if p.answered[id] || !slices.Contains(p.owners, id) {
		return false
	}
	p.answered[id] = true
	return true
}

func (p *casPlan) refused(b Ballot) {
	p.refusals++
	if p.higher.Less(b) {
		p.higher = b
	}
}

// checkLost ends the attempt once a quorum is out of reach.
func (p *casPlan) checkLost() casMsg {
	if p.phase == casDone || p.oks+len(p.owners)-len(p.answered) >= p.need {
		return casMsg{}
	}
	if p.phase == casProposing && p.kind == proposeMine && p.oks == 0 && p.refusals == len(p.answered) && len(p.answered) < len(p.owners) {
		// Refused so far by all that answered: wait for the others, who
		// may all refuse too (then the record was accepted nowhere); the
		// request timeout bounds the wait.
		return casMsg{}
	}
	p.lost()
	return casMsg{}
}

// lost ends an attempt that cannot reach a quorum in its phase: contended
// when a higher ballot refused it (a retry may succeed), else unavailable;
// unknown instead when a record of this operation may have been accepted
// and cannot be settled by a retry.
func (p *casPlan) lost() {
	r := casResult{Outcome: casUnavailable, RetryAbove: p.higher, Answered: p.oks}
	if p.kind == proposeMine && p.phase != casPreparing && !(p.oks == 0 && p.refusals == len(p.owners)) {
		r.Proposed = p.proposed // accepted somewhere, perhaps
	}
	if p.refusals > 0 {
		r.Outcome = casContended
	} else if r.Proposed != nil || len(p.mines) > 0 {
		r.Outcome = casUnknown
	}
	p.finish(r)
}

// onTimeout ends the attempt: the request timeout passed.
func (p *casPlan) onTimeout() {
	if p.phase == casDone {
		return
	}
	p.lost()
	if p.result.Outcome == casContended {
		// No time is left to retry in.
		p.result.Outcome = casUnavailable
		if p.result.Proposed != nil || len(p.mines) > 0 {
			p.result.Outcome = casUnknown
		}
	}
}

// decide acts on a quorum of promises: finish a round in flight, settle
// this operation's earlier proposals, or decide the condition and propose.
func (p *casPlan) decide() casMsg {
	var commit, inflight Ballot
	var value []byte
	for _, pr := range p.promises {
		if commit.Less(pr.Committed) {
			commit = pr.Committed
		}
		if !pr.Accepted.IsZero() && inflight.Less(pr.Accepted) {
			inflight, value = pr.Accepted, pr.Value
		}
		if pr.Current == nil {
			continue
		}
		if p.current == nil || olderThan(p.current, pr.Current) {
			p.current = pr.Current
		}
	}
	if commit.Less(inflight) {
		// A round accepted above the latest commit may have been chosen:
		// finish it under this ballot before anything else.
		return p.propose(proposeRepair, value)
	}
	if p.cond == nil {
		p.finish(casResult{Outcome: casRead, Current: p.current})
		return casMsg{}
	}
	if p.current != nil && len(p.mines) > 0 {
		if p.isMine(p.current) {
			p.finish(casResult{Outcome: casApplied, Written: p.current, Current: p.current})
			return casMsg{}
		}
		for _, m := range p.mines {
			if !olderThan(p.current, m) {
				// Newer than a record of mine: that one may have been
				// committed, then written over.
				p.finish(casResult{Outcome: casUnknown, Current: p.current})
				return casMsg{}
			}
		}
	}
	next, ok := p.cond(p.current)
	if !ok {
		if len(p.mines) == 0 {
			p.finish(casResult{Outcome: casFailed, Current: p.current})
			return casMsg{}
		}
		// None of mine was committed, but one may lurk accepted: bury it.
		return p.propose(proposeFence, p.current)
	}
	// Stamp it above the ballot and above the record it replaces, so
	// that last-writer-wins orders it after every earlier commit.
	next.Version = Ballot{TS: p.ballot.TS, Node: p.ballot.Node}
	if p.current != nil {
		if v, err := memtable.DecodeVersion(p.current); err == nil && !v.Less(next.Version) {
			next.Version.TS = v.TS + 1
		}
	}
	return p.propose(proposeMine, next.Append(nil))
}

// isMine reports whether rec is one of this operation's records.
func (p *casPlan) isMine(rec []byte) bool {
	for _, m := range p.mines {
		if bytes.Equal(m, rec) {
			return true
		}
	}
	return false
}

// propose starts a proposal of rec under the plan's ballot.
func (p *casPlan) propose(k proposalKind, rec []byte) casMsg {
	p.kind, p.proposed = k, rec
	p.enter(casProposing)
	if k == proposeRepair {
		p.phase = casRepairing
	}
	return casMsg{Kind: PaxosPropose, Ballot: p.ballot, Record: rec}
}

// committed acts on a quorum of commits.
func (p *casPlan) committed() {
	switch p.kind {
	case proposeRepair:
		if p.isMine(p.proposed) {
			// The round in flight was an earlier attempt of this one.
			p.finish(casResult{Outcome: casApplied, Written: p.proposed, Current: p.proposed})
			return
		}
		p.finish(casResult{Outcome: casRetry, RetryAbove: p.ballot})
	case proposeFence:
		p.finish(casResult{Outcome: casFailed, Current: p.current})
	default:
		p.finish(casResult{Outcome: casApplied, Written: p.proposed, Current: p.current})
	}
}

// olderThan reports whether record a is older than record b (false when
// either does not decode).
func olderThan(a, b []byte) bool {
	newer, err := memtable.Newer(b, a)
	return err == nil && newer
}

func (p *casPlan) finish(r casResult) {
	p.phase, p.result = casDone, r
}
