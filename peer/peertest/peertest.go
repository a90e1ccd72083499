// Package peertest runs ringkv clusters inside one test process: each node
// a real peer.Node on an in-memory Pebble, connected by an in-memory
// transport that can partition, hang and drop messages. Failure detection
// is the test's to drive (MarkDown, MarkUp), so cluster tests are
// deterministic up to goroutine scheduling, and need no sleeps.
package peertest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest/wait"
	"github.com/ringkv/ringkv/peer/transport"
	"github.com/ringkv/ringkv/ring"
)

// ErrPartitioned is what a call across a cut link fails with.
var ErrPartitioned = errors.New("peertest: partitioned")

// ErrDropped is what a dropped call fails with.
var ErrDropped = errors.New("peertest: message dropped")

// Network connects in-memory nodes by address.
type Network struct {
	mu    sync.Mutex
	nodes map[string]*peer.Node
	cut   map[[2]string]bool // from, to
	hung  map[string]chan struct{}
	lag   map[string]time.Duration
	drop  float64
	rng   *rand.Rand
	calls map[string]int  // by kind: apply, read, scan
	lies  map[string]Lies // by address
	// inflight tracks the goroutines of asynchronous calls and range
	// streams, which run on another node's engine after the call that
	// started them returned; Cluster.Close waits for them.
	inflight sync.WaitGroup
}

// NewNetwork returns an empty network; seed drives message drops.
func NewNetwork(seed uint64) *Network {
	return &Network{
		nodes: map[string]*peer.Node{},
		cut:   map[[2]string]bool{},
		hung:  map[string]chan struct{}{},
		lag:   map[string]time.Duration{},
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		calls: map[string]int{},
		lies:  map[string]Lies{},
	}
}

// Lies are what a member that cannot be trusted says to the others.
type Lies struct {
	// Settled: its status says it holds every range of its ring, whether
	// it does or not.
	Settled bool
	// SwallowApplies: it acknowledges replica writes without storing
	// them.
	SwallowApplies bool
}

// Lie makes the node at addr (which may not have started yet) tell the
// others l from now on.
func (n *Network) Lie(addr string, l Lies) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lies[addr] = l
}

func (n *Network) liesOf(addr string) Lies {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lies[addr]
}

// Isolate cuts addr off from every other address, both ways.
func (n *Network) Isolate(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.nodes {
		if other != addr {
			n.cut[[2]string{addr, other}] = true
			n.cut[[2]string{other, addr}] = true
		}
	}
}

// Cut fails every call from one address to another; calls the other
// way still pass.
func (n *Network) Cut(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]string{from, to}] = true
}

// Hang makes calls to addr block until Heal or their context ends, as a
// paused process would.
func (n *Network) Hang(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hung[addr] == nil {
		n.hung[addr] = make(chan struct{})
	}
}

// Delay makes every call to addr arrive d late, whatever its caller's
// context does meanwhile: a message already on the wire is delivered
// even if its sender gave up on the answer.
func (n *Network) Delay(addr string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lag[addr] = d
}

// SetDrop makes each call fail with probability p (0 stops dropping).
func (n *Network) SetDrop(p float64) {
	n.mu.Lock()
	n.drop = p
	n.mu.Unlock()
}

// Heal removes every partition, hang, delay and drop.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
	for _, c := range n.hung {
		close(c)
	}
	n.hung = map[string]chan struct{}{}
	n.lag = map[string]time.Duration{}
	n.drop = 0
}

// Calls returns how many calls of a kind ("apply", "read", "scan") were made.
func (n *Network) Calls(kind string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[kind]
}

