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

// The routing table: every endpoint of the node, by path, with the op
// (the metrics' label, and what auth decides on) of each method, the
// handler, the role a request needs when Config.Auth is set, and the
// listeners that serve it. Handlers check the method themselves and
// answer 405 with the route's Allow header, as they always have; the
// table says where a request goes and what it is counted as, once.
//
// Routing looks at the ORIGINAL path (URI().PathOriginal()), not Path():
// fasthttp's Path() percent-decodes and resolves "..", "//" and "/./",
// which would change keys (a key may be "a/../b") and make "/v1/kv/x/.."
// reach another route.

// route is one path of the routing table.
type route struct {
	// methods are the ops of the methods a route tells apart; any other
	// method is other's. need is the role each requires.
	methods []methodOp
	other   methodOp
	// keyed: the op acts on a key, so a grant's key prefix applies
	// (requestedKey).
	keyed bool
	// admin: every request is logged with who asked, whether it was let
	// through or not. nonSimple: a POST must come as a request a browser
	// cannot send cross-origin without a CORS preflight (which ringkv
	// never grants): with RequestHeader or a JSON Content-Type. An <img>
	// or a <form> on any web page can then not fire it at a node on the
	// visitor's network.
	admin, nonSimple bool
	// on is the listeners that serve it.
	on listeners
	// serve answers the request; path is the original path.
	serve func(s *Server, ctx *fasthttp.RequestCtx, o op, path []byte)
}

// methodOp is an endpoint: a method of a route ("" for any), its op, and
// the role it needs.
type methodOp struct {
	method string
	op     op
	need   Role
}

// listeners is a set of a Server's listeners.
type listeners uint8

const (
	// clientPort is Serve's listener.
	clientPort listeners = 1 << iota
	// peerPort is ServePeer's listener (Config.SeparatePeer): the
	// internode routes, and what peers read of each other.
	peerPort
	bothPorts = clientPort | peerPort
)

// one is the endpoint of every method of a route with a single op.
func one(o op, need Role) methodOp { return methodOp{op: o, need: need} }

// Placeholder roles of the routes whose openness is configured: Server.need
// resolves them by Config.StatusOpen and Config.MetricsOpen.
const (
	roleStatus  Role = 255 - iota // RoleAdmin, or none with StatusOpen
	roleLSM                       // RoleRead, or none with StatusOpen
	roleMetrics                   // RoleMetrics, or none with MetricsOpen
)

// Prefix routes (the rest of the path is theirs).
const (
	kvPrefix       = "/v1/kv/"
	pprofPrefix    = "/debug/pprof/"
	internalPrefix = "/internal/"
)

