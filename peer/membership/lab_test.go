package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
)

// within bounds every wait of these tests: generous, for a loaded
// machine; a passing test waits only as long as its condition takes.
const within = 60 * time.Second

// lab is a loopback network of real memberlist nodes for one test. Each
// node talks through memberlist's own NetTransport behind a filter that
// drops what a cut forbids (both ways: each side drops what it would send
// across), the way memberlist's tests use its MockNetwork, but on real
// sockets.
type lab struct {
	t   *testing.T
	mu  sync.Mutex
	cut map[[2]string]bool // gossip addresses, sender first
}

func newLab(t *testing.T) *lab { return &lab{t: t, cut: map[[2]string]bool{}} }

// partition cuts every link between a node of side and a node of others.
func (l *lab) partition(side []*labNode, others ...*labNode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range side {
		for _, b := range others {
			l.cut[[2]string{a.addr, b.addr}] = true
			l.cut[[2]string{b.addr, a.addr}] = true
		}
	}
}

// heal restores every link.
func (l *lab) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.cut)
}

func (l *lab) isCut(from, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut[[2]string{from, to}]
}

// cutTransport is a node's transport: memberlist's NetTransport, minus the
// packets and connections that a cut of the lab drops.
type cutTransport struct {
	memberlist.Transport
	lab  *lab
	self string
}

var errCut = errors.New("lab: link cut")

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.lab.isCut(c.self, addr) {
		return time.Now(), nil // lost on the way, as UDP may be
	}
	return c.Transport.WriteTo(b, addr)
}

func (c *cutTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if c.lab.isCut(c.self, addr) {
		return nil, errCut
	}
	return c.Transport.DialTimeout(addr, d)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return c.WriteTo(b, a.Addr)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return c.DialTimeout(a.Addr, d)
}

var _ memberlist.NodeAwareTransport = (*cutTransport)(nil)

// labNode is one node of a lab: its Gossip (replaced by each restart), its
// engine (kept across restarts, as a data directory is), the views it
// published and how many probes it completed (memberlist probes one
// member an interval).
type labNode struct {
	lab     *lab
	id      string
	addr    string // 127.0.0.1:port, the same across restarts
	secrets *peer.Secrets
	eng     *engine.Engine
	g       *Gossip
	probes  atomic.Int64
	// watch, once set, makes the node record every member it sees dead.
	watch atomic.Bool
	// Set before start, if at all: the node's --peer-addr, its wall clock
	// (time.Now when nil) and its clock monitor; its --join targets,
	// --bootstrap-expect, resolver and logger (none: discarded).
	peerAddr string
	now      func() time.Time
	offsets  *peer.ClockMonitor
	joinList []string
	expect   int
	ip       string // the loopback address it binds (127.0.0.1 when "")
	resolve  Resolver
	logger   *slog.Logger

	mu    sync.Mutex
	views []*peer.View
	dead  []string
}

// node returns a node of the lab, not yet started, with secrets (none: no
// encryption) of cluster "test".
func (l *lab) node(id string, secrets ...string) *labNode {
	l.t.Helper()
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1, RowCacheSize: -1})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { eng.Close() })
	var secs [][]byte
	for _, s := range secrets {
		secs = append(secs, []byte(s))
	}
	return &labNode{lab: l, id: id, eng: eng, secrets: peer.NewSecrets("test", secs...)}
}

// start starts (or restarts) n's Gossip on its engine and its address.
func (n *labNode) start() error {
	t := n.lab.t
	t.Helper()
	port := 0
	if n.addr != "" {
		_, p, _ := net.SplitHostPort(n.addr)
		port, _ = strconv.Atoi(p)
	}
	ip := n.ip
	if ip == "" {
		ip = "127.0.0.1"
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ip}, BindPort: port, Logger: log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
	port = nt.GetAutoBindPort()
	n.addr = net.JoinHostPort(ip, strconv.Itoa(port))
	n.mu.Lock()
	n.views = nil
	n.mu.Unlock()
	lg := n.logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := Start(Config{
		Join: n.joinList, BootstrapExpect: n.expect, Resolve: n.resolve,
		JoinRetryMin: 20 * time.Millisecond, JoinRetryMax: 200 * time.Millisecond,
		NodeID: n.id, HTTPAddr: "127.0.0.1:1", BindAddr: n.addr, Secrets: n.secrets, PeerAddr: n.peerAddr,
		Now: n.now, Offsets: n.offsets,
		Replicas: 3, VNodes: 8, Engine: n.eng, Clock: memtable.NewClock(nil),
		Logger: lg, OnView: n.onView,
		ReconnectInterval: 200 * time.Millisecond, LivenessInterval: 100 * time.Millisecond,
		Tune: func(c *memberlist.Config) {
			fastTimings(c)
			c.Transport = &cutTransport{Transport: nt, lab: n.lab, self: n.addr}
			c.Ping = countingPing{c.Ping, &n.probes}
		},
	})
	if err != nil {
		nt.Shutdown()
		return err
	}
	n.g = g
	t.Cleanup(func() { n.stop() })
	return nil
}

