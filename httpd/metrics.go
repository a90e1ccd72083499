package httpd

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// op names what a request did, for the op label of the request metrics.
// Every request is classified before it runs, so a panicking handler is
// still counted under its op.
type op uint8

const (
	opGet            op = iota // GET /v1/kv/{key}
	opHead                     // HEAD /v1/kv/{key}
	opPut                      // PUT /v1/kv/{key}
	opDelete                   // DELETE /v1/kv/{key}
	opKV                       // /v1/kv/{key} with another method
	opScan                     // /v1/kv
	opBatch                    // /v1/batch
	opKVStoreGet               // GET /kvstore
	opKVStorePut               // POST or PUT /kvstore
	opKVStoreDelete            // DELETE /kvstore
	opKVStore                  // /kvstore with another method
	opListNodes                // /list-nodes
	opAddNode                  // /add-node
	opHealthz                  // /healthz
	opLivez                    // /livez
	opMetrics                  // /metrics
	opPprof                    // /debug/pprof/...
	opLSM                      // /v1/lsm
	opCompact                  // /v1/admin/compact
	opBackup                   // GET /v1/admin/backup
	opStatus                   // /
	opCluster                  // GET /v1/cluster
	opOverview                 // GET /v1/overview
	opRing                     // GET /v1/ring
	opClusterRemove            // POST /v1/cluster/remove
	opClusterLeave             // POST /v1/cluster/leave
	opInternalApply            // POST /internal/apply
	opInternalRead             // POST /internal/read
	opInternalScan             // POST /internal/scan
	opInternalGossip           // GET /internal/gossip
	opInternalSpan             // GET /internal/span
	opInternalMerkle           // GET /internal/merkle
	opInternalPaxos            // POST /internal/paxos
	opInternalHello            // GET /internal/hello
	opUnknown                  // any other path
	opInvalid                  // a request fasthttp could not parse
	numOps
)

var opNames = [numOps]string{
	opGet:            "get",
	opHead:           "head",
	opPut:            "put",
	opDelete:         "delete",
	opKV:             "kv",
	opScan:           "scan",
	opBatch:          "batch",
	opKVStoreGet:     "kvstore_get",
	opKVStorePut:     "kvstore_put",
	opKVStoreDelete:  "kvstore_delete",
	opKVStore:        "kvstore",
	opListNodes:      "list_nodes",
	opAddNode:        "add_node",
	opHealthz:        "healthz",
	opLivez:          "livez",
	opMetrics:        "metrics",
	opPprof:          "pprof",
	opLSM:            "lsm",
	opCompact:        "compact",
	opBackup:         "backup",
	opStatus:         "status",
	opCluster:        "cluster",
	opOverview:       "overview",
	opRing:           "ring",
	opClusterRemove:  "cluster_remove",
	opClusterLeave:   "cluster_leave",
	opInternalApply:  "internal_apply",
	opInternalRead:   "internal_read",
	opInternalScan:   "internal_scan",
	opInternalGossip: "internal_gossip",
	opInternalSpan:   "internal_span",
	opInternalMerkle: "internal_merkle",
	opInternalPaxos:  "internal_paxos",
	opInternalHello:  "internal_hello",
	opUnknown:        "unknown",
	opInvalid:        "invalid",
}

func (o op) String() string { return opNames[o] }

// codeSlot numbers the status codes httpd answers, so that their counters
// can be cached in an array; -1 for any other code.
func codeSlot(code int) int {
	switch code {
	case 200:
		return 0
	case 201:
		return 1
	case 204:
		return 2
	case 400:
		return 3
	case 404:
		return 4
	case 405:
		return 5
	case 408:
		return 6
	case 413:
		return 7
	case 431:
		return 8
	case 500:
		return 9
	case 501:
		return 10
	case 503:
		return 11
	case 504:
		return 12
	}
	return -1
}

const numCodeSlots = 13

// metrics holds the request metrics of one Server.
//
// Looking a child up by label values hashes the labels and takes a lock;
// on the hot path that would cost more than the handler itself, so each
// (op, code) child is resolved once, on first use, and cached. Resolving
// lazily, rather than all at New, keeps /metrics free of series that never
// happen (healthz answering 413, a histogram of 18 lines per unused op).
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dur      [numOps]atomic.Pointer[observerRef]
	count    [numOps][numCodeSlots]atomic.Pointer[counterRef]
}

type (
	counterRef  struct{ c prometheus.Counter }
	observerRef struct{ o prometheus.Observer }
)

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringkv_requests_total",
			Help: "HTTP requests served, by operation and status code.",
		}, []string{"op", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ringkv_request_duration_seconds",
			Help: "Time from routing an HTTP request to its response being ready, by operation.",
			// 100µs (a cached read) to 10s (a compaction, a timed-out
			// quorum) in 16 steps of about 2.15x.
			Buckets: prometheus.ExponentialBucketsRange(100e-6, 10, 16),
		}, []string{"op"}),
	}
	if err := reg.Register(m.requests); err != nil {
		return nil, fmt.Errorf("cannot register ringkv_requests_total: %w", err)
	}
	if err := reg.Register(m.duration); err != nil {
		reg.Unregister(m.requests)
		return nil, fmt.Errorf("cannot register ringkv_request_duration_seconds: %w", err)
	}
	return m, nil
}

// observe records one request of op o answered with code after d.
func (m *metrics) observe(o op, code int, d time.Duration) {
	m.observer(o).Observe(d.Seconds())
	m.counter(o, code).Inc()
}

func (m *metrics) observer(o op) prometheus.Observer {
	if r := m.dur[o].Load(); r != nil {
		return r.o
	}
	// Racing first uses resolve the same child; either store is right.
	r := &observerRef{o: m.duration.WithLabelValues(opNames[o])}
	m.dur[o].Store(r)
	return r.o
}

func (m *metrics) counter(o op, code int) prometheus.Counter {
	i := codeSlot(code)
	if i < 0 {
		return m.requests.WithLabelValues(opNames[o], strconv.Itoa(code))
	}
	if r := m.count[o][i].Load(); r != nil {
		return r.c
	}
	// Racing first uses resolve the same child; either store is right.
	r := &counterRef{c: m.requests.WithLabelValues(opNames[o], strconv.Itoa(code))}
	m.count[o][i].Store(r)
	return r.c
}