// route finds the node at addr for a call from from, or why it fails.
func (n *Network) route(ctx context.Context, from, to, kind string) (*peer.Node, error) {
	n.mu.Lock()
	n.calls[kind]++
	node := n.nodes[to]
	cut := n.cut[[2]string{from, to}]
	hang := n.hung[to]
	lag := n.lag[to]
	dropped := n.drop > 0 && n.rng.Float64() < n.drop
	n.mu.Unlock()
	switch {
	case node == nil:
		return nil, fmt.Errorf("peertest: no node at %s", to)
	case cut:
		return nil, ErrPartitioned
	case dropped:
		return nil, ErrDropped
	case hang != nil:
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if lag > 0 {
		time.Sleep(lag) // the message is in flight
	}
	return node, nil
}

// memTransport is one node's view of the network: a peer.Transport, as
// peer/transport's is, whose calls run on the other node's peer.Node
// directly. Writes and scans go through peer/transport's codec, as over
// the wire, which also copies them.
type memTransport struct {
	net  *Network
	from string
}

func (t *memTransport) Apply(ctx context.Context, addr string, ms []peer.Mutation) error {
	node, err := t.net.route(ctx, t.from, addr, "apply")
	if err != nil {
		return err
	}
	if t.net.liesOf(addr).SwallowApplies {
		return nil
	}
	cp, err := transport.DecodeApply(transport.AppendApply(nil, ms))
	if err != nil {
		return err
	}
	return node.Local().ApplyLocal(cp)
}

// Paxos delivers req as the transport would: through its codec both
// ways, so the node sees only what crosses a network.
func (t *memTransport) Paxos(ctx context.Context, addr string, req peer.PaxosRequest) (peer.PaxosReply, error) {
	node, err := t.net.route(ctx, t.from, addr, "paxos")
	if err != nil {
		return peer.PaxosReply{}, err
	}
	cp, err := transport.DecodePaxos(transport.AppendPaxos(nil, req))
	if err != nil {
		return peer.PaxosReply{}, err
	}
	rep, err := node.Local().Paxos(cp)
	if err != nil {
		return peer.PaxosReply{}, err
	}
	return transport.DecodePaxosReply(transport.AppendPaxosReply(nil, rep))
}

func (t *memTransport) ApplyAsync(addr string, ms []peer.Mutation, deadline time.Time, done func(error)) {
	t.net.inflight.Go(func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		done(t.Apply(ctx, addr, ms))
	})
}

func (t *memTransport) ReadAsync(addr string, key []byte, deadline time.Time, got func([]byte, error)) {
	t.net.inflight.Go(func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		node, err := t.net.route(ctx, t.from, addr, "read")
		if err != nil {
			got(nil, err)
			return
		}
		rec, err := node.Local().ReadLocal(nil, key)
		if errors.Is(err, peer.ErrNotFound) {
			rec, err = nil, nil
		}
		got(rec, err)
	})
}

func (t *memTransport) Scan(ctx context.Context, addr string, q peer.LocalScan) (peer.LocalPage, error) {
	node, err := t.net.route(ctx, t.from, addr, "scan")
	if err != nil {
		return peer.LocalPage{}, err
	}
	if q, err = transport.DecodeScan(transport.AppendScan(nil, q)); err != nil {
		return peer.LocalPage{}, err
	}
	p, err := node.Local().ScanLocal(ctx, q)
	if err != nil {
		return peer.LocalPage{}, err
	}
	return transport.DecodeScanPage(transport.AppendScanPage(nil, p))
}

func (t *memTransport) OpenSpan(ctx context.Context, addr string, lo, hi uint64) (io.ReadCloser, error) {
	node, err := t.net.route(ctx, t.from, addr, "span")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	t.net.inflight.Go(func() { pw.CloseWithError(node.Local().ServeSpan(ctx, lo, hi, pw)) })
	return pr, nil
}

func (t *memTransport) Merkle(ctx context.Context, addr string, rg ring.Range, depth int) (*peer.Merkle, error) {
	node, err := t.net.route(ctx, t.from, addr, "merkle")
	if err != nil {
		return nil, err
	}
	m, err := node.Local().LocalMerkle(ctx, rg, depth)
	if err != nil {
		return nil, err
	}
	return transport.DecodeMerkle(transport.AppendMerkle(nil, m)) // as over the wire
}

func (t *memTransport) Status(ctx context.Context, addr string) (peer.ClusterStatus, error) {
	node, err := t.net.route(ctx, t.from, addr, "status")
	if err != nil {
		return peer.ClusterStatus{}, err
	}
	st := node.ClusterStatus()
	if t.net.liesOf(addr).Settled {
		st.Settled, st.Transfers = true, nil
	}
	return st, nil
}

