package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/ring"
)

// TestRebalanceTranscripts drives the rebalancers of a simulated cluster
// through the transcripts in testdata/rebalance: each node is a real
// rebalancer on an in-memory engine (its plan, its stored state, its view
// publication and drop fence), with the I/O of a move (pulling a range
// from an old owner, checking the handover before a drop) replaced by the
// transcript's say. After each step it prints the state of the nodes the
// step touched. Regenerate with -rewrite, then review the diff.
//
//	cluster replicas=N vnodes=V      start over
//	node id=X [settled=(..)] [clean=T]
//	                                 a node, with its stored settled ring, and
//	                                 the start of its last clean anti-entropy pass
//	view ring=(..) [joined=(..)] [down=(..)] [leaving=(..)] [left=(..)]
//	                                 publish a view to every node; joined orders
//	                                 the members' joins; leaving members are out
//	                                 of the ring and alive, left ones gone
//	clean id=X at=T                  X completes a clean anti-entropy pass begun at T
//	rebalance id=X [fail=(..)] [fail-from=K] [change=(..)] [change-at=K]
//	                                 one pass of X's rebalance loop: pulls from the
//	                                 nodes in fail fail from the K-th range on (0:
//	                                 all); change publishes that ring to every node
//	                                 as the K-th range is pulled
//	drop id=X [held=false]           X's drop of the ranges it gave away; held
//	                                 says whether their new owners hold them
//	begin-drop id=X / end-drop id=X  the drop fence alone
func TestRebalanceTranscripts(t *testing.T) {
	datadriven.Walk(t, "testdata/rebalance", func(t *testing.T, path string) {
		s := &rebSim{t: t}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

type rebSim struct {
	t                *testing.T
	replicas, vnodes int
	nodes            map[string]*rebSimNode
	last             *View
}

type rebSimNode struct {
	r     *Rebalancer
	view  atomic.Pointer[View]
	clean uint64
	// the transcript's say on this node's I/O
	fail     []string
	failFrom int
	change   *View
	changeAt int
	ranges   []ring.Range // ranges fetched in this step, in order
	held     bool
}

func (s *rebSim) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "cluster":
		s.replicas, s.vnodes, s.nodes, s.last = 3, 4, map[string]*rebSimNode{}, nil
		scanOpt(t, d, "replicas", &s.replicas)
		scanOpt(t, d, "vnodes", &s.vnodes)
		return ""
	case "node":
		var id string
		d.ScanArgs(t, "id", &id)
		n := s.newNode(t, id)
		if d.HasArg("settled") {
			st := rebalanceState{Settled: listArg(d, "settled")}
			if err := n.r.storeState(st); err != nil {
				t.Fatal(err)
			}
		}
		var clean uint64
		scanOpt(t, d, "clean", &clean)
		n.clean = clean
		return s.show([]string{id})
	case "view":
		v := s.viewOf(d, "ring")
		for _, id := range s.ids() {
			s.nodes[id].r.publish(v)
		}
		return s.show(s.ids())
	case "clean":
		id, n := s.node(t, d)
		d.ScanArgs(t, "at", &n.clean)
		return s.show([]string{id})
	case "rebalance":
		return s.rebalance(t, d)
	case "drop":
		id, n := s.node(t, d)
		n.held = true
		if d.HasArg("held") {
			d.ScanArgs(t, "held", &n.held)
		}
		err := n.r.dropGivenAway(context.Background())
		return fmt.Sprintf("drop: %v\n", orNone(err)) + s.show([]string{id})
	case "begin-drop":
		id, n := s.node(t, d)
		ok := n.r.beginDrop(n.r.loadState().DropRing)
		return fmt.Sprintf("fence held: %v\n", ok) + s.show([]string{id})
	case "end-drop":
		id, n := s.node(t, d)
		n.r.endDrop()
		return s.show([]string{id})
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}

// rebalance runs one pass of a node's rebalance loop (rebalance, then its
// drop when that succeeds, as the loop does) with the I/O the transcript
// says.
func (s *rebSim) rebalance(t *testing.T, d *datadriven.TestData) string {
	id, n := s.node(t, d)
	n.fail, n.failFrom, n.change, n.changeAt, n.ranges = listArg(d, "fail"), 0, nil, 0, nil
	scanOpt(t, d, "fail-from", &n.failFrom)
	if d.HasArg("change") {
		n.change = s.viewOf(d, "change")
		scanOpt(t, d, "change-at", &n.changeAt)
	}
	err := n.r.rebalance()
	var b strings.Builder
	fmt.Fprintf(&b, "rebalance: %v\n", orNone(err))
	if n.change != nil {
		b.WriteString("the ring changed during the move\n")
	}
	touched := []string{id}
	if n.change != nil {
		touched = s.ids()
	}
	return b.String() + s.show(touched)
}

func (s *rebSim) newNode(t *testing.T, id string) *rebSimNode {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	n := &rebSimNode{}
	n.view.Store(&View{Ring: ring.New([]string{id}, s.vnodes, s.replicas), Members: map[string]Member{id: {ID: id, State: Alive}}})
	cfg := &Config{NodeID: id, Replicas: s.replicas, VNodes: s.vnodes, Engine: e, Logger: lg}
	n.r, err = newRebalancer(cfg, &n.view, rebalanceDeps{
		cleanPass:  func() uint64 { return n.clean },
		swapped:    func(old, cur *View, replaced bool) {},
		membership: func() Membership { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.r.fetch = func(from Member, rg ring.Range) error { return s.fetch(n, from, rg) }
	n.r.heldElsewhere = func(context.Context, *View, rebalanceState) string {
		if n.held {
			return ""
		}
		return "a new owner lacks records"
	}
	if s.last != nil {
		n.r.publish(s.last)
	}
	s.nodes[id] = n
	return n
}

// fetch is a node's pull of rg from one old owner, as the transcript says.
func (s *rebSim) fetch(n *rebSimNode, from Member, rg ring.Range) error {
	if k := len(n.ranges); k == 0 || n.ranges[k-1] != rg {
		n.ranges = append(n.ranges, rg)
	}
	at := len(n.ranges) - 1
	if n.change != nil && at == n.changeAt {
		for _, id := range s.ids() {
			s.nodes[id].r.publish(n.change)
		}
	}
	if slices.Contains(n.fail, from.ID) && at >= n.failFrom {
		return errors.New("connection refused")
	}
	return nil
}

// viewOf builds the view d describes: the ring of arg's ids, every member
// alive unless down or left, joins in the order of joined.
func (s *rebSim) viewOf(d *datadriven.TestData, arg string) *View {
	ids := listArg(d, arg)
	joined, down, left, leaving := listArg(d, "joined"), listArg(d, "down"), listArg(d, "left"), listArg(d, "leaving")
	v := &View{Ring: ring.New(ids, s.vnodes, s.replicas), Members: map[string]Member{}}
	for _, id := range slices.Concat(ids, leaving, left) {
		m := Member{ID: id, HTTPAddr: id + ":80", State: Alive}
		if i := slices.Index(joined, id); i >= 0 {
			m.Joined = uint64(i + 1)
		}
		switch {
		case slices.Contains(left, id):
			m.State = Left
		case slices.Contains(leaving, id):
			m.Leaving = true
		case slices.Contains(down, id):
			m.State = Dead
		}
		v.Members[id] = m
	}
	s.last = v
	return v
}

func (s *rebSim) node(t *testing.T, d *datadriven.TestData) (string, *rebSimNode) {
	var id string
	d.ScanArgs(t, "id", &id)
	n, ok := s.nodes[id]
	if !ok {
		d.Fatalf(t, "no node %s", id)
	}
	return id, n
}

func (s *rebSim) ids() []string {
	ids := make([]string, 0, len(s.nodes))
	for id := range s.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// show prints the state of nodes ids: the ring each serves, its stored
// rebalance state, the ranges its reads answer as pending (with the old
// owners they name), and the move under way.
func (s *rebSim) show(ids []string) string {
	var b strings.Builder
	for _, id := range ids {
		n := s.nodes[id]
		r := n.r
		st := r.loadState()
		v := r.view.Load()
		fmt.Fprintf(&b, "%s: ring=%s", id, list(v.Ring.Nodes()))
		var down []string
		for _, m := range v.sortedMembers() {
			if m.State != Alive {
				down = append(down, m.ID)
			}
		}
		if down != nil {
			fmt.Fprintf(&b, " down=%s", list(down))
		}
		fmt.Fprintf(&b, " settled=%v", r.Settled())
		fmt.Fprintf(&b, " stored=%s", stateString(st))
		if r.deferred != nil {
			fmt.Fprintf(&b, " deferred=%s", list(r.deferred.Ring.Nodes()))
		}
		b.WriteString("\n")
		if p := r.pending.Load(); p != nil {
			for _, m := range *p {
				fmt.Fprintf(&b, "  pending %s from %s\n", m.Range, list(m.From))
			}
		}
		for _, rg := range st.Drop {
			fmt.Fprintf(&b, "  drop %s\n", rg)
		}
		for _, t := range r.status.transfers() {
			fmt.Fprintf(&b, "  move %d/%d ranges", t.RangesDone, t.RangesTotal)
			if t.LastError != "" {
				fmt.Fprintf(&b, ", %s from %s failed %d times", t.Range, t.From, t.Attempts)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func stateString(st rebalanceState) string {
	settled := "never"
	if st.Settled != nil {
		settled = list(st.Settled)
	}
	out := "settled:" + settled
	if st.Target != nil {
		out += fmt.Sprintf(" target:%s done:%d", list(st.Target), len(st.Done))
	}
	if st.DropRing != nil {
		out += " drop-ring:" + list(st.DropRing)
	}
	if st.Orphans {
		out += " orphans"
	}
	if st.KeptSince != 0 {
		out += fmt.Sprintf(" kept-since:%d", st.KeptSince)
	}
	return out
}

func list(ids []string) string { return "(" + strings.Join(ids, ",") + ")" }

func orNone(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// listArg returns the values of d's argument key, nil when it has none.
func listArg(d *datadriven.TestData, key string) []string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			var out []string
			for _, v := range a.Vals {
				if v != "" {
					out = append(out, v)
				}
			}
			if out == nil {
				out = []string{}
			}
			return out
		}
	}
	return nil
}

func scanOpt[T any](t *testing.T, d *datadriven.TestData, key string, dst *T) {
	if d.HasArg(key) {
		d.ScanArgs(t, key, dst)
	}
}
