package httpd

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// healthz serves GET /healthz: 200 {"status":"ok","node":ID} while the node
// serves. While Ops.Health gives reasons it answers {"status":"degraded",
// "reason":R,"node":ID,"reasons":[...]} (R is the first one's): 503 when
// one of them refuses writes (a full disk, a clock off from its peers), so
// a load balancer sends writes elsewhere while reads may still be served;
// 200 otherwise (a damaged file whose span this node routes around: a
// probe must not take it out of service and lose the repair under way).
// 503 from the moment Shutdown begins.
func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	if s.closing.Load() {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	h := s.ops.Health()
	if len(h) == 0 {
		ctx.SetBody(s.healthOK)
		return
	}
	b, err := json.Marshal(struct {
		Status  string        `json:"status"`
		Reason  string        `json:"reason"`
		Node    string        `json:"node"`
		Reasons []kv.Degraded `json:"reasons"`
	}{"degraded", h[0].Reason, s.cfg.NodeID, h})
	if err != nil {
		s.writeStoreError(ctx, "healthz", err)
		return
	}
	if slices.ContainsFunc(h, func(d kv.Degraded) bool { return d.RefusesWrites }) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBody(append(b, '\n'))
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
