package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// The go-kvstore compatibility routes (github.com/shamikhan005/go-kvstore),
// answered the way go-kvstore answers, through the same Store as /v1/kv:
//
//	GET    /kvstore?key=K   200 {"key":"K","value":"V"} + "\n" (go-kvstore's
//	                        json.Encoder output, byte for byte); 404 absent;
//	                        400 without a key
//	POST   /kvstore         body {"key":"K","value":"V"}: 201, empty body, as
//	PUT    /kvstore         go-kvstore; 400 if the body is not that object
//	DELETE /kvstore?key=K   204 (also when absent); 400 without a key
//	other methods           405
//	GET    /list-nodes      "node: ADDR\n" per member (text/plain)
//	POST   /add-node?address=A  join the cluster of the node at A, once it has
//	                        proved it is a member (hello.go); 400 without
//	                        address. GET only with Config.KVStoreAddNodeGet
//
// Where ringkv departs from go-kvstore, on purpose:
//   - errors are JSON {"error":"..."} (go-kvstore sends text/plain), with
//     go-kvstore's messages;
//   - an empty key is 400 (go-kvstore stored it), and keys and values have
//     ringkv's limits (400 for a long key, 413 for a large value);
//   - the body must be exactly one JSON object: go-kvstore ignored bytes
//     after it. Its "key" and "value" members must be JSON strings;
//     other members are ignored, whatever their type (go-kvstore, decoding
//     into map[string]string, rejected non-string ones); member names are
//     matched exactly, as go-kvstore's map did;
//   - consistency= is accepted and validated, as on /v1/kv.
//
// Values go through JSON strings, so they are text: invalid UTF-8 written
// through /v1/kv reads back here with U+FFFD in its place.

