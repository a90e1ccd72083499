package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// GET /v1/overview is the data of the status page: every member's own
// snapshot (NodeSnapshot), gathered by the node asked. Each member is
// asked at once, all within StatusConfig.PeerTimeout, so a member that is
// down or cut off costs the page that long at most and is shown as not
// answering, with why. GET /v1/overview?scope=node is this node's
// snapshot alone: what the gathering node asks its peers for.

// StatusConfig configures the status page and GET /v1/overview.
type StatusConfig struct {
	// Version is this node's version, shown on the page. The default is "".
	Version string
	// Peers asks other members for their snapshots; nil shows this node
	// alone (the others as not asked). The default is nil.
	Peers OverviewPeers
	// History supplies the per-second traffic of the sparklines; its
	// owner runs it (History.Run). nil shows no history. The default is nil.
	History *History
	// PeerTimeout bounds the gathering of the peers' snapshots, all
	// asked at once. The default is DefaultPeerTimeout.
	PeerTimeout time.Duration
	// HistorySeconds is how much history a snapshot carries. The default
	// is DefaultOverviewHistory.
	HistorySeconds int
}

// Defaults of StatusConfig.
const (
	DefaultPeerTimeout     = 800 * time.Millisecond
	DefaultOverviewHistory = 180
)

func (c *StatusConfig) ensureDefaults() {
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.HistorySeconds <= 0 {
		c.HistorySeconds = DefaultOverviewHistory
	}
}

// OverviewPeers is how a node asks another for its snapshot; the internode
// transport implements it.
type OverviewPeers interface {
	// NodeOverview returns the body of GET /v1/overview?scope=node (a
	// NodeSnapshot's JSON) of the member at httpAddr. It must give up
	// by ctx's deadline.
	NodeOverview(ctx context.Context, httpAddr string) (json.RawMessage, error)
}

// NodeScopeURI is the request a node sends a peer for its snapshot.
const NodeScopeURI = kv.NodeOverviewURI

// ErrNoOverview is matched by an OverviewPeers error for a node that
// answers but serves no /v1/overview: an older release, which the page
// shows as such rather than as down. peer/transport's NodeOverview
// returns it (kv.ErrNoOverview).
var ErrNoOverview = kv.ErrNoOverview

// NodeSnapshot is one node's own account of itself, as GET
// /v1/overview?scope=node serves it.
type NodeSnapshot struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"` // the node's clock when taken
	Started time.Time `json:"started"`
	// Cluster is the node's view of the cluster (GET /v1/cluster); nil on
	// a node without clustering, which lists Members instead.
	Cluster *kv.ClusterStatus `json:"cluster,omitempty"`
	Members []string          `json:"members,omitempty"`
	Health  []kv.Degraded     `json:"health"`
	// Metrics holds a few of the node's /metrics values (overviewMetrics),
	// summed over their labels.
	Metrics map[string]float64 `json:"metrics"`
	// Requests counts the answers since start by op and code.
	Requests []requestCount `json:"requests"`
	// History is the last minutes, one value a second; nil without one.
	History *HistoryWindow `json:"history,omitempty"`
	// LSM is GET /v1/lsm.
	LSM any `json:"lsm"`
	// Errors lists what could not be read (a metrics collector's error).
	Errors []string `json:"errors,omitempty"`
}

// overviewMetrics are the /metrics values a NodeSnapshot carries.
var overviewMetrics = []string{
	"ringkv_disk_free_bytes",
	"ringkv_disk_min_free_bytes",
	"ringkv_disk_full",
	"ringkv_disk_full_writes_refused_total",
	"ringkv_read_repairs_total",
	"ringkv_replica_failures_total",
	"ringkv_hints_replayed_total",
	"ringkv_hints_lost_total",
	"ringkv_hints_dropped_total",
	"ringkv_anti_entropy_passes_total",
	"ringkv_anti_entropy_spans_repaired_total",
	"ringkv_transfer_bytes_total",
	"ringkv_transfer_drops_withheld_total",
	"ringkv_apply_refused_total",
	"ringkv_corruption_repairs_total",
	"ringkv_corrupt_spans",
	"ringkv_commit_waits_total",
	"ringkv_clock_offset_exceeded",
	"ringkv_http_limited_total",
	"ringkv_http_accept_errors_total",
	"process_resident_memory_bytes",
	"process_cpu_seconds_total",
	"go_goroutines",
}