// mustStart is start, failing the test on an error.
func (n *labNode) mustStart() *labNode {
	n.lab.t.Helper()
	if err := n.start(); err != nil {
		n.lab.t.Fatalf("start %s: %v", n.id, err)
	}
	return n
}

// fastTimings shorten memberlist's intervals, as its DefaultLocalConfig
// does and further: fast enough for short tests, slow enough that a loaded
// machine does not miss acks and suspect healthy members. Nothing gossips
// to the dead, so only the reconnect loop brings a member back from the
// dead.
func fastTimings(c *memberlist.Config) {
	c.ProbeInterval = 300 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = time.Second
	c.GossipToTheDeadTime = 0
}

func (n *labNode) onView(v *peer.View) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.views = append(n.views, v)
	if n.watch.Load() {
		for mid, m := range v.Members {
			if m.State == peer.Dead && mid != n.id {
				n.dead = append(n.dead, mid)
			}
		}
	}
}

// stop closes n's Gossip as a shutdown does (telling the others), once.
func (n *labNode) stop() {
	if g := n.g; g != nil {
		n.g = nil
		g.Close()
	}
}

// crash stops n's Gossip as a kill -9 would: nobody is told.
func (n *labNode) crash() {
	g := n.g
	n.g = nil
	close(g.stop)
	<-g.done
	g.ml.Load().Shutdown()
	g.dials.Wait()
}

func (n *labNode) join(to *labNode) {
	n.lab.t.Helper()
	if err := n.g.Join([]string{to.addr}); err != nil {
		n.lab.t.Fatalf("%s joins %s: %v", n.id, to.id, err)
	}
}

func (n *labNode) last() *peer.View {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.views) == 0 {
		return nil
	}
	return n.views[len(n.views)-1]
}

// first returns the first view n published since it last started.
func (n *labNode) first() *peer.View {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.views[0]
}

// ringIs reports whether n's latest view has exactly ids in its ring, all
// alive.
func ringIs(n *labNode, ids ...string) bool {
	v := n.last()
	if v == nil || !slices.Equal(v.Ring.Nodes(), ids) {
		return false
	}
	for _, id := range ids {
		if v.Members[id].State != peer.Alive {
			return false
		}
	}
	return true
}

// sees reports whether n's latest view has member id in state st.
func sees(n *labNode, id string, st peer.MemberState) bool {
	v := n.last()
	return v != nil && v.Members[id].State == st
}

// waitRing waits until every node of ns has exactly ids in its ring, all
// alive.
func waitRing(t *testing.T, ns []*labNode, ids ...string) {
	t.Helper()
	peertest.WaitFor(t, within, func() bool {
		for _, n := range ns {
			if !ringIs(n, ids...) {
				return false
			}
		}
		return true
	}, fmt.Sprintf("every node's ring to be %v, all alive", ids))
}

// cluster starts nodes ids (with secrets) and joins them to the first.
func (l *lab) cluster(ids []string, secrets ...string) []*labNode {
	l.t.Helper()
	var ns []*labNode
	for _, id := range ids {
		ns = append(ns, l.node(id, secrets...).mustStart())
	}
	for _, n := range ns[1:] {
		n.join(ns[0])
	}
	waitRing(l.t, ns, ids...)
	return ns
}

type countingPing struct {
	memberlist.PingDelegate
	n *atomic.Int64
}

func (p countingPing) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	p.n.Add(1)
	p.PingDelegate.NotifyPingComplete(other, rtt, payload)
}

// probeRounds waits until every node has completed rounds more probes
// than now: with three nodes, each has then probed each other member
// under whatever keys are in place.
func probeRounds(t *testing.T, ns []*labNode, rounds int64) {
	t.Helper()
	want := make([]int64, len(ns))
	for i, n := range ns {
		want[i] = n.probes.Load() + rounds
	}
	peertest.WaitFor(t, within, func() bool {
		for i, n := range ns {
			if n.probes.Load() < want[i] {
				return false
			}
		}
		return true
	}, "probe rounds")
}

// joinUntil runs n's JoinUntil until it returns or the test ends; its
// result, once it returned, is in the channel returned.
func (n *labNode) joinUntil() <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	res := make(chan error, 1)
	g := n.g
	go func() { defer close(done); res <- g.JoinUntil(ctx) }()
	n.lab.t.Cleanup(func() { cancel(); <-done })
	return res
}
