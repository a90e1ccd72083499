package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer/peertest"
)

// TestAdvertise: the address peers reach a listener at is the advertise
// flag's (a name resolved only where an IP is needed, the port defaulting
// to the bound one), else the bound address when it is a specific IP,
// else the host's private IP: never 0.0.0.0 or ::, and with no private IP
// a clear error.
func TestAdvertise(t *testing.T) {
	private := func(ip string) func() (string, error) { return func() (string, error) { return ip, nil } }
	resolve := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "ringkv-0.ringkv":
			return []string{"10.0.0.7", "fd00::7"}, nil
		case "v6only":
			return []string{"fd00::9"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	f := func(bound, adv string, needIP bool, privateIP, want, wantErr string) {
		t.Helper()
		got, err := Advertise(context.Background(), AddrSpec{Flag: "advertise-x", Bound: bound, Advertise: adv, NeedIP: needIP}, private(privateIP), resolve)
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("Advertise(%q, %q): %q, %v; want an error with %q", bound, adv, got, err, wantErr)
		case wantErr == "" && (err != nil || got != want):
			t.Errorf("Advertise(%q, %q) = %q, %v; want %q", bound, adv, got, err, want)
		}
	}
	f("127.0.0.1:8080", "", false, "10.0.0.1", "127.0.0.1:8080", "")
	f("10.1.2.3:8080", "", false, "10.0.0.1", "10.1.2.3:8080", "")
	f("0.0.0.0:8080", "", false, "10.0.0.1", "10.0.0.1:8080", "")
	f("[::]:8080", "", false, "10.0.0.1", "10.0.0.1:8080", "")
	f(":8080", "", true, "10.0.0.1", "10.0.0.1:8080", "")
	f("[::]:7946", "", true, "fd00::2", "[fd00::2]:7946", "")
	f("[::1]:8080", "", false, "10.0.0.1", "[::1]:8080", "")
	f("0.0.0.0:8080", "", false, "", "", "no private IP address")
	f("0.0.0.0:8080", "", false, "", "", "--advertise-x")
	f("0.0.0.0:8080", "192.168.1.5:9090", false, "", "192.168.1.5:9090", "")
	f("0.0.0.0:8080", "192.168.1.5", false, "", "192.168.1.5:8080", "")
	f("0.0.0.0:8080", "[fd00::5]", false, "", "[fd00::5]:8080", "")
	f("0.0.0.0:8080", "fd00::5", false, "", "[fd00::5]:8080", "")
	f("0.0.0.0:8080", "[fd00::5]:81", false, "", "[fd00::5]:81", "")
	// A name: kept for HTTP (peers resolve it when they connect),
	// resolved to its first address for gossip.
	f("0.0.0.0:8080", "ringkv-0.ringkv", false, "", "ringkv-0.ringkv:8080", "")
	f("0.0.0.0:7946", "ringkv-0.ringkv:7000", true, "", "10.0.0.7:7000", "")
	f("0.0.0.0:7946", "v6only", true, "", "[fd00::9]:7946", "")
	f("0.0.0.0:7946", "nowhere", true, "", "", "cannot resolve")
	f("127.0.0.1:8080", "0.0.0.0:8080", false, "10.0.0.1", "", "unspecified")
	f("127.0.0.1:8080", "[::]", false, "10.0.0.1", "", "unspecified")
	f("127.0.0.1:8080", "host:0", false, "10.0.0.1", "", "port")
	f("127.0.0.1:8080", ":9000", false, "10.0.0.1", "", "HOST")
	f("127.0.0.1:8080", "a b", false, "10.0.0.1", "", "HOST")
}

// TestResolveTargets: every address behind each --join name is tried, in
// order, without duplicates and without this node's own; a name that
// does not resolve is reported and the others still used.
func TestResolveTargets(t *testing.T) {
	resolve := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "ringkv.default.svc":
			return []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, nil
		case "v6":
			return []string{"fd00::1", "::1"}, nil
		}
		return nil, errors.New("no such host")
	}
	got, errs := resolveTargets(context.Background(), resolve,
		[]string{"ringkv.default.svc:7946", "10.0.0.2:7946", "nohost:7946", "v6:7946", "[0:0::1]:7000"}, "10.0.0.3:7946")
	want := []string{"10.0.0.1:7946", "10.0.0.2:7946", "[fd00::1]:7946", "[::1]:7946", "[0:0::1]:7000"}
	if !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "nohost") {
		t.Errorf("errors %v, want one naming nohost", errs)
	}
	if got, _ := resolveTargets(context.Background(), resolve, []string{"v6:7946"}, "[::1]:7946"); !slices.Equal(got, []string{"[fd00::1]:7946"}) {
		t.Errorf("self [::1]:7946 not skipped: %v", got)
	}
}

// countingResolver answers name with ips (a headless Service's
// records), counting lookups.
type countingResolver struct {
	name  string
	mu    sync.Mutex
	ips   []string
	calls atomic.Int64
}

