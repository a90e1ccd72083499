package httpd

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
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
	if !s.admit(ctx, o, path) {
		return
	}

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
		// NB: pprofhandler matches the decoded, normalized Path(), so
		// the scrubbed cmdline must catch every spelling of it too.
		if string(ctx.Path()) == pprofPrefix+"cmdline" {
			s.pprofCmdline(ctx)
		} else {
			pprofhandler.PprofHandler(ctx)
		}
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
	case opOverview:
		s.overview(ctx)
	case opRing:
		s.ringOwners(ctx)
	case opClusterRemove:
		s.clusterRemove(ctx)
	case opClusterLeave:
		s.clusterLeave(ctx)
	case opInternalHello:
		s.hello(ctx)
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
	case "/v1/overview":
		return opOverview
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
	case "/internal/hello":
		return opInternalHello
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

// need is the role an operation requires when Config.Auth is set, and
// whether it acts on a key (so that a grant's key prefix applies).
// RoleNone means open to anyone: /healthz (load balancers), the internode
// routes (authenticated by the cluster credential, not by client roles),
// /internal/hello (a membership proof anyone may ask for), and 404s.
// GET /v1/cluster needs read, or the internode credential (peerCall):
// peers read it of each other.
func (s *Server) need(o op) (need Role, keyed bool) {
	switch o {
	case opGet, opHead, opKV, opScan, opKVStoreGet, opKVStore:
		return RoleRead, true
	case opLSM:
		// The LSM report is in the status page's data: open with it.
		if s.cfg.StatusOpen {
			return RoleNone, false
		}
		return RoleRead, false
	case opListNodes, opCluster, opRing:
		// Topology, which the CLI's cluster commands read.
		return RoleRead, false
	case opPut, opDelete, opKVStorePut, opKVStoreDelete:
		return RoleReadWrite, true
	case opMetrics:
		if s.cfg.MetricsOpen {
			return RoleNone, false
		}
		return RoleMetrics, false
	case opStatus, opOverview:
		if s.cfg.StatusOpen {
			return RoleNone, false
		}
		return RoleAdmin, false
	case opPprof, opCompact, opBackup, opClusterRemove, opClusterLeave, opAddNode:
		return RoleAdmin, false
	}
	return RoleNone, false
}

// adminAction reports the operations every request of which is logged
// with who asked, whether it was let through or not.
func adminAction(o op) bool {
	switch o {
	case opPprof, opCompact, opBackup, opClusterRemove, opClusterLeave, opAddNode:
		return true
	}
	return false
}

// nonSimplePost reports the admin POSTs that must come as requests a
// browser cannot send cross-origin without a CORS preflight (which
// ringkv never grants): with RequestHeader or a JSON Content-Type. An
// <img> or a <form> on any web page can then not fire them at a node on
// the visitor's network.
func nonSimplePost(o op) bool {
	switch o {
	case opCompact, opClusterRemove, opClusterLeave, opAddNode:
		return true
	}
	return false
}

// RequestHeader marks a request as sent by a program, not by a browser
// form: admin POSTs need it (value 1) or Content-Type: application/json.
const RequestHeader = "X-Ringkv-Request"

var (
	hdrOrigin      = []byte("Origin")
	hdrRequest     = []byte(RequestHeader)
	hdrWWWAuth     = []byte("WWW-Authenticate")
	wwwAuthMissing = []byte(`Bearer realm="ringkv"`)
	wwwAuthInvalid = []byte(`Bearer realm="ringkv", error="invalid_token"`)
)

const (
	anonymousNoAuth = "anonymous (no --auth-file)"
	anonymousAuth   = "anonymous"
)

// admit decides whether the request may run, answering it (401, 403) if
// not. Order: a cross-origin state change is refused whoever sends it;
// then the credential (401 without a valid one); then the role and key
// prefix (403); then the non-simple form of admin POSTs (403). With
// Config.Auth nil only the cross-origin checks apply. It costs a GET
// nothing but a switch when auth is off.
func (s *Server) admit(ctx *fasthttp.RequestCtx, o op, path []byte) bool {
	changes := !ctx.IsGet() && !ctx.IsHead()
	if changes {
		if origin := ctx.Request.Header.PeekBytes(hdrOrigin); origin != nil && !sameOrigin(origin, ctx.Host()) {
			s.refuseAdmin(ctx, o, "", fasthttp.StatusForbidden, "cross-origin request refused: Origin "+strconv.Quote(clipString(string(origin), 100))+" does not match Host")
			return false
		}
	}
	who := anonymousNoAuth
	if a := s.cfg.Auth; a != nil {
		need, keyed := s.need(o)
		if (o == opCluster || o == opOverview) && s.peerCall(ctx) {
			// A peer's read of its view (anti-entropy, a leave's
			// handover) or of its snapshot (the status page), with the
			// internode credential.
			need, who = RoleNone, "peer "+strconv.Quote(clipString(string(ctx.Request.Header.Peek(NodeHeader)), 100))
		}
		if need != RoleNone {
			id, ok := a.identify(ctx)
			if !ok {
				ctx.Response.Header.SetCanonical(hdrWWWAuth, wwwAuthInvalid)
				s.refuseAdmin(ctx, o, anonymousAuth, fasthttp.StatusUnauthorized, "invalid credential: want Authorization: Bearer TOKEN with a token of the auth file")
				return false
			}
			if id == nil {
				ctx.Response.Header.SetCanonical(hdrWWWAuth, wwwAuthMissing)
				s.refuseAdmin(ctx, o, anonymousAuth, fasthttp.StatusUnauthorized, "credential required: send Authorization: Bearer TOKEN")
				return false
			}
			var key []byte
			if keyed && id.restricted {
				key = s.requestedKey(ctx, o, path)
			}
			if !id.permits(need, key, keyed) {
				msg := "forbidden: this operation needs the " + need.String() + " role"
				if keyed && id.restricted {
					msg += " on a key (or scan prefix) inside the credential's prefix"
				}
				s.refuseAdmin(ctx, o, id.who, fasthttp.StatusForbidden, msg)
				return false
			}
			who = id.who
		} else if adminAction(o) {
			who = anonymousAuth
		}
	}
	if changes && ctx.IsPost() && nonSimplePost(o) && !nonSimple(ctx) {
		s.refuseAdmin(ctx, o, who, fasthttp.StatusForbidden, "admin POST needs the header "+RequestHeader+": 1 or Content-Type: application/json (so that a web page cannot send it)")
		return false
	}
	if adminAction(o) {
		s.lg.Info("admin request", "op", o.String(), "method", string(ctx.Method()), "uri", clipString(string(ctx.RequestURI()), 200), "who", who, "remote", ctx.RemoteIP().String())
	}
	return true
}

