package httpd

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
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
//	GET    /add-node?address=A  join the cluster of the node at A (cluster.go); 400 without address
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
	var m map[string]json.RawMessage
	if err := json.Unmarshal(ctx.PostBody(), &m); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid request body")
		return
	}
	key, ok1 := jsonStringMember(m, "key")
	val, ok2 := jsonStringMember(m, "value")
	if !ok1 || !ok2 {
		writeError(ctx, fasthttp.StatusBadRequest, "missing key or value in request body")
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
