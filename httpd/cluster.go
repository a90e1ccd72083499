package httpd

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// Cluster and internode endpoints:
//
//	GET  /v1/cluster             members, states, replicas, hints (Cluster.ClusterStatus)
//	GET  /v1/ring?key=K          the owners of K, primary first
//	POST /v1/cluster/remove?id=ID  take a dead node out of the ring
//	POST /v1/cluster/leave       start this node's graceful leave (202)
//
// The internode endpoints under /internal/ are the internode protocol's
// (Config.Internode, peer/transport), mounted by route.go.

func (s *Server) needCluster(ctx *fasthttp.RequestCtx) bool {
	if s.cluster == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node does not run clustering")
		return false
	}
	return true
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, op string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeStoreError(ctx, op, err)
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(b, '\n'))
}

// clusterStatus serves GET /v1/cluster.
func (s *Server) clusterStatus(ctx *fasthttp.RequestCtx) {
	if onlyGet(ctx) && s.needCluster(ctx) {
		s.writeJSON(ctx, "cluster", s.cluster.ClusterStatus())
	}
}

// ringOwners serves GET /v1/ring?key=K.
func (s *Server) ringOwners(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) || !s.needCluster(ctx) {
		return
	}
	key := ctx.QueryArgs().Peek("key")
	if len(key) == 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "missing key")
		return
	}
	if len(key) > s.cfg.MaxKeySize {
		writeError(ctx, fasthttp.StatusBadRequest, "key too long")
		return
	}
	o, err := s.cluster.Owners(key)
	if err != nil {
		s.writeClusterError(ctx, "ring", err)
		return
	}
	s.writeJSON(ctx, "ring", o)
}

// clusterRemove serves POST /v1/cluster/remove?id=ID.
func (s *Server) clusterRemove(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	if !s.needCluster(ctx) {
		return
	}
	id := string(ctx.QueryArgs().Peek("id"))
	if id == "" {
		writeError(ctx, fasthttp.StatusBadRequest, "missing id")
		return
	}
	if err := s.cluster.RemoveNode(id); err != nil {
		s.writeClusterError(ctx, "cluster_remove", err)
		return
	}
	s.writeJSON(ctx, "cluster_remove", map[string]string{"status": "removed", "id": id})
}

// clusterLeave serves POST /v1/cluster/leave: the node takes itself out of
// the ring and hands its ranges over in the background; 202 at once, and
// GET /v1/cluster shows the progress ("leave").
func (s *Server) clusterLeave(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	if !s.needCluster(ctx) {
		return
	}
	if err := s.cluster.StartLeave(); err != nil {
		s.writeClusterError(ctx, "cluster_leave", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(append([]byte(`{"status":"leaving","node":`), appendJSONString(nil, s.cfg.NodeID)...), "}\n"...))
}

// writeClusterError maps errors of cluster changes to statuses.
func (s *Server) writeClusterError(ctx *fasthttp.RequestCtx, op string, err error) {
	switch {
	case errors.Is(err, kv.ErrUnknownMember):
		writeError(ctx, fasthttp.StatusNotFound, err.Error())
	case errors.Is(err, kv.ErrMemberAlive), errors.Is(err, kv.ErrOnlyMember):
		writeError(ctx, fasthttp.StatusConflict, err.Error())
	case errors.Is(err, kv.ErrNoMembership), errors.Is(err, kv.ErrInvalidKey):
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
	default:
		s.writeStoreError(ctx, op, err)
	}
}

// normalizeAddr accepts go-kvstore's "http://host:port" as well as host:port.
func normalizeAddr(a string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(a) > len(p) && a[:len(p)] == p {
			a = a[len(p):]
		}
	}
	for len(a) > 0 && a[len(a)-1] == '/' {
		a = a[:len(a)-1]
	}
	return a
}
