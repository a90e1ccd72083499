package membership

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
)

// TestMembers runs the member-list transcripts of testdata/members: each
// step changes one node's list by the rules of roster.go, and prints what
// the step decided and the state after it (go test -rewrite regenerates
// them; review the diff).
//
// Stamps are written as offsets from the clock's start (0s, 1ms, 1ms+2
// for two logical ticks later, max for 2^64-1). Commands:
//
//	init self=ID [secrets=(S,...)] [now=D]    a node alone, with no list yet
//	stored                                  set the list, one entry a line:
//	  ID [id=ID] [stamp=S] [http=A] [gossip=A] [peer=A] [leaving] [removed] [proof=SECRET[@ID@S]]
//	live ID=alive|suspect|dead ...         memberlist's word on members
//	announce ID [stamp=S] [http=A] ...      a member's own word (its metadata, as memberlist reports it alive)
//	merge                                   a relayed list (entries as for stored)
//	remove ID / leave                       an admin's removal / this node's leave
//	start [http=A] [gossip=A] [peer=A] [left]  this node starting on its stored list
//	now D                                   the clock moves to D
//	view / reconnect [dialing=(ID,...)] / join-targets [addrs=(A,...)]
func TestMembers(t *testing.T) {
	datadriven.Walk(t, "testdata/members", func(t *testing.T, path string) {
		m := &model{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			cmd := command(d.Cmd)
			if cmd == nil {
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			return cmd(t, m, d)
		})
	})
}

// model is one node's member-list state as the transcripts drive it.
type model struct {
	self    string
	secrets []string // the cluster's secrets, primary first
	now     time.Duration
	list    List
	live    map[string]peer.MemberState
	seen    map[string]Entry
}

// stampAt is the HLC stamp at offset d of the clock (rosterNow at 0).
func stampAt(d time.Duration) uint64 { return ts(d) }

// msStamps is how far apart two stamps 1ms apart are (the logical ticks
// of a millisecond).
func msStamps() uint64 { return stampAt(time.Millisecond) - stampAt(0) }

func (m *model) checks() checks {
	c := checks{self: m.self, bound: m.bound(), live: m.live, seen: m.seen}
	for _, s := range m.secrets {
		c.keys = append(c.keys, m.key(s))
	}
	return c
}

// bound is what Gossip.stampBound says at m.now, with the default 500ms
// clock bound.
func (m *model) bound() uint64 {
	return stampAt(m.now + memtable.DefaultMaxOffset + stampMargin)
}

func (m *model) key(secret string) []byte {
	return keyring.Derive([]byte(secret), "test").Internode
}

// command returns the transcript command named cmd; nil if none.
func command(cmd string) func(*testing.T, *model, *datadriven.TestData) string {
	return map[string]func(*testing.T, *model, *datadriven.TestData) string{
		"init": cmdInit, "stored": cmdStored, "live": cmdLive, "announce": cmdAnnounce,
		"merge": cmdMerge, "remove": cmdRemove, "leave": cmdLeave, "start": cmdStart,
		"now": cmdNow, "view": cmdView, "reconnect": cmdReconnect, "join-targets": cmdJoinTargets,
	}[cmd]
}

func cmdInit(t *testing.T, m *model, d *datadriven.TestData) string {
	*m = model{self: "self", list: List{}, live: map[string]peer.MemberState{}, seen: map[string]Entry{}}
	d.MaybeScanArgs(t, "self", &m.self)
	if arg, ok := d.Arg("secrets"); ok {
		m.secrets = arg.Vals
	}
	if arg, ok := d.Arg("now"); ok {
		m.now = parseDuration(t, d, arg.SingleVal(t))
	}
	m.live[m.self] = peer.Alive
	return ""
}

func cmdStored(t *testing.T, m *model, d *datadriven.TestData) string {
	m.list = parseList(t, m, d, d.Input)
	return m.state()
}

func cmdLive(t *testing.T, m *model, d *datadriven.TestData) string {
	for _, arg := range d.CmdArgs {
		m.live[arg.Key] = peer.MemberState(arg.SingleVal(t))
	}
	return m.state()
}

func cmdNow(t *testing.T, m *model, d *datadriven.TestData) string {
	m.now = parseDuration(t, d, d.CmdArgs[0].Key)
	return ""
}