// Overview is the JSON of GET /v1/overview.
type Overview struct {
	// Node is the node that gathered it, Time its clock then.
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// GatherSeconds is how long the gathering took.
	GatherSeconds float64 `json:"gather_seconds"`
	// TimeoutSeconds is how long a member had to answer.
	TimeoutSeconds float64 `json:"timeout_seconds"`
	// Nodes has this node first, then the other members in its view's
	// order (by id).
	Nodes []OverviewNode `json:"nodes"`
}

// OverviewNode is one member's part of an Overview.
type OverviewNode struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	// State is the member's state in the gathering node's view.
	State kv.MemberState `json:"state,omitempty"`
	// Asked says whether the member was asked for its snapshot: not
	// when it left the ring, or when no OverviewPeers is configured.
	Asked bool `json:"asked"`
	// Error says why it did not answer; Snapshot is its answer.
	// Unsupported: it answered, but runs a release without snapshots
	// (OverviewPeers returned an error matching ErrNoOverview).
	Error       string          `json:"error,omitempty"`
	Unsupported bool            `json:"unsupported,omitempty"`
	Seconds     float64         `json:"seconds"`
	Snapshot    json.RawMessage `json:"snapshot,omitempty"`
}

// statusState is a Server's memory of its last gathering: the page of
// every open browser asks each second, and each gathering asks every
// member, so gatherings within overviewReuse of the last share its answer.
type statusState struct {
	now      func() time.Time // nil: time.Now; tests set a clock
	mu       sync.Mutex
	last     []byte
	lastAt   time.Time
	inflight chan struct{} // closed when the gathering under way ends
}

// overviewReuse is how old a gathering may be to answer another request.
const overviewReuse = 500 * time.Millisecond

// overview serves GET /v1/overview.
func (s *Server) overview(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	var b []byte
	var err error
	if string(ctx.QueryArgs().Peek("scope")) == "node" {
		b, err = json.Marshal(s.nodeSnapshot())
	} else {
		b, err = s.sharedOverview()
	}
	if err != nil {
		s.writeStoreError(ctx, "overview", err)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(b)
}

// sharedOverview returns a gathering no older than overviewReuse, or
// waits for the one under way, or gathers.
func (s *Server) sharedOverview() ([]byte, error) {
	st := s.statusPage
	now := st.now
	if now == nil {
		now = time.Now
	}
	for {
		st.mu.Lock()
		if st.last != nil && now().Sub(st.lastAt) < overviewReuse {
			b := st.last
			st.mu.Unlock()
			return b, nil
		}
		if wait := st.inflight; wait != nil {
			st.mu.Unlock()
			<-wait // bounded: a gathering takes PeerTimeout at most
			continue
		}
		done := make(chan struct{})
		st.inflight = done
		st.mu.Unlock()

		b, err := json.Marshal(s.gatherOverview(s.storeCtx))
		b = append(b, '\n')
		st.mu.Lock()
		st.inflight = nil
		if err == nil {
			st.last, st.lastAt = b, now()
		}
		st.mu.Unlock()
		close(done)
		return b, err
	}
}

// gatherOverview asks every member but this node and those that left for
// its snapshot, all at once and within PeerTimeout.
func (s *Server) gatherOverview(ctx context.Context) Overview {
	start := time.Now()
	cfg := &s.cfg.Status
	self, err := json.Marshal(s.nodeSnapshot())
	ov := Overview{Node: s.cfg.NodeID, TimeoutSeconds: cfg.PeerTimeout.Seconds()}
	me := OverviewNode{ID: s.cfg.NodeID, HTTPAddr: s.cfg.Addr, Asked: true, Snapshot: self, Seconds: time.Since(start).Seconds()}
	if err != nil {
		me.Snapshot, me.Error = nil, err.Error()
	}
	var members []kv.Member
	if s.cluster != nil {
		st := s.cluster.ClusterStatus()
		members = st.Members
		for _, m := range members {
			if m.ID == s.cfg.NodeID {
				me.State, me.HTTPAddr = m.State, m.HTTPAddr
			}
		}
	}
	ov.Nodes = append(ov.Nodes, me)
	others := slices.DeleteFunc(slices.Clone(members), func(m kv.Member) bool { return m.ID == s.cfg.NodeID })
	type answer struct {
		i    int
		body json.RawMessage
		err  error
		took time.Duration
	}
	// Buffered for every answer: an asker never blocks, so one whose
	// Peers call overstays its deadline still ends when that call does.
	answers := make(chan answer, len(others))
	asked := 0
	cctx, cancel := context.WithTimeout(ctx, cfg.PeerTimeout)
	defer cancel()
	for i, m := range others {
		n := OverviewNode{ID: m.ID, HTTPAddr: m.HTTPAddr, State: m.State}
		if m.State != kv.Left && cfg.Peers != nil {
			n.Asked = true
			asked++
			go func() {
				t0 := time.Now()
				b, err := cfg.Peers.NodeOverview(cctx, m.HTTPAddr)
				if err == nil && !json.Valid(b) {
					err = errors.New("answer is not JSON")
				}
				answers <- answer{i, b, err, time.Since(t0)}
			}()
		}
		ov.Nodes = append(ov.Nodes, n)
	}
	for got := 0; got < asked; got++ {
		select {
		case a := <-answers:
			n := &ov.Nodes[a.i+1]
			n.Seconds = a.took.Seconds()
			switch {
			case errors.Is(a.err, ErrNoOverview):
				n.Unsupported = true
			case a.err != nil:
				n.Error = peerError(cctx, a.err)
			default:
				n.Snapshot = a.body
			}
		case <-cctx.Done():
			// The rest overstayed: they are shown as not answering.
			for i := range ov.Nodes[1:] {
				n := &ov.Nodes[i+1]
				if n.Asked && n.Snapshot == nil && n.Error == "" && !n.Unsupported {
					n.Error = fmt.Sprintf("no answer within %s", cfg.PeerTimeout)
					n.Seconds = cfg.PeerTimeout.Seconds()
				}
			}
			got = asked
		}
	}
	ov.Time = time.Now()
	ov.GatherSeconds = time.Since(start).Seconds()
	return ov
}

// peerError words why a peer did not answer.
func peerError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return "no answer in time: " + err.Error()
		}
	}
	return err.Error()
}