// routeTable is the routing table by exact path; kvRoute, pprofRoute and
// internalRoute serve their prefixes. RoleNone means open to anyone:
// /healthz and /livez (load balancers, Kubernetes probes), the internode routes (authenticated by the
// cluster credential, not by client roles), /internal/hello (a
// membership proof anyone may ask for). GET /v1/cluster needs read, or
// the internode credential (peerCall): peers read it of each other.
var routeTable = map[string]*route{
	"/v1/kv": {other: one(opScan, RoleRead), keyed: true, on: clientPort,
		serve: func(s *Server, ctx *fasthttp.RequestCtx, _ op, _ []byte) { s.scan(ctx) }},
	// A batch needs read; the handler checks, once it has read the body,
	// the role (readwrite if an item writes) and key prefix of every item
	// (admitBatch): the route is not keyed, having no one key.
	"/v1/batch": {other: one(opBatch, RoleRead), on: clientPort, serve: handler((*Server).batch)},
	"/kvstore": {
		methods: []methodOp{
			{fasthttp.MethodGet, opKVStoreGet, RoleRead},
			{fasthttp.MethodPost, opKVStorePut, RoleReadWrite},
			{fasthttp.MethodPut, opKVStorePut, RoleReadWrite},
			{fasthttp.MethodDelete, opKVStoreDelete, RoleReadWrite},
		},
		other: one(opKVStore, RoleRead), keyed: true, on: clientPort,
		serve: func(s *Server, ctx *fasthttp.RequestCtx, o op, _ []byte) {
			switch o {
			case opKVStoreGet:
				s.kvstoreGet(ctx)
			case opKVStorePut:
				s.kvstorePut(ctx)
			case opKVStoreDelete:
				s.kvstoreDelete(ctx)
			default:
				methodNotAllowed(ctx, "GET, POST, PUT, DELETE")
			}
		}},
	// Topology, which the CLI's cluster commands read.
	"/list-nodes": {other: one(opListNodes, RoleRead), on: clientPort, serve: handler((*Server).listNodes)},
	"/add-node":   {other: one(opAddNode, RoleAdmin), admin: true, nonSimple: true, on: clientPort, serve: handler((*Server).addNode)},
	"/healthz":    {other: one(opHealthz, RoleNone), on: bothPorts, serve: handler((*Server).healthz)},
	"/livez":      {other: one(opLivez, RoleNone), on: bothPorts, serve: handler((*Server).livez)},
	"/metrics": {other: one(opMetrics, roleMetrics), on: clientPort, serve: func(s *Server, ctx *fasthttp.RequestCtx, _ op, _ []byte) {
		if onlyGet(ctx) {
			s.metricsHandler(ctx)
		}
	}},
	// The status page refreshes its LSM table from /v1/lsm: open with it.
	"/v1/lsm":           {other: one(opLSM, roleLSM), on: clientPort, serve: handler((*Server).lsm)},
	"/v1/admin/compact": {other: one(opCompact, RoleAdmin), admin: true, nonSimple: true, on: clientPort, serve: handler((*Server).compact)},
	"/v1/admin/backup":  {other: one(opBackup, RoleAdmin), admin: true, on: clientPort, serve: handler((*Server).backup)},
	"/":                 {other: one(opStatus, roleStatus), on: clientPort, serve: handler((*Server).status)},
	"/v1/cluster":       {other: one(opCluster, RoleRead), on: bothPorts, serve: handler((*Server).clusterStatus)},
	// The status page's data; peers read each other's node scope.
	"/v1/overview":       {other: one(opOverview, roleStatus), on: bothPorts, serve: handler((*Server).overview)},
	"/v1/ring":           {other: one(opRing, RoleRead), on: clientPort, serve: handler((*Server).ringOwners)},
	"/v1/cluster/remove": {other: one(opClusterRemove, RoleAdmin), admin: true, nonSimple: true, on: clientPort, serve: handler((*Server).clusterRemove)},
	"/v1/cluster/leave":  {other: one(opClusterLeave, RoleAdmin), admin: true, nonSimple: true, on: clientPort, serve: handler((*Server).clusterLeave)},
	"/internal/hello":    {other: one(opInternalHello, RoleNone), on: peerPort, serve: handler((*Server).hello)},
	// The internode protocol, mounted once: its one handler serves these
	// paths (peer/transport), listed here for their ops.
	"/internal/apply":  internodeRoute(opInternalApply),
	"/internal/read":   internodeRoute(opInternalRead),
	"/internal/scan":   internodeRoute(opInternalScan),
	"/internal/gossip": internodeRoute(opInternalGossip),
	"/internal/span":   internodeRoute(opInternalSpan),
	"/internal/merkle": internodeRoute(opInternalMerkle),
	"/internal/paxos":  internodeRoute(opInternalPaxos),
}