// cmdAnnounce is Gossip.noteNode of a member memberlist reports alive.
func cmdAnnounce(t *testing.T, m *model, d *datadriven.TestData) string {
	e := parseEntry(t, m, d, d.FullCmd()[len("announce "):])
	m.live[e.ID] = peer.Alive
	if e.Stamp > m.bound() {
		return "refused: stamped beyond the clock bound\n" + m.state()
	}
	if e.ID != m.self {
		m.seen[e.ID] = e
	}
	out := "kept the list's entry\n"
	if ownWord(m.list, m.self, e) {
		m.list[e.ID] = e
		out = "took the member's word\n"
	}
	return out + m.state()
}

func cmdMerge(t *testing.T, m *model, d *datadriven.TestData) string {
	taken, refused := merge(m.list, parseList(t, m, d, d.Input), m.checks())
	var b strings.Builder
	for _, e := range taken {
		fmt.Fprintf(&b, "take %s\n", m.entry(e))
		m.list[e.ID] = e
	}
	for _, r := range refused {
		fmt.Fprintf(&b, "refuse %s: %s\n", m.entry(r.Entry), r.Why)
	}
	if len(taken)+len(refused) == 0 {
		b.WriteString("nothing newer\n")
	}
	return b.String() + m.state()
}

func cmdRemove(t *testing.T, m *model, d *datadriven.TestData) string {
	id := d.CmdArgs[0].Key
	e, ok := m.list[id]
	if !ok || e.Removed {
		return "unknown member\n"
	}
	var key []byte
	if len(m.secrets) > 0 {
		key = m.key(m.secrets[0])
	}
	m.list[id] = removed(e, stampAt(m.now), key)
	return m.state()
}

func cmdLeave(t *testing.T, m *model, d *datadriven.TestData) string {
	e, changed := leaving(m.list[m.self], stampAt(m.now))
	m.list[m.self] = e
	if !changed {
		return "already leaving\n" + m.state()
	}
	return m.state()
}

// cmdStart is Start's decisions: refuse a node that left, else keep the
// node's place or announce it anew.
func cmdStart(t *testing.T, m *model, d *datadriven.TestData) string {
	if hasLeft(m.list, m.self, d.HasArg("left")) {
		return "refused: this node left or was removed\n"
	}
	want := Entry{ID: m.self, HTTPAddr: m.self + ":80", GossipAddr: m.self + ":7946", Stamp: stampAt(m.now)}
	d.MaybeScanArgs(t, "http", &want.HTTPAddr)
	d.MaybeScanArgs(t, "gossip", &want.GossipAddr)
	d.MaybeScanArgs(t, "peer", &want.PeerAddr)
	e, changed := selfEntry(m.list, want)
	m.list[m.self] = e
	out := "kept its place\n"
	if changed {
		out = "announced anew\n"
	}
	return out + m.state()
}

