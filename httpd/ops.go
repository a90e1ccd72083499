package httpd

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
)

// Readiness is what an Ops may add to say the node is not ready to serve
// yet (joining its cluster): GET /healthz then answers 503
// {"status":"not ready",...}. peer.Node does not; cmd/ringkv wraps it.
type Readiness interface {
	// NotReady returns the reasons the node is not ready yet, none when
	// it is. It must be cheap: no I/O.
	NotReady() []peer.Degraded
}

// healthz serves GET /healthz, the readiness probe: 200
// {"status":"ok","node":ID} while the node serves. While the Ops says it is
// not ready (Readiness: still joining) it answers 503 {"status":"not
// ready","reason":R,"node":ID,"reasons":[...]}, R the first reason's.
// While Ops.Health gives reasons it answers {"status":"degraded",...} in
// the same shape: 503 when one of them refuses writes (a full disk, a
// clock off from its peers), so a load balancer sends writes elsewhere
// while reads may still be served; 200 otherwise (a damaged file whose
// span this node routes around: a probe must not take it out of service
// and lose the repair under way). 503 from the moment Shutdown begins.
func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	if s.closing.Load() {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	var h []peer.Degraded
	if r, ok := s.ops.(Readiness); ok {
		h = r.NotReady()
	}
	status, unready := "degraded", len(h) > 0
	if unready {
		status = "not ready"
	}
	h = append(h, s.ops.Health()...)
	if len(h) == 0 {
		ctx.SetBody(s.healthOK)
		return
	}
	b, err := json.Marshal(struct {
		Status  string          `json:"status"`
		Reason  string          `json:"reason"`
		Node    string          `json:"node"`
		Reasons []peer.Degraded `json:"reasons"`
	}{status, h[0].Reason, s.cfg.NodeID, h})
	if err != nil {
		s.writeStoreError(ctx, "healthz", err)
		return
	}
	if unready || slices.ContainsFunc(h, func(d peer.Degraded) bool { return d.RefusesWrites }) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBody(append(b, '\n'))
}

// livez serves GET /livez, the liveness probe: 200 {"status":"ok",
// "node":ID} whenever the server answers at all, shutting down included.
// It reads nothing of the node (no storage, no lock a compaction or a
// stall holds), so a node busy with a long compaction is not killed.
func (s *Server) livez(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(s.healthOK)
}

// lsm serves GET /v1/lsm: the JSON of Ops.LSM.
func (s *Server) lsm(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	b, err := json.Marshal(s.ops.LSM())
	if err != nil {
		s.writeStoreError(ctx, "lsm", err)
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(b, '\n'))
}

// compact serves POST /v1/admin/compact: a manual compaction of the whole
// keyspace, answered when it is done with {"status":"ok","duration":D}.
func (s *Server) compact(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	start := time.Now()
	if err := s.ops.Compact(s.storeCtx); err != nil {
		s.writeStoreError(ctx, "compact", err)
		return
	}
	b := append([]byte(`{"status":"ok","duration":`), appendJSONString(nil, roundDuration(time.Since(start)).String())...)
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(b, "}\n"...))
}

// roundDuration keeps three or so significant digits: "1.234s", "12.3ms".
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d
}
