// Package httpd is ringkv's HTTP front end: a thin fasthttp adapter from
// HTTP requests to the node's Store (the coordinator, peer.Node) and Ops,
// plus metrics, pprof and a status page. It holds no placement and no
// storage logic; statusOf is the one place that maps errors to statuses.
// It mounts the internode protocol (Config.Internode, peer/transport)
// under /internal/ but does not implement it. What it needs of the node
// are interfaces of its own (Store, Ops, Cluster, Internode,
// OverviewPeers) over the types of peer/kv, which cmd/ringkv fills with
// *peer.Node and the transport: httpd imports neither peer nor
// peer/transport, nor the ring or the storage layer. route.go's table is the one
// list of its endpoints: the op of each method, the handler, the role
// auth requires, and the listeners that serve it.
//
// Routes (DESIGN.md, "HTTP API", is the contract):
//
//	GET|HEAD|PUT|DELETE /v1/kv/{key}   the client API; {key} is percent-encoded
//	GET  /v1/kv?prefix=&limit=&after=  a page of a scan (below)
//	POST /v1/batch                     gets, puts and deletes, answered item by item (batch.go)
//	/kvstore, /list-nodes, /add-node   go-kvstore compatibility (kvstore.go)
//	GET  /healthz                      200 while serving, 503 while not ready (Readiness: joining), degraded (Ops.Health) or once Shutdown began
//	GET  /livez                        200 whenever the server answers (liveness: reads nothing of the node)
//	GET  /metrics                      Prometheus text of Config.Registry
//	GET  /debug/pprof/...              when Config.Pprof
//	GET  /v1/lsm                       the JSON of Ops.LSM
//	POST /v1/admin/compact             Ops.Compact
//	GET  /                             the status page (status.go): one embedded file that renders itself
//	GET  /v1/overview                  its data: every member's own snapshot (overview.go)
//	/v1/cluster, /v1/ring, ...         the cluster endpoints (cluster.go)
//	/internal/...                      Config.Internode's handler
//
// Errors are JSON, {"error":"..."}, with their status: 400 for a malformed
// request (bad key escape, key over Config.MaxKeySize, bad consistency= or
// ttl=), 413 for a value over Config.MaxValueSize, 404 for an absent key,
// 405 (with Allow) for a wrong method, 503 when too few replicas answered,
// 504 when the coordinator timed out, 500 otherwise. A rejected write
// writes nothing.
//
// The client API, /v1/kv/{key}: {key} is the rest of the request's
// original path, strictly percent-decoded ("%2F" is a '/' inside the key;
// "..", "//" and "+" are key bytes). consistency=one|quorum|all (default
// quorum) qualifies every method. GET answers the raw value with its
// version in X-Ringkv-Version; PUT takes the body as the value, and ttl=
// (a Go duration) to expire it; PUT and DELETE answer 204.
//
// A scan, GET /v1/kv?prefix=P&limit=N&after=K, answers one page:
//
//	{"items":[{"key":"..","value":"..","version":".."},...],"next":"..."|null}
//
// in token order; limit is 1 to 10000 (default 100), and next is the
// after= of the following page. Keys and values are JSON strings, with any
// invalid UTF-8 replaced by U+FFFD; binary data asks for encoding=base64,
// which makes key, value and next standard base64 and after= base64 too
// (so next passes back unchanged). prefix= is a plain query argument.
//
// Usage:
//
//	reg := prometheus.NewRegistry()
//	srv, err := httpd.New(httpd.Config{Addr: addr, Registry: reg, NodeID: id}, node, ops)
//	if err != nil { ... }
//	go func() { errc <- srv.ListenAndServe() }()
//	<-sigterm
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	_ = srv.Shutdown(ctx) // in-flight requests finish; then stop the node
//
// fasthttp recycles a request's buffers once its handler returns, so
// nothing here keeps the RequestCtx, its path, arguments or body past
// that point, and the Store contract forbids the Store from doing so. The
// GET and PUT paths allocate nothing: the key aliases the request (or a
// pooled buffer when it has escapes) and a read's value is appended
// straight into the response body's buffer.
package httpd