func cmdView(t *testing.T, m *model, d *datadriven.TestData) string {
	lv := liveness{state: m.live, since: map[string]time.Time{}, noClock: map[string]bool{}}
	v := buildView(m.list, lv, m.self, 8, 3)
	var b strings.Builder
	fmt.Fprintf(&b, "ring: %s\n", strings.Join(v.Ring.Nodes(), " "))
	for _, id := range slices.Sorted(maps.Keys(v.Members)) {
		mb := v.Members[id]
		fmt.Fprintf(&b, "%s %s", id, mb.State)
		if mb.Leaving {
			b.WriteString(" leaving")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func cmdReconnect(t *testing.T, m *model, d *datadriven.TestData) string {
	dialing := map[string]bool{}
	if arg, ok := d.Arg("dialing"); ok {
		for _, id := range arg.Vals {
			dialing[id] = true
		}
	}
	var ids []string
	for _, e := range reconnectTargets(m.list, m.self, m.live, dialing) {
		ids = append(ids, e.ID+"@"+e.GossipAddr)
	}
	return "dial: " + strings.Join(ids, " ") + "\n"
}

func cmdJoinTargets(t *testing.T, m *model, d *datadriven.TestData) string {
	var addrs []string
	if arg, ok := d.Arg("addrs"); ok {
		addrs = arg.Vals
	}
	return "join: " + strings.Join(joinTargets(m.list, m.self, addrs), " ") + "\n"
}

// state prints the list, one member a line, with memberlist's word on it
// and, if different from the list's, the member's own.
func (m *model) state() string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(m.list)) {
		fmt.Fprintf(&b, "> %s", m.entry(m.list[id]))
		if st := m.live[id]; st != "" {
			fmt.Fprintf(&b, " (%s)", st)
		}
		if s, ok := m.seen[id]; ok && !sameAnnouncement(s, m.list[id]) {
			fmt.Fprintf(&b, " (announces %s)", m.entry(s))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// entry prints e, leaving out addresses that are the default ones of its id.
func (m *model) entry(e Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s stamp=%s", e.ID, fmtStamp(e.Stamp))
	if e.HTTPAddr != e.ID+":80" {
		fmt.Fprintf(&b, " http=%s", e.HTTPAddr)
	}
	if e.GossipAddr != e.ID+":7946" {
		fmt.Fprintf(&b, " gossip=%s", e.GossipAddr)
	}
	if e.PeerAddr != "" {
		fmt.Fprintf(&b, " peer=%s", e.PeerAddr)
	}
	if e.Leaving {
		b.WriteString(" leaving")
	}
	if e.Removed {
		b.WriteString(" removed")
	}
	if e.Proof != nil {
		fmt.Fprintf(&b, " proof=%s", m.proofBy(e))
	}
	return b.String()
}

// proofBy names the secret e's proof is valid under, or says it is not.
func (m *model) proofBy(e Entry) string {
	for _, s := range append(slices.Clone(m.secrets), "other") {
		if string(e.Proof) == string(removalProof(m.key(s), e.ID, e.Stamp)) {
			return s
		}
	}
	return "invalid"
}

func fmtStamp(s uint64) string {
	if s == math.MaxUint64 {
		return "max"
	}
	diff := int64(s - stampAt(0))
	ms, logical := diff/int64(msStamps()), diff%int64(msStamps())
	out := (time.Duration(ms) * time.Millisecond).String()
	if logical != 0 {
		out += "+" + strconv.FormatInt(logical, 10)
	}
	return out
}

func parseStamp(t *testing.T, d *datadriven.TestData, s string) uint64 {
	if s == "max" {
		return math.MaxUint64
	}
	base, logical, _ := strings.Cut(s, "+")
	st := stampAt(parseDuration(t, d, base))
	if logical != "" {
		n, err := strconv.ParseUint(logical, 10, 64)
		if err != nil {
			d.Fatalf(t, "stamp %q: %v", s, err)
		}
		st += n
	}
	return st
}

func parseDuration(t *testing.T, d *datadriven.TestData, s string) time.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	return v
}

func parseList(t *testing.T, m *model, d *datadriven.TestData, input string) List {
	l := List{}
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		key, _, _ := strings.Cut(line, " ")
		l[key] = parseEntry(t, m, d, line)
	}
	return l
}

// parseEntry reads "ID key=value... flag...": an entry of node ID (or of
// id=, to forge one whose id is not its key).
func parseEntry(t *testing.T, m *model, d *datadriven.TestData, line string) Entry {
	f := strings.Fields(line)
	e := Entry{ID: f[0], HTTPAddr: f[0] + ":80", GossipAddr: f[0] + ":7946"}
	proof := ""
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "id":
			e.ID = v
		case "stamp":
			e.Stamp = parseStamp(t, d, v)
		case "http":
			e.HTTPAddr = v
		case "gossip":
			e.GossipAddr = v
		case "peer":
			e.PeerAddr = v
		case "leaving":
			e.Leaving = true
		case "removed":
			e.Removed = true
		case "proof":
			proof = v
		default:
			d.Fatalf(t, "unknown field %q", kv)
		}
	}
	if proof != "" {
		// SECRET, or SECRET@ID@STAMP: a proof made for another removal.
		f := strings.Split(proof, "@")
		id, stamp := e.ID, e.Stamp
		if len(f) == 3 {
			id, stamp = f[1], parseStamp(t, d, f[2])
		}
		e.Proof = removalProof(m.key(f[0]), id, stamp)
	}
	return e
}