// peerCall reports whether the request carries the internode credential,
// by /internal/'s rules (authInternal): the signature of a cluster secret,
// and with Config.RequirePeerCert a verified certificate naming the node.
// Where the cluster has neither, /internal/ is open to anyone, and so is
// what peers read here: true.
func (s *Server) peerCall(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	mtls, secret := s.cfg.RequirePeerCert, s.cfg.Secrets.Enabled()
	if !mtls && !secret {
		return true
	}
	node := h.Peek(NodeHeader)
	if len(node) == 0 {
		return false
	}
	if mtls {
		cs := ctx.TLSConnectionState()
		if cs == nil || len(cs.PeerCertificates) == 0 || !certNames(cs.PeerCertificates[0], string(node)) {
			return false
		}
	}
	if secret {
		err := verifySignature(s.cfg.Secrets.All(), h.Method(), h.RequestURI(), node, h.Peek(TimeHeader), h.Peek(SignatureHeader),
			ctx.PostBody(), time.Now(), s.cfg.SignatureWindow)
		if err != nil {
			return false
		}
	}
	return true
}

// refuseAdmin answers a refused request, logging it if it was an admin
// action.
func (s *Server) refuseAdmin(ctx *fasthttp.RequestCtx, o op, who string, code int, msg string) {
	if adminAction(o) {
		if who == "" {
			who = anonymousAuth
		}
		s.lg.Warn("admin request refused", "op", o.String(), "method", string(ctx.Method()), "uri", clipString(string(ctx.RequestURI()), 200), "who", who, "remote", ctx.RemoteIP().String(), "status", code, "reason", msg)
	}
	writeError(ctx, code, msg)
}

// requestedKey is the key (or, for a scan, the prefix) a keyed operation
// acts on, decoded exactly as its route decodes it; nil if it has none
// or it does not decode (a prefix-restricted credential is then refused).
func (s *Server) requestedKey(ctx *fasthttp.RequestCtx, o op, path []byte) []byte {
	switch o {
	case opGet, opHead, opPut, opDelete, opKV:
		raw := path[len(kvPrefix):]
		if bytes.IndexByte(raw, '%') < 0 {
			return raw
		}
		if len(raw) > 3*s.cfg.MaxKeySize {
			return nil
		}
		k, err := percentDecode(nil, raw)
		if err != nil {
			return nil
		}
		return k
	case opScan:
		return ctx.QueryArgs().Peek("prefix")
	case opKVStoreGet, opKVStoreDelete, opKVStore:
		return ctx.QueryArgs().Peek("key")
	case opKVStorePut:
		key, _, msg := kvstoreBody(ctx.PostBody())
		if msg != "" {
			return nil
		}
		return []byte(key)
	}
	return nil
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to (its Host header): scheme http or https, default ports
// equal to none. "null" (a sandboxed or file: page) is never the same.
func sameOrigin(origin, host []byte) bool {
	o := string(origin)
	var defPort string
	switch {
	case strings.HasPrefix(o, "http://"):
		o, defPort = o[len("http://"):], ":80"
	case strings.HasPrefix(o, "https://"):
		o, defPort = o[len("https://"):], ":443"
	default:
		return false
	}
	if o == "" || strings.ContainsAny(o, "/?#@") {
		return false
	}
	h := string(host)
	return strings.EqualFold(strings.TrimSuffix(o, defPort), strings.TrimSuffix(h, defPort))
}

// nonSimple reports whether a request carries RequestHeader or a JSON
// Content-Type, either of which makes a browser ask (by a preflight)
// before sending it cross-origin.
func nonSimple(ctx *fasthttp.RequestCtx) bool {
	if len(ctx.Request.Header.PeekBytes(hdrRequest)) > 0 {
		return true
	}
	ct, _, _ := strings.Cut(string(ctx.Request.Header.ContentType()), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}