func (r *countingResolver) resolve(_ context.Context, host string) ([]string, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if host != r.name || len(r.ips) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(r.ips), nil
}

// sameMomentCluster starts n brand-new nodes at once, each on its own
// loopback address and the same port (as hosts would be), all with
// --join NAME:PORT (a name whose records are every node's address) and
// --bootstrap-expect expect, and runs their JoinUntil.
func sameMomentCluster(t *testing.T, n, expect int) []*labNode {
	l := newLab(t)
	port := freeUDPAndTCPPort(t)
	r := &countingResolver{name: "ringkv.test"}
	var ns []*labNode
	for i := range n {
		ip := fmt.Sprintf("127.0.0.%d", i+11)
		nd := l.node(fmt.Sprintf("n%d", i+1))
		nd.ip, nd.addr = ip, net.JoinHostPort(ip, strconv.Itoa(port))
		nd.joinList, nd.expect, nd.resolve = []string{"ringkv.test:" + strconv.Itoa(port)}, expect, r.resolve
		r.ips = append(r.ips, ip)
		ns = append(ns, nd)
	}
	var wg sync.WaitGroup
	for _, nd := range ns {
		wg.Go(func() { nd.mustStart() })
	}
	wg.Wait()
	for _, nd := range ns {
		nd.joinUntil()
	}
	return ns
}

// freeUDPAndTCPPort returns a port free for both UDP and TCP on
// 127.0.0.1 (memberlist binds both), which the other loopback addresses
// share.
func freeUDPAndTCPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// rings returns every distinct non-empty ring n published, in order.
func rings(n *labNode) [][]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out [][]string
	for _, v := range n.views {
		r := v.Ring.Nodes()
		if len(r) > 0 && (len(out) == 0 || !slices.Equal(out[len(out)-1], r)) {
			out = append(out, r)
		}
	}
	return out
}

// TestBootstrapExpectFormsOneRing: five brand-new nodes started at the
// same moment with the same --join name and --bootstrap-expect 5 form
// one ring: every node sees the five alive, and no node ever published
// another ring (not one of itself, nor a part of the five) first.
func TestBootstrapExpectFormsOneRing(t *testing.T) {
	ns := sameMomentCluster(t, 5, 5)
	waitRing(t, ns, "n1", "n2", "n3", "n4", "n5")
	for _, n := range ns {
		if rs := rings(n); len(rs) != 1 {
			t.Errorf("%s published rings %v, want only the five", n.id, rs)
		}
		if why, joining := n.g.Joining(); joining {
			t.Errorf("%s still joining: %s", n.id, why)
		}
	}
}

// TestJoinTogetherWithoutExpect: without --bootstrap-expect, five
// brand-new nodes started together with the same --join name end in one
// ring of the five, and none ever shows a ring of one (the lowest id
// founds only once it has met another, and shows its ring once another
// entered it).
func TestJoinTogetherWithoutExpect(t *testing.T) {
	ns := sameMomentCluster(t, 5, 0)
	waitRing(t, ns, "n1", "n2", "n3", "n4", "n5")
	for _, n := range ns {
		for _, r := range rings(n) {
			if len(r) < 2 {
				t.Errorf("%s published a ring of one: %v", n.id, rings(n))
			}
		}
	}
}

// TestJoinWaitsForTargets: a brand-new node with --join whose targets do
// not answer (the name does not resolve yet, then resolves to a member
// not up yet) never forms a ring of its own: it retries, resolving the
// name again each time, reports itself joining, and enters the ring once
// a member is up there. JoinUntil with a deadline that runs out first
// returns an error saying why.
func TestJoinWaitsForTargets(t *testing.T) {
	l := newLab(t)
	port := freeUDPAndTCPPort(t)
	r := &countingResolver{name: "ringkv.test"}
	a := l.node("a")
	a.ip, a.addr = "127.0.0.21", net.JoinHostPort("127.0.0.21", strconv.Itoa(port))
	b := l.node("b")
	b.ip, b.addr = "127.0.0.22", net.JoinHostPort("127.0.0.22", strconv.Itoa(port))
	b.joinList, b.resolve = []string{"ringkv.test:" + strconv.Itoa(port)}, r.resolve
	b.mustStart()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := b.g.JoinUntil(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ringkv.test") {
		t.Fatalf("JoinUntil past its deadline: %v, want a deadline error naming the target", err)
	}
	if n := r.calls.Load(); n < 2 {
		t.Errorf("the name was resolved %d times, want one per attempt", n)
	}
	res := b.joinUntil()
	r.mu.Lock()
	r.ips = []string{"127.0.0.22", "127.0.0.21"} // b itself, and a, not up yet
	r.mu.Unlock()
	calls := r.calls.Load()
	peertest.WaitFor(t, within, func() bool { return r.calls.Load() >= calls+3 }, "b to retry against a name that resolves")
	if why, joining := b.g.Joining(); !joining || !strings.Contains(why, "--join") {
		t.Errorf("b joining = %v %q, want a reason naming --join", joining, why)
	}
	if rs := rings(b); len(rs) != 0 {
		t.Fatalf("b formed rings %v with nobody to join", rs)
	}
	a.mustStart() // a founds (no --join); b finds it
	waitRing(t, []*labNode{a, b}, "a", "b")
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(within):
		t.Fatal("JoinUntil did not return once b joined")
	}
	if rs := rings(b); !slices.EqualFunc(rs, [][]string{{"a", "b"}}, slices.Equal) {
		t.Errorf("b's rings %v, want only a+b", rs)
	}
}