var _ peer.Transport = (*memTransport)(nil)

func (t *memTransport) GossipAddrs(ctx context.Context, addr string) ([]string, error) {
	return nil, errors.New("peertest: no gossip")
}

// Cluster is n nodes on one Network, all in one ring.
type Cluster struct {
	t     testing.TB
	Net   *Network
	Nodes []*peer.Node
	Addrs []string
	IDs   []string
	FS    []vfs.FS
	engs  []*engine.Engine
	// clocks are the nodes' clock-offset monitors (Config.Clocks), which
	// MeasureClocks and Clocks feed as gossip would.
	clocks []*peer.ClockMonitor
	cfg    Options

	mu      sync.Mutex
	down    map[string]bool // ids failure detection reports dead
	leaving map[string]bool // ids out of the ring, handing over (Rebalancer.Leave)
	removed map[string]bool // ids out of the cluster
}

// membership is one node's Membership on the test cluster: Leave and
// Remove change every node's view at once.
type membership struct {
	c  *Cluster
	id string
}

func (m membership) Join([]string) error { return errors.New("peertest: no gossip") }
func (m membership) GossipAddr() string  { return "" }

func (m membership) Leave() error {
	m.c.mu.Lock()
	m.c.leaving[m.id] = true
	m.c.mu.Unlock()
	m.c.publish()
	return nil
}

func (m membership) Remove(id string) error {
	m.c.mu.Lock()
	m.c.removed[id] = true
	m.c.mu.Unlock()
	m.c.publish()
	return nil
}

// Options shape a test cluster.
type Options struct {
	Nodes    int
	Replicas int    // default peer.DefaultReplicas
	VNodes   int    // default 16: small rings keep tests fast
	Seed     uint64 // drives drops
	// RequestTimeout bounds replica waits; default 2s.
	RequestTimeout time.Duration
	// TransferRate bounds the bytes a second a node sends, over all the
	// ranges it streams at once; default unlimited.
	TransferRate int64
	// TombstoneGrace is the engines' and nodes' --tombstone-grace;
	// default peer.DefaultTombstoneGrace.
	TombstoneGrace time.Duration
	// AntiEntropyInterval, if set, runs anti-entropy that often; by
	// default it is off, and tests call AntiEntropy.Pass.
	AntiEntropyInterval time.Duration
	// ClockOffsets, if set, offsets each node's wall clock (by index;
	// missing entries are 0). MeasureClocks tells the nodes.
	ClockOffsets []time.Duration
	// MaxClockOffset is the nodes' --max-clock-offset; default 500ms.
	MaxClockOffset time.Duration
}

// NewCluster starts opts.Nodes nodes, every one alive in every view. The
// cluster stops when the test ends.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = peer.DefaultReplicas
	}
	if opts.VNodes == 0 {
		opts.VNodes = 16
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 2 * time.Second
	}
	c := &Cluster{t: t, Net: NewNetwork(opts.Seed), cfg: opts, down: map[string]bool{}, leaving: map[string]bool{}, removed: map[string]bool{}}
	for i := range opts.Nodes {
		c.IDs = append(c.IDs, fmt.Sprintf("n%d", i+1))
		c.Addrs = append(c.Addrs, fmt.Sprintf("mem-%d:80", i+1))
		c.FS = append(c.FS, vfs.NewMem())
	}
	c.Nodes = make([]*peer.Node, opts.Nodes)
	c.engs = make([]*engine.Engine, opts.Nodes)
	c.clocks = make([]*peer.ClockMonitor, opts.Nodes)
	for i := range opts.Nodes {
		c.start(i)
	}
	c.publish()
	t.Cleanup(c.Close)
	// Founding members each take themselves to be joining the others and
	// pull their (empty) ranges; that takes milliseconds, and until then
	// they answer reads of those ranges with ErrRangePending.
	c.WaitSettled(10 * time.Second)
	return c
}

