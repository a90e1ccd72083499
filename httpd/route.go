package httpd

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

const (
	kvPrefix    = "/v1/kv/"
	pprofPrefix = "/debug/pprof/"
)

// serveHTTP is the fasthttp handler: it classifies the request, runs its
// route, and records its metrics.
//
// Routing looks at the ORIGINAL path (URI().PathOriginal()), not Path():
// fasthttp's Path() percent-decodes and resolves "..", "//" and "/./",
// which would change keys (a key may be "a/../b") and make "/v1/kv/x/.."
// reach another route.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	// fasthttp reads the clock just before calling the handler; reading it
	// again would cost more than the rest of a GET (see BenchmarkGet).
	start := ctx.Time()
	if start.IsZero() {
		start = time.Now()
	}
	path := ctx.URI().PathOriginal()
	o := s.classify(ctx, path)
	defer s.finish(ctx, o, start)

	switch o {
	case opGet, opHead:
		s.kvGet(ctx, path[len(kvPrefix):])
	case opPut:
		s.kvPut(ctx, path[len(kvPrefix):])
	case opDelete:
		s.kvDelete(ctx, path[len(kvPrefix):])
	case opKV:
		methodNotAllowed(ctx, "GET, HEAD, PUT, DELETE")
	case opScan:
		s.scan(ctx)
	case opKVStoreGet:
		s.kvstoreGet(ctx)
	case opKVStorePut:
		s.kvstorePut(ctx)
	case opKVStoreDelete:
		s.kvstoreDelete(ctx)
	case opKVStore:
		methodNotAllowed(ctx, "GET, POST, PUT, DELETE")
	case opListNodes:
		s.listNodes(ctx)
	case opAddNode:
		s.addNode(ctx)
	case opHealthz:
		s.healthz(ctx)
	case opMetrics:
		if onlyGet(ctx) {
			s.metricsHandler(ctx)
		}
	case opPprof:
		pprofhandler.PprofHandler(ctx)
	case opLSM:
		s.lsm(ctx)
	case opCompact:
		s.compact(ctx)
	case opBackup:
		s.backup(ctx)
	case opStatus:
		s.status(ctx)
	case opCluster:
		s.clusterStatus(ctx)
	case opRing:
		s.ringOwners(ctx)
	case opClusterRemove:
		s.clusterRemove(ctx)
	case opClusterLeave:
		s.clusterLeave(ctx)
	case opInternalApply, opInternalRead, opInternalScan, opInternalGossip, opInternalSpan, opInternalMerkle:
		s.internal(ctx, o)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint")
	}
}

// classify names the operation of a request from its path and method.
func (s *Server) classify(ctx *fasthttp.RequestCtx, path []byte) op {
	if bytes.HasPrefix(path, []byte(kvPrefix)) {
		switch string(ctx.Method()) {
		case fasthttp.MethodGet:
			return opGet
		case fasthttp.MethodHead:
			return opHead
		case fasthttp.MethodPut:
			return opPut
		case fasthttp.MethodDelete:
			return opDelete
		}
		return opKV
	}
	switch string(path) {
	case "/v1/kv":
		return opScan
	case "/kvstore":
		switch string(ctx.Method()) {
		case fasthttp.MethodGet:
			return opKVStoreGet
		case fasthttp.MethodPost, fasthttp.MethodPut:
			return opKVStorePut
		case fasthttp.MethodDelete:
			return opKVStoreDelete
		}
		return opKVStore
	case "/list-nodes":
		return opListNodes
	case "/add-node":
		return opAddNode
	case "/healthz":
		return opHealthz
	case "/metrics":
		return opMetrics
	case "/v1/lsm":
		return opLSM
	case "/v1/admin/compact":
		return opCompact
	case "/v1/admin/backup":
		return opBackup
	case "/":
		return opStatus
	case "/v1/cluster":
		return opCluster
	case "/v1/ring":
		return opRing
	case "/v1/cluster/remove":
		return opClusterRemove
	case "/v1/cluster/leave":
		return opClusterLeave
	case "/internal/apply":
		return opInternalApply
	case "/internal/read":
		return opInternalRead
	case "/internal/scan":
		return opInternalScan
	case "/internal/gossip":
		return opInternalGossip
	case "/internal/span":
		return opInternalSpan
	case "/internal/merkle":
		return opInternalMerkle
	}
	if s.cfg.Pprof && bytes.HasPrefix(path, []byte(pprofPrefix)) {
		return opPprof
	}
	return opUnknown
}

// finish records the request's metrics. It is deferred, so it also turns a
// panic in a route (a Store bug) into a 500: fasthttp does not recover
// panics, and one would take the whole node down.
func (s *Server) finish(ctx *fasthttp.RequestCtx, o op, start time.Time) {
	if r := recover(); r != nil {
		s.lg.Error("panic serving request", "op", o.String(), "uri", string(ctx.RequestURI()), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		ctx.Response.Header.Del(fasthttp.HeaderContentEncoding)
		writeError(ctx, fasthttp.StatusInternalServerError, "internal error")
	}
	s.m.observe(o, ctx.Response.StatusCode(), time.Since(start))
}

// onlyGet answers 405 and reports false unless the request is a GET or a
// HEAD (which fasthttp answers like the GET, without the body).
func onlyGet(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	methodNotAllowed(ctx, "GET, HEAD")
	return false
}