// nodeSnapshot is this node's own account of itself.
func (s *Server) nodeSnapshot() NodeSnapshot {
	ns := NodeSnapshot{
		ID:      s.cfg.NodeID,
		Version: s.cfg.Status.Version,
		Time:    time.Now(),
		Started: s.started,
		Health:  s.ops.Health(),
		LSM:     s.ops.LSM(),
		Metrics: map[string]float64{},
	}
	if ns.Health == nil {
		ns.Health = []kv.Degraded{}
	}
	if s.cluster != nil {
		st := s.cluster.ClusterStatus()
		ns.Cluster = &st
	} else {
		ns.Members = s.ops.Members()
	}
	mfs, err := s.cfg.Registry.Gather()
	if err != nil {
		// Gather returns what it could alongside the error.
		ns.Errors = append(ns.Errors, "metrics: "+err.Error())
	}
	for _, mf := range mfs {
		name := mf.GetName()
		switch {
		case name == "ringkv_requests_total":
			for _, m := range mf.GetMetric() {
				ns.Requests = append(ns.Requests, requestCount{
					Op:    labelValue(m.GetLabel(), "op"),
					Code:  labelValue(m.GetLabel(), "code"),
					Count: uint64(m.GetCounter().GetValue()),
				})
			}
		case slices.Contains(overviewMetrics, name):
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			}
			ns.Metrics[name] = v
		}
	}
	slices.SortFunc(ns.Requests, func(a, b requestCount) int {
		if c := strings.Compare(a.Op, b.Op); c != 0 {
			return c
		}
		x, _ := strconv.Atoi(a.Code)
		y, _ := strconv.Atoi(b.Code)
		return x - y
	})
	if ns.Requests == nil {
		ns.Requests = []requestCount{}
	}
	if h := s.cfg.Status.History; h != nil {
		w := h.Window(s.cfg.Status.HistorySeconds)
		ns.History = &w
	}
	return ns
}

// requestCount is one (op, code) total of ringkv_requests_total.
type requestCount struct {
	Op    string `json:"op"`
	Code  string `json:"code"`
	Count uint64 `json:"count"`
}