var (
	// kvRoute serves /v1/kv/{key}.
	kvRoute = &route{
		methods: []methodOp{
			{fasthttp.MethodGet, opGet, RoleRead},
			{fasthttp.MethodHead, opHead, RoleRead},
			{fasthttp.MethodPut, opPut, RoleReadWrite},
			{fasthttp.MethodDelete, opDelete, RoleReadWrite},
		},
		other: one(opKV, RoleRead), keyed: true, on: clientPort,
		serve: func(s *Server, ctx *fasthttp.RequestCtx, o op, path []byte) {
			switch key := path[len(kvPrefix):]; o {
			case opGet, opHead:
				s.kvGet(ctx, key)
			case opPut:
				s.kvPut(ctx, key)
			case opDelete:
				s.kvDelete(ctx, key)
			default:
				methodNotAllowed(ctx, "GET, HEAD, PUT, DELETE")
			}
		},
	}
	// pprofRoute serves /debug/pprof/..., with Config.Pprof.
	pprofRoute = &route{other: one(opPprof, RoleAdmin), admin: true, on: clientPort,
		serve: func(s *Server, ctx *fasthttp.RequestCtx, _ op, _ []byte) {
			// NB: pprofhandler matches the decoded, normalized Path(), so
			// the scrubbed cmdline must catch every spelling of it too.
			if string(ctx.Path()) == pprofPrefix+"cmdline" {
				s.pprofCmdline(ctx)
			} else {
				pprofhandler.PprofHandler(ctx)
			}
		}}
	// internalRoute answers the other paths under /internal/.
	internalRoute = &route{other: one(opUnknown, RoleNone), on: peerPort, serve: notFound}
	// unknownRoute answers any other path.
	unknownRoute = &route{other: one(opUnknown, RoleNone), on: clientPort, serve: notFound}
)

// internodeRoute is the route of one path of the internode protocol.
func internodeRoute(o op) *route {
	return &route{other: one(o, RoleNone), on: peerPort, serve: func(s *Server, ctx *fasthttp.RequestCtx, _ op, _ []byte) { s.internode(ctx) }}
}

// handler adapts a handler that needs only the request.
func handler(h func(*Server, *fasthttp.RequestCtx)) func(*Server, *fasthttp.RequestCtx, op, []byte) {
	return func(s *Server, ctx *fasthttp.RequestCtx, _ op, _ []byte) { h(s, ctx) }
}

func notFound(_ *Server, ctx *fasthttp.RequestCtx, _ op, _ []byte) {
	writeError(ctx, fasthttp.StatusNotFound, "no such endpoint")
}

// lookup returns the route of a path and the endpoint of the request's
// method on it.
func (s *Server) lookup(ctx *fasthttp.RequestCtx, path []byte) (*route, *methodOp) {
	r := s.routeOf(path)
	m := string(ctx.Method())
	for i := range r.methods {
		if r.methods[i].method == m {
			return r, &r.methods[i]
		}
	}
	return r, &r.other
}

func (s *Server) routeOf(path []byte) *route {
	// The client API first: it is nearly every request.
	if bytes.HasPrefix(path, []byte(kvPrefix)) {
		return kvRoute
	}
	if r := routeTable[string(path)]; r != nil {
		return r
	}
	switch {
	case bytes.HasPrefix(path, []byte(internalPrefix)):
		return internalRoute
	case s.cfg.Pprof && bytes.HasPrefix(path, []byte(pprofPrefix)):
		return pprofRoute
	}
	return unknownRoute
}

// classify names the operation of a request from its path and method.
func (s *Server) classify(ctx *fasthttp.RequestCtx, path []byte) op {
	_, m := s.lookup(ctx, path)
	return m.op
}

// handlerOn returns the handler of the listeners port: it finds the
// request's route, runs it if port serves it, and records its metrics.
func (s *Server) handlerOn(port listeners) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		// fasthttp reads the clock just before calling the handler;
		// reading it again would cost more than the rest of a GET (see
		// BenchmarkGet).
		start := ctx.Time()
		if start.IsZero() {
			start = time.Now()
		}
		path := ctx.URI().PathOriginal()
		r, m := s.lookup(ctx, path)
		if r.on&port == 0 {
			msg := "no such endpoint"
			if port == peerPort {
				msg = "no such endpoint on the peer listener"
			}
			writeError(ctx, fasthttp.StatusNotFound, msg)
			s.m.observe(opUnknown, fasthttp.StatusNotFound, 0)
			return
		}
		defer s.finish(ctx, m.op, start)
		if !s.admit(ctx, r, m, path) {
			return
		}
		r.serve(s, ctx, m.op, path)
	}
}