// WaitSettled waits until every node holds every range its ring gives it.
// If they do not within the given time, the test fails and its log names
// the nodes still unsettled and their transfers.
func (c *Cluster) WaitSettled(within time.Duration) {
	c.t.Helper()
	var left []string // as of the last look; empty once all are settled
	defer func() {
		if len(left) != 0 { // wait.For failed the test
			c.t.Logf("unsettled: %v", left)
		}
	}()
	wait.For(c.t, within, func() bool {
		left = left[:0]
		for i, n := range c.Nodes {
			if n != nil && !n.Rebalancer().Settled() {
				left = append(left, fmt.Sprint(c.IDs[i], n.Rebalancer().Transfers()))
			}
		}
		return len(left) == 0
	}, "every node to settle")
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	eng, err := engine.Open(engine.Options{FS: c.FS[i], GCInterval: engine.Off, RowCacheSize: engine.Off,
		GC: compaction.GC{TombstoneGrace: c.cfg.TombstoneGrace}})
	if err != nil {
		c.t.Fatal(err)
	}
	wall := c.wall(i)
	c.clocks[i] = peer.NewClockMonitor(c.cfg.MaxClockOffset, wall, nil)
	node, err := peer.NewNode(peer.Config{
		NodeID: c.IDs[i], HTTPAddr: c.Addrs[i], Engine: eng, Sync: true,
		Now:            wall,
		Clock:          memtable.NewClockBound(wall, c.cfg.MaxClockOffset),
		Clocks:         c.clocks[i],
		RequestTimeout: c.cfg.RequestTimeout, Replicas: c.cfg.Replicas, VNodes: c.cfg.VNodes,
		Transport:           &memTransport{net: c.Net, from: c.Addrs[i]},
		HintInterval:        time.Hour, // tests replay hints themselves
		HedgeAfter:          20 * time.Millisecond,
		TransferRate:        cmp.Or(c.cfg.TransferRate, peer.NoLimit),
		AntiEntropyInterval: cmp.Or(c.cfg.AntiEntropyInterval, peer.Off),
		AntiEntropyRate:     peer.NoLimit,
		TombstoneGrace:      c.cfg.TombstoneGrace,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	node.UseMembership(membership{c: c, id: c.IDs[i]})
	eng.SetGCHorizon(node.AntiEntropy().GCHorizon)
	c.engs[i], c.Nodes[i] = eng, node
	c.Net.mu.Lock()
	c.Net.nodes[c.Addrs[i]] = node
	c.Net.mu.Unlock()
}

// wall is node i's wall clock: time.Now plus its ClockOffsets entry.
func (c *Cluster) wall(i int) func() time.Time {
	var d time.Duration
	if i < len(c.cfg.ClockOffsets) {
		d = c.cfg.ClockOffsets[i]
	}
	if d == 0 {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(d) }
}

// MeasureClocks gives every node a measurement of every other node's
// clock, as gossip probes would (with no round trip).
func (c *Cluster) MeasureClocks() {
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		// As gossip does: from now on writes rest on the measurements.
		c.clocks[i].SetProbed()
		for j := range c.Nodes {
			if j != i && c.Nodes[j] != nil {
				c.clocks[i].Observe(c.IDs[j], c.wall(j)(), 0)
			}
		}
	}
}

// View returns the view every node has: the full ring, with the nodes
// marked down dead.
func (c *Cluster) View() *peer.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := map[string]peer.Member{}
	var ringIDs []string
	for i, id := range c.IDs {
		st := peer.Alive
		if c.down[id] {
			st = peer.Dead
		}
		if c.removed[id] {
			st = peer.Left
		} else if !c.leaving[id] {
			ringIDs = append(ringIDs, id)
		}
		// Founders joined together; AddNode's nodes after them, in order.
		joined := uint64(max(0, i-c.cfg.Nodes+1))
		ms[id] = peer.Member{ID: id, HTTPAddr: c.Addrs[i], State: st, Joined: joined, Leaving: c.leaving[id] && !c.removed[id]}
	}
	return &peer.View{Ring: ring.New(ringIDs, c.cfg.VNodes, c.cfg.Replicas), Members: ms}
}

func (c *Cluster) publish() {
	v := c.View()
	for _, n := range c.Nodes {
		if n != nil {
			n.SetView(v)
		}
	}
}