// kvstoreRecord is go-kvstore's JSON record. encoding/json, with its HTML
// escaping, renders it exactly as go-kvstore's map[string]string did.
type kvstoreRecord struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (s *Server) kvstoreGet(ctx *fasthttp.RequestCtx) {
	key, ok := s.kvstoreKey(ctx)
	if !ok {
		return
	}
	c, ok := consistencyArg(ctx)
	if !ok {
		return
	}
	val, _, err := s.store.Get(s.storeCtx, nil, key, c)
	if err != nil {
		s.writeStoreError(ctx, "kvstore get", err)
		return
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(kvstoreRecord{Key: string(key), Value: string(val)}); err != nil {
		s.writeStoreError(ctx, "kvstore get", err)
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(b.Bytes())
}

func (s *Server) kvstorePut(ctx *fasthttp.RequestCtx) {
	o, ok := writeOptionsArgs(ctx, false)
	if !ok {
		return
	}
	key, val, msg := kvstoreBody(ctx.PostBody())
	if msg != "" {
		writeError(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if msg := s.checkKey([]byte(key)); msg != "" {
		writeError(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if len(val) > s.cfg.MaxValueSize {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "value larger than "+strconv.Itoa(s.cfg.MaxValueSize)+" bytes")
		return
	}
	if _, err := s.store.Put(s.storeCtx, []byte(key), []byte(val), o); err != nil {
		s.writeStoreError(ctx, "kvstore put", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusCreated)
}

// kvstoreBody reads a POST /kvstore body: one JSON object whose "key" and
// "value" members are strings. The authorization of a prefix-restricted
// credential reads the key with it too, so both see the same key.
// msg says what is wrong with a body that is not that.
func kvstoreBody(body []byte) (key, val, msg string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", "", "invalid request body"
	}
	key, ok1 := jsonStringMember(m, "key")
	val, ok2 := jsonStringMember(m, "value")
	if !ok1 || !ok2 {
		return "", "", "missing key or value in request body"
	}
	return key, val, ""
}

// jsonStringMember returns m[name] if it is a JSON string (not null, not
// a number).
func jsonStringMember(m map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := m[name]
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false
	}
	return v, true
}

func (s *Server) kvstoreDelete(ctx *fasthttp.RequestCtx) {
	key, ok := s.kvstoreKey(ctx)
	if !ok {
		return
	}
	o, ok := writeOptionsArgs(ctx, false)
	if !ok {
		return
	}
	if _, err := s.store.Delete(s.storeCtx, key, o); err != nil {
		s.writeStoreError(ctx, "kvstore delete", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// kvstoreKey returns the key= query argument, answering 400 and reporting
// false if it is missing, empty or too long.
func (s *Server) kvstoreKey(ctx *fasthttp.RequestCtx) ([]byte, bool) {
	key := ctx.QueryArgs().Peek("key")
	if len(key) == 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "missing key in query")
		return nil, false
	}
	if msg := s.checkKey(key); msg != "" {
		writeError(ctx, fasthttp.StatusBadRequest, msg)
		return nil, false
	}
	return key, true
}

// listNodes serves GET /list-nodes as go-kvstore did: one "node: ADDR"
// line per member, this node included.
func (s *Server) listNodes(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	var b strings.Builder
	for _, m := range s.ops.Members() {
		b.WriteString("node: ")
		b.WriteString(m)
		b.WriteByte('\n')
	}
	ctx.SetContentTypeBytes(ctText)
	ctx.SetBodyString(b.String())
}

// addNode serves POST /add-node?address=A, as go-kvstore did: in ringkv
// this node joins the cluster that the node at A belongs to. It is an
// admin action (route.go), and it first makes A prove that it is a member
// of this cluster (proveMember), sending A nothing but a nonce, so that
// no credential of the cluster goes to a host that merely claims to be
// one. It talks to the address A resolved to once, so that a name that
// resolves elsewhere the second time cannot redirect the credentialed
// calls. Without a cluster secret no proof is possible: it is then served
// only to a client on loopback (a developer's own machine), as it was.
func (s *Server) addNode(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() && !(ctx.IsGet() && s.cfg.KVStoreAddNodeGet) {
		allow := "POST"
		if s.cfg.KVStoreAddNodeGet {
			allow = "GET, POST"
		}
		methodNotAllowed(ctx, allow)
		return
	}
	addr := string(ctx.QueryArgs().Peek("address"))
	if addr == "" {
		writeError(ctx, fasthttp.StatusBadRequest, "missing address")
		return
	}
	if !s.needCluster(ctx) {
		return
	}
	named := normalizeAddr(addr)
	host, port, err := net.SplitHostPort(named)
	if err != nil || host == "" || port == "" {
		writeError(ctx, fasthttp.StatusBadRequest, "address "+strconv.Quote(clipString(addr, 100))+": want HOST:PORT")
		return
	}
	target := named
	if keys := s.cfg.Secrets.All(); len(keys) > 0 {
		rctx, cancel := context.WithTimeout(s.storeCtx, helloTimeout)
		defer cancel()
		ips, err := net.DefaultResolver.LookupHost(rctx, host)
		if err != nil || len(ips) == 0 {
			writeError(ctx, fasthttp.StatusBadGateway, "cannot resolve "+strconv.Quote(clipString(host, 100)))
			return
		}
		target = net.JoinHostPort(ips[0], port)
		id, err := proveMember(rctx, target, named, keys, s.cfg.JoinTLS)
		if err != nil {
			s.lg.Warn("add-node refused: the target did not prove membership", "address", clipString(addr, 100), "dial", target, "err", err)
			writeError(ctx, fasthttp.StatusBadGateway, "the node at "+clipString(named, 100)+": "+err.Error())
			return
		}
		s.lg.Info("add-node: the target proved membership", "address", clipString(addr, 100), "dial", target, "member", id)
	} else if !ctx.RemoteIP().IsLoopback() {
		writeError(ctx, fasthttp.StatusForbidden, "without a cluster secret /add-node is served only to loopback clients, since the target cannot prove it is a member: set --cluster-secret-file on every node")
		return
	}
	if err := s.cluster.AddNode(s.storeCtx, target); err != nil {
		if errors.Is(err, kv.ErrNoMembership) {
			writeError(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		writeError(ctx, fasthttp.StatusBadGateway, sanitize(err.Error()))
		return
	}
	ctx.SetContentTypeBytes(ctText)
	ctx.SetBodyString("node added: " + addr + "\n")
}