// internode serves the internode protocol's paths: the mounted handler
// (Config.Internode) authenticates and answers them.
func (s *Server) internode(ctx *fasthttp.RequestCtx) {
	if s.internodeHandler == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node does not run clustering")
		return
	}
	s.internodeHandler(ctx)
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

// need is the role an endpoint requires when Config.Auth is set, the
// configured openness of the status page, /v1/lsm and /metrics applied.
func (s *Server) need(m *methodOp) Role {
	switch m.need {
	case roleStatus:
		if s.cfg.StatusOpen {
			return RoleNone
		}
		return RoleAdmin
	case roleLSM:
		if s.cfg.StatusOpen {
			return RoleNone
		}
		return RoleRead
	case roleMetrics:
		if s.cfg.MetricsOpen {
			return RoleNone
		}
		return RoleMetrics
	}
	return m.need
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
func (s *Server) admit(ctx *fasthttp.RequestCtx, r *route, m *methodOp, path []byte) bool {
	o := m.op
	changes := !ctx.IsGet() && !ctx.IsHead()
	if changes {
		if origin := ctx.Request.Header.PeekBytes(hdrOrigin); origin != nil && !sameOrigin(origin, ctx.Host()) {
			s.refuseAdmin(ctx, r, o, "", fasthttp.StatusForbidden, "cross-origin request refused: Origin "+strconv.Quote(clipString(string(origin), 100))+" does not match Host")
			return false
		}
	}
	who := anonymousNoAuth
	if a := s.cfg.Auth; a != nil {
		need, keyed := s.need(m), r.keyed
		if o == opCluster || o == opOverview {
			if node, ok := s.peerCall(ctx); ok {
				// A peer's read of its view (anti-entropy, a leave's
				// handover), with the internode credential.
				need, who = RoleNone, "peer "+strconv.Quote(clipString(node, 100))
			}
		}
		if need != RoleNone {
			id, ok := a.identify(ctx)
			if !ok {
				ctx.Response.Header.SetCanonical(hdrWWWAuth, wwwAuthInvalid)
				s.refuseAdmin(ctx, r, o, anonymousAuth, fasthttp.StatusUnauthorized, "invalid credential: want Authorization: Bearer TOKEN with a token of the auth file")
				return false
			}
			if id == nil {
				ctx.Response.Header.SetCanonical(hdrWWWAuth, wwwAuthMissing)
				s.refuseAdmin(ctx, r, o, anonymousAuth, fasthttp.StatusUnauthorized, "credential required: send Authorization: Bearer TOKEN")
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
				s.refuseAdmin(ctx, r, o, id.who, fasthttp.StatusForbidden, msg)
				return false
			}
			who = id.who
		} else if r.admin {
			who = anonymousAuth
		}
	}
	if changes && ctx.IsPost() && r.nonSimple && !nonSimple(ctx) {
		s.refuseAdmin(ctx, r, o, who, fasthttp.StatusForbidden, "admin POST needs the header "+RequestHeader+": 1 or Content-Type: application/json (so that a web page cannot send it)")
		return false
	}
	if r.admin {
		s.lg.Info("admin request", "op", o.String(), "method", string(ctx.Method()), "uri", clipString(string(ctx.RequestURI()), 200), "who", who, "remote", ctx.RemoteIP().String())
	}
	return true
}

// peerCall reports whether the request carries the internode credential,
// by /internal/'s rules (Config.Internode's), and the node it claims to
// come from. Without an Internode, as where the cluster has neither a
// secret nor mutual TLS, /internal/ is open to anyone, and so is what
// peers read here: true.
func (s *Server) peerCall(ctx *fasthttp.RequestCtx) (node string, ok bool) {
	if s.cfg.Internode == nil {
		return "", true
	}
	return s.cfg.Internode.Authentic(ctx)
}

// refuseAdmin answers a refused request, logging it if it was an admin
// action.
func (s *Server) refuseAdmin(ctx *fasthttp.RequestCtx, r *route, o op, who string, code int, msg string) {
	if r.admin {
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