// TestRefuseMergingTwoRings: two rings of two that never met are not
// merged when a node of one is told to join the other: the join fails,
// both sides log why naming both rings, and neither ring changes.
func TestRefuseMergingTwoRings(t *testing.T) {
	l := newLab(t)
	var logs syncBuffer
	lg := slog.New(slog.NewTextHandler(&logs, nil))
	var ns []*labNode
	for _, id := range []string{"a", "b", "c", "d"} {
		n := l.node(id)
		n.logger = lg
		ns = append(ns, n.mustStart())
	}
	a, b, c, d := ns[0], ns[1], ns[2], ns[3]
	b.join(a)
	d.join(c)
	waitRing(t, []*labNode{a, b}, "a", "b")
	waitRing(t, []*labNode{c, d}, "c", "d")
	if err := c.g.Join([]string{a.addr}); err == nil {
		t.Fatal("c joined a's ring")
	}
	peertest.WaitFor(t, within, func() bool {
		s := logs.String()
		return strings.Count(s, "refusing to merge two rings") >= 2 && strings.Contains(s, "this_ring=\"[a b]\"") && strings.Contains(s, "this_ring=\"[c d]\"")
	}, "both sides to log the refusal naming both rings")
	probeRounds(t, ns, 3)
	for _, n := range ns {
		want := []string{"a", "b"}
		if n == c || n == d {
			want = []string{"c", "d"}
		}
		if got := n.last().Ring.Nodes(); !slices.Equal(got, want) || len(n.last().Members) != 2 {
			t.Errorf("%s's ring %v members %d after the refused merge, want %v", n.id, got, len(n.last().Members), want)
		}
	}
	// A single brand-new node still joins either.
	e := l.node("e").mustStart()
	e.join(c)
	waitRing(t, []*labNode{c, d, e}, "c", "d", "e")
}

// syncBuffer is a bytes.Buffer for loggers of several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEntering: when a brand-new node with --join enters a ring, by what
// it sees alive: a ring (not one still forming, with --bootstrap-expect);
// --bootstrap-expect members, in a ring or not; without it, another
// brand-new node, when it has the lowest id. Never alone, but with
// --bootstrap-expect 1.
func TestEntering(t *testing.T) {
	l := List{
		"a": {ID: "a", Joining: true}, "b": {ID: "b", Joining: true}, "c": {ID: "c", Joining: true},
		"r": {ID: "r"}, "x": {ID: "x", Removed: true},
	}
	f := func(self string, alive []string, expect int, holding map[string]bool, want string) {
		t.Helper()
		if got := entering(l, alive, self, expect, holding); got != want {
			t.Errorf("entering(self %s, alive %v, expect %d, holding %v) = %q, want %q", self, alive, expect, holding, got, want)
		}
	}
	f("a", []string{"a"}, 0, nil, "")
	f("a", []string{"a"}, 3, nil, "")
	f("a", []string{"a"}, 1, nil, "expect")
	f("a", []string{"a", "b"}, 0, nil, "lowest")
	f("b", []string{"a", "b"}, 0, nil, "")
	f("a", []string{"a", "b"}, 3, nil, "")
	f("a", []string{"a", "b", "c"}, 3, nil, "expect")
	f("b", []string{"a", "b", "r"}, 0, nil, "ring")
	f("b", []string{"b", "r"}, 3, nil, "ring")
	f("b", []string{"b", "r"}, 3, map[string]bool{"r": true}, "")     // r is forming the initial ring: wait for 3
	f("b", []string{"b", "r"}, 0, map[string]bool{"r": true}, "ring") // without expect, a founder's hold does not matter
	f("b", []string{"b", "r", "c"}, 3, map[string]bool{"r": true}, "expect")
	f("b", []string{"b", "x"}, 0, nil, "lowest") // a removed member is no ring to enter
}

// TestRefusesMerge: two rings merge unless both have more than one
// member and they share none.
func TestRefusesMerge(t *testing.T) {
	for _, tc := range []struct {
		mine, theirs int
		met, refuse  bool
	}{
		{1, 1, false, false}, {1, 5, false, false}, {5, 1, false, false}, {0, 5, false, false},
		{2, 2, false, true}, {5, 3, false, true}, {5, 3, true, false},
	} {
		if got := refusesMerge(tc.mine, tc.theirs, tc.met); got != tc.refuse {
			t.Errorf("refusesMerge(%d, %d, met %v) = %v, want %v", tc.mine, tc.theirs, tc.met, got, tc.refuse)
		}
	}
}
