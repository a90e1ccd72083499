package httpd

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Degraded is what the Ops given to New may also implement: the reasons
// the node serves in a degraded state (a damaged file, say), none when
// healthy.
type Degraded interface {
	Degraded() []string
}

// healthz serves GET /healthz: 200 {"status":"ok","node":ID} while the node
// serves, 503 from the moment Shutdown begins. A node that serves but is
// degraded (Degraded) answers 200 {"status":"degraded","node":ID,
// "reason":...}: it still coordinates every request and routes around
// what it cannot serve itself, so a probe must not take it out of service.
func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	if s.closing.Load() {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	if d, ok := s.ops.(Degraded); ok {
		if reasons := d.Degraded(); len(reasons) > 0 {
			b := appendJSONString([]byte(`{"status":"degraded","node":`), s.cfg.NodeID)
			b = append(b, `,"reason":`...)
			b = appendJSONString(b, strings.Join(reasons, "; "))
			ctx.SetBody(append(b, "}\n"...))
			return
		}
	}
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