// AddNode starts one more node, empty, and puts it in every node's ring,
// as a join does; it returns its index.
func (c *Cluster) AddNode() int {
	c.t.Helper()
	i := len(c.IDs)
	c.mu.Lock()
	c.IDs = append(c.IDs, fmt.Sprintf("n%d", i+1))
	c.Addrs = append(c.Addrs, fmt.Sprintf("mem-%d:80", i+1))
	c.FS = append(c.FS, vfs.NewMem())
	c.Nodes = append(c.Nodes, nil)
	c.engs = append(c.engs, nil)
	c.clocks = append(c.clocks, nil)
	c.mu.Unlock()
	c.start(i)
	c.publish()
	return i
}

// MarkDown makes every node's failure detector report node i dead.
func (c *Cluster) MarkDown(i int) {
	c.mu.Lock()
	c.down[c.IDs[i]] = true
	c.mu.Unlock()
	c.publish()
}

// MarkUp reports node i alive again.
func (c *Cluster) MarkUp(i int) {
	c.mu.Lock()
	delete(c.down, c.IDs[i])
	c.mu.Unlock()
	c.publish()
}

// Restart stops node i (its engine closes cleanly) and starts it again on
// the same in-memory filesystem.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.stop(i)
	c.start(i)
	c.Nodes[i].SetView(c.View())
}

// RestartAfter stops node i, calls damage with its filesystem (the store
// is at its root) while it is down, and starts it again.
func (c *Cluster) RestartAfter(i int, damage func(fs vfs.FS)) {
	c.t.Helper()
	c.stop(i)
	damage(c.FS[i])
	c.start(i)
	c.Nodes[i].SetView(c.View())
}

func (c *Cluster) stop(i int) {
	if c.Nodes[i] == nil {
		return
	}
	c.Nodes[i].Close()
	if err := c.engs[i].Close(); err != nil {
		c.t.Errorf("close engine of %s: %v", c.IDs[i], err)
	}
	c.Nodes[i], c.engs[i] = nil, nil
}

// Settle waits for every node's background replica writes and repairs.
func (c *Cluster) Settle() {
	for _, n := range c.Nodes {
		if n != nil {
			n.WaitBackground()
		}
	}
}

// ReplayHints replays every node's hints until none are left that can be
// delivered, and returns how many were delivered.
func (c *Cluster) ReplayHints() int {
	total := 0
	for {
		c.Settle()
		d := 0
		for _, n := range c.Nodes {
			if n != nil {
				d += n.Hints().Replay()
			}
		}
		total += d
		if d == 0 {
			return total
		}
	}
}

// HintsPending sums the hints every node holds.
func (c *Cluster) HintsPending() int64 {
	var total int64
	for _, n := range c.Nodes {
		if n != nil {
			total += n.Hints().Pending()
		}
	}
	return total
}

// Local returns node i's own record of key, or nil.
func (c *Cluster) Local(i int, key []byte) []byte {
	rec, err := c.Nodes[i].Local().ReadLocal(nil, key)
	if errors.Is(err, peer.ErrNotFound) {
		return nil
	}
	if err != nil {
		c.t.Fatalf("read %q on %s: %v", key, c.IDs[i], err)
	}
	return rec
}

// Engine returns node i's engine, for tests that run its garbage collection.
func (c *Cluster) Engine(i int) *engine.Engine { return c.engs[i] }

// Clocks returns node i's clock-offset monitor.
func (c *Cluster) Clocks(i int) *peer.ClockMonitor { return c.clocks[i] }

// Index returns the position of the node with id.
func (c *Cluster) Index(id string) int {
	for i, x := range c.IDs {
		if x == id {
			return i
		}
	}
	c.t.Fatalf("no node %q", id)
	return -1
}

// Close stops every node.
func (c *Cluster) Close() {
	c.Net.Heal()
	// Every node's background work first: one node's anti-entropy or pull
	// reads another's engine, which must still be open.
	for _, n := range c.Nodes {
		if n != nil {
			n.Close()
		}
	}
	c.Net.inflight.Wait()
	for i := range c.Nodes {
		c.stop(i)
	}
}
