package httpd

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/client/batchwire"
	"github.com/ringkv/ringkv/peer/kv"
)

// POST /v1/batch: up to kv.MaxBatchItems gets, puts and deletes in one
// request, each applied on its own by Store.Batch and answered item by
// item, in order. The body is JSON (below) or, with Content-Type
// application/x-ringkv-batch, the binary framing of client/batchwire,
// answered in the same framing. Everything is checked before any item is
// applied (the body, every item's key, value, options and the
// credential's right to it), so a refused batch writes nothing. A batch
// is not a transaction: the items of an accepted one succeed or fail each
// on its own.
//
// The JSON body:
//
//	{"encoding":"base64"?, "consistency":"one|quorum|all"?,
//	 "ops":[{"op":"get|put|delete", "key":"k", "value":"v" (a put's),
//	         "ttl":"10s"? (a put's), "consistency":"one|quorum|all|serial"?,
//	         "if_match":"<version>"|"*"?, "if_none_match":"*"?}, ...]}
//
// answered 200 with
//
//	{"results":[{"status":204,"version":"V"}, {"status":200,"value":"v","version":"V"},
//	            {"status":404}, {"status":412,"exists":true,"version":"V"},
//	            {"status":503,"error":"...","unprocessed":true}, ...],
//	 "unprocessed":[4, ...]}
//
// With "encoding":"base64" keys and values are standard base64, both ways.
// An item's consistency defaults to the batch's: the body's, else the
// query's consistency=, else quorum.

// batchBodySlack is the room a batch body has beyond 4 × MaxValueSize:
// its framing, keys and options.
const batchBodySlack = 64 << 10

// batchJSONOp is one item of a JSON batch, as sent. Pointers tell a
// member absent from one given empty.
type batchJSONOp struct {
	Op          string  `json:"op"`
	Key         *string `json:"key"`
	Value       *string `json:"value"`
	TTL         string  `json:"ttl"`
	Consistency string  `json:"consistency"`
	IfMatch     *string `json:"if_match"`
	IfNoneMatch *string `json:"if_none_match"`
}

// batchRefusal is why a batch was refused whole, before anything of it
// was applied: the status and message of its JSON error.
type batchRefusal struct {
	code int
	msg  string
}

func badBatch(format string, args ...any) *batchRefusal {
	return &batchRefusal{fasthttp.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func tooBigBatch(format string, args ...any) *batchRefusal {
	return &batchRefusal{fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf(format, args...)}
}

// batchRequest is a parsed batch, ready for Store.Batch.
type batchRequest struct {
	ops    []kv.BatchOp
	binary bool // answer in batchwire's framing
	base64 bool // a JSON batch's keys and values are base64
}

// batch serves POST /v1/batch.
func (s *Server) batch(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, fasthttp.MethodPost)
		return
	}
	var req batchRequest
	if r := s.parseBatch(ctx, &req); r != nil {
		writeError(ctx, r.code, r.msg)
		return
	}
	if !s.admitBatch(ctx, req.ops) {
		return
	}
	res := make([]kv.BatchResult, len(req.ops))
	if len(req.ops) > 0 {
		if err := s.store.Batch(s.storeCtx, req.ops, res); err != nil {
			s.writeStoreError(ctx, "batch", err)
			return
		}
	}
	b := ctx.Response.SwapBody(nil)[:0]
	if req.binary {
		b = batchwire.AppendHeader(b, len(res))
	} else {
		b = append(b, `{"results":[`...)
	}
	logged := false
	for i := range res {
		r, internal := s.batchResult(&req.ops[i], &res[i])
		if internal && !logged {
			// Once a batch: a broken disk fails every item alike.
			s.lg.Error("batch item failed", "item", i, "op", req.ops[i].Kind.String(), "err", res[i].Err)
			logged = true
		}
		if req.binary {
			b = batchwire.AppendResult(b, &r)
		} else {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONResult(b, &r, req.base64)
		}
	}
	if req.binary {
		ctx.SetContentType(batchwire.ContentType)
	} else {
		b = append(b, `],"unprocessed":[`...)
		n := 0
		for i := range res {
			if res[i].Unprocessed {
				if n > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, int64(i), 10)
				n++
			}
		}
		b = append(b, "]}\n"...)
		ctx.SetContentTypeBytes(ctJSON)
	}
	ctx.Response.SwapBody(b)
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// parseBatch reads the request into req, or says why it is refused.
func (s *Server) parseBatch(ctx *fasthttp.RequestCtx, req *batchRequest) *batchRefusal {
	ct, _, _ := strings.Cut(string(ctx.Request.Header.ContentType()), ";")
	switch ct = strings.ToLower(strings.TrimSpace(ct)); ct {
	case "", "application/json":
	case batchwire.ContentType:
		req.binary = true
	default:
		// Notably text/plain and the form types, which a web page may
		// send anywhere without asking (a JSON body fits in a text/plain
		// form); the other two need a CORS preflight, never granted.
		return &batchRefusal{fasthttp.StatusUnsupportedMediaType, "Content-Type " + strconv.Quote(clipString(ct, 100)) +
			": want application/json (or none) or " + batchwire.ContentType}
	}
	body := ctx.PostBody()
	if limit := s.cfg.maxBatchBodySize(); len(body) > limit {
		return tooBigBatch("batch body larger than %d bytes", limit)
	}
	def, r := batchConsistency(string(ctx.QueryArgs().Peek("consistency")), kv.Quorum)
	if r != nil {
		return r
	}
	if req.binary {
		r = s.parseBatchBinary(body, def, req)
	} else {
		r = s.parseBatchJSON(body, def, req)
	}
	if r != nil {
		return r
	}
	for i := range req.ops {
		if r := s.checkBatchOp(i, &req.ops[i]); r != nil {
			return r
		}
	}
	// The store's own checks, which the above make: a guard should they
	// ever differ.
	if err := kv.CheckBatch(req.ops); err != nil {
		return badBatch("%v", err)
	}
	return nil
}

// batchConsistency parses a batch's default consistency (s, or def when
// empty): one, quorum or all. Serial is an item's, and only a get's.
func batchConsistency(s string, def kv.Consistency) (kv.Consistency, *batchRefusal) {
	if s == "" {
		return def, nil
	}
	c, err := kv.ParseConsistency(s)
	switch {
	case err != nil:
		return def, badBatch("invalid batch consistency %q: want one, quorum or all (serial on a get item)", clipString(s, 100))
	case c == kv.Serial:
		return def, badBatch("consistency serial is not a batch's default: give it to the gets that want it")
	}
	return c, nil
}

// checkBatchOp checks what both bodies share: the key and value limits
// (with the single-key handlers' statuses), and the options an op takes.
func (s *Server) checkBatchOp(i int, op *kv.BatchOp) *batchRefusal {
	if msg := s.checkKey(op.Key); msg != "" {
		return badBatch("item %d: %s", i, msg)
	}
	if len(op.Value) > s.cfg.MaxValueSize {
		return tooBigBatch("item %d: value larger than %d bytes", i, s.cfg.MaxValueSize)
	}
	switch {
	case op.Kind == kv.BatchGet && op.Condition.Kind != kv.Unconditional:
		return badBatch("item %d: a get takes no condition (if_match, if_none_match)", i)
	case op.Kind != kv.BatchGet && op.Consistency == kv.Serial:
		return badBatch("item %d: consistency serial is for gets; a conditional write (if_match, if_none_match) is serial already", i)
	}
	return nil
}

// parseBatchJSON parses a JSON body. It reads the ops one at a time, so
// that a body of more than kv.MaxBatchItems is refused at the first item
// too many, not after decoding them all.
func (s *Server) parseBatchJSON(body []byte, def kv.Consistency, req *batchRequest) *batchRefusal {
	const shape = `want {"ops":[{"op":"get|put|delete","key":...},...]}`
	if len(bytes.TrimSpace(body)) == 0 {
		return badBatch("empty body: %s", shape)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	malformed := func(err error) *batchRefusal {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return badBatch("malformed JSON batch: %v", err)
	}
	if tok, err := dec.Token(); err != nil {
		return malformed(err)
	} else if tok != json.Delim('{') {
		return badBatch("a batch is a JSON object: %s", shape)
	}
	var (
		encoding, consistency string
		ops                   []batchJSONOp
		seen                  = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed(err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return badBatch("member %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "encoding":
			err = dec.Decode(&encoding)
		case "consistency":
			err = dec.Decode(&consistency)
		case "ops":
			ops, err = decodeJSONOps(dec)
			var r *batchRefusal
			if errors.As(err, &r) {
				return r
			}
		default:
			return badBatch("unknown member %q: %s", clipString(name, 100), shape)
		}
		if err != nil {
			return malformed(err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badBatch("data after the batch's JSON object")
	}
	if !seen["ops"] || ops == nil {
		return badBatch("no ops: %s", shape)
	}
	return req.takeJSON(len(body), encoding, consistency, def, ops)
}

// takeJSON checks a JSON batch's encoding and consistency and converts its
// ops, decoding keys and values into one buffer of bodyLen bytes.
func (req *batchRequest) takeJSON(bodyLen int, encoding, consistency string, def kv.Consistency, ops []batchJSONOp) *batchRefusal {
	switch encoding {
	case "":
	case "base64":
		req.base64 = true
	default:
		return badBatch("invalid encoding %q: want base64, or none for JSON strings", clipString(encoding, 100))
	}
	def, r := batchConsistency(consistency, def)
	if r != nil {
		return r
	}
	// Keys and values decoded from the body are never longer than it:
	// one buffer holds them all.
	arena := make([]byte, 0, bodyLen)
	req.ops = make([]kv.BatchOp, len(ops))
	for i := range ops {
		if r := jsonBatchOp(i, &ops[i], req.base64, def, &arena, &req.ops[i]); r != nil {
			return r
		}
	}
	return nil
}

// Error implements error, so that decodeJSONOps can return a refusal.
func (r *batchRefusal) Error() string { return r.msg }

// decodeJSONOps decodes the array of ops; a refusal (too many items, an
// item that is not an op) comes back as a *batchRefusal.
func decodeJSONOps(dec *json.Decoder) ([]batchJSONOp, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, badBatch(`ops is not an array: want "ops":[{"op":...},...]`)
	}
	ops := []batchJSONOp{}
	for dec.More() {
		if len(ops) == kv.MaxBatchItems {
			return nil, tooBigBatch("more than %d items in a batch", kv.MaxBatchItems)
		}
		var o batchJSONOp
		if err := dec.Decode(&o); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, err
			}
			// A type error or an unknown member: name the item.
			return nil, badBatch("item %d: %v", len(ops), err)
		}
		ops = append(ops, o)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, err
	}
	return ops, nil
}

// jsonBatchOp turns item i of a JSON batch into op, its key and value
// appended to arena.
func jsonBatchOp(i int, o *batchJSONOp, b64 bool, def kv.Consistency, arena *[]byte, op *kv.BatchOp) *batchRefusal {
	switch o.Op {
	case "get":
		op.Kind = kv.BatchGet
	case "put":
		op.Kind = kv.BatchPut
	case "delete":
		op.Kind = kv.BatchDelete
	case "":
		return badBatch(`item %d: no op: want "op":"get", "put" or "delete"`, i)
	default:
		return badBatch("item %d: unknown op %q: want get, put or delete", i, clipString(o.Op, 100))
	}
	bytesOf := func(what string, s string) ([]byte, *batchRefusal) {
		start := len(*arena)
		if !b64 {
			*arena = append(*arena, s...)
		} else {
			var err error
			if *arena, err = base64.StdEncoding.AppendDecode(*arena, []byte(s)); err != nil {
				*arena = (*arena)[:start]
				return nil, badBatch("item %d: %s is not standard base64: %v", i, what, err)
			}
		}
		return (*arena)[start:len(*arena):len(*arena)], nil
	}
	if o.Key == nil {
		return badBatch(`item %d: no key`, i)
	}
	var r *batchRefusal
	if op.Key, r = bytesOf("key", *o.Key); r != nil {
		return r
	}
	if op.Kind == kv.BatchPut {
		if o.Value == nil {
			return badBatch(`item %d: a put needs a value ("value":"" for an empty one)`, i)
		}
		if op.Value, r = bytesOf("value", *o.Value); r != nil {
			return r
		}
		if o.TTL != "" {
			d, err := time.ParseDuration(o.TTL)
			if err != nil || d <= 0 {
				return badBatch("item %d: invalid ttl %q: want a positive duration such as 90s or 24h", i, clipString(o.TTL, 100))
			}
			op.TTL = d
		}
	} else {
		switch {
		case o.Value != nil:
			return badBatch("item %d: a %s takes no value", i, op.Kind)
		case o.TTL != "":
			return badBatch("item %d: a %s takes no ttl", i, op.Kind)
		}
	}
	op.Consistency = def
	if o.Consistency != "" {
		c, err := kv.ParseConsistency(o.Consistency)
		if err != nil {
			return badBatch("item %d: %v", i, err)
		}
		op.Consistency = c
	}
	return jsonCondition(i, o, op)
}

// jsonCondition reads an item's if_match or if_none_match into op.
func jsonCondition(i int, o *batchJSONOp, op *kv.BatchOp) *batchRefusal {
	switch {
	case o.IfMatch != nil && o.IfNoneMatch != nil:
		return badBatch("item %d: if_match and if_none_match together: give one", i)
	case o.IfNoneMatch != nil:
		if *o.IfNoneMatch != "*" {
			return badBatch(`item %d: if_none_match takes only "*" (create only if absent)`, i)
		}
		op.Condition = kv.Condition{Kind: kv.IfAbsent}
	case o.IfMatch != nil && *o.IfMatch == "*":
		op.Condition = kv.Condition{Kind: kv.IfPresent}
	case o.IfMatch != nil:
		v, err := kv.ParseVersion(*o.IfMatch)
		if err != nil {
			return badBatch(`item %d: if_match: want "*" or a version as the results give it (16 hex digits, '-', 16 hex digits), got %q`, i, clipString(*o.IfMatch, 100))
		}
		op.Condition = kv.Condition{Kind: kv.IfVersion, Version: v}
	}
	return nil
}

// maxTTLMillis is the longest TTL a time.Duration holds, in milliseconds.
const maxTTLMillis = uint64(math.MaxInt64 / int64(time.Millisecond))

// parseBatchBinary parses a body in batchwire's framing. Keys and values
// alias the body, which outlives the Store call.
func (s *Server) parseBatchBinary(body []byte, def kv.Consistency, req *batchRequest) *batchRefusal {
	items, err := batchwire.DecodeRequest(body, kv.MaxBatchItems, nil)
	switch {
	case errors.Is(err, batchwire.ErrTooMany):
		return tooBigBatch("%v", err)
	case err != nil:
		return badBatch("%v", err)
	}
	req.ops = make([]kv.BatchOp, len(items))
	for i := range items {
		it, op := &items[i], &req.ops[i]
		switch it.Op {
		case batchwire.OpGet:
			op.Kind = kv.BatchGet
		case batchwire.OpPut:
			op.Kind = kv.BatchPut
		case batchwire.OpDelete:
			op.Kind = kv.BatchDelete
		}
		switch it.Consistency {
		case batchwire.ConsistencyDefault:
			op.Consistency = def
		case batchwire.ConsistencyOne:
			op.Consistency = kv.One
		case batchwire.ConsistencyQuorum:
			op.Consistency = kv.Quorum
		case batchwire.ConsistencyAll:
			op.Consistency = kv.All
		case batchwire.ConsistencySerial:
			op.Consistency = kv.Serial
		}
		switch it.Cond {
		case batchwire.CondIfVersion:
			op.Condition = kv.Condition{Kind: kv.IfVersion, Version: it.Version}
		case batchwire.CondIfAbsent:
			op.Condition = kv.Condition{Kind: kv.IfAbsent}
		case batchwire.CondIfPresent:
			op.Condition = kv.Condition{Kind: kv.IfPresent}
		}
		if it.TTLMillis > maxTTLMillis {
			return badBatch("item %d: ttl of %d ms is too long", i, it.TTLMillis)
		}
		op.TTL = time.Duration(it.TTLMillis) * time.Millisecond
		op.Key, op.Value = it.Key, it.Value
	}
	return nil
}

// batchResult is the answer to one item, as both encodings give it; its
// status is the single-key handlers' (statusOf). internal reports a 500
// worth logging.
func (s *Server) batchResult(op *kv.BatchOp, r *kv.BatchResult) (out batchwire.Result, internal bool) {
	if r.Unprocessed {
		out.Flags |= batchwire.FlagUnprocessed
	}
	if r.Err == nil {
		out.Status = fasthttp.StatusNoContent
		if op.Kind == kv.BatchGet {
			out.Status, out.Value = fasthttp.StatusOK, r.Value
		}
		out.Version = r.Version
		return out, false
	}
	code, msg, internal := storeErrorText(r.Err)
	out.Status = code
	var ce *kv.ConditionError
	switch {
	case errors.As(r.Err, &ce):
		if ce.Exists {
			out.Flags |= batchwire.FlagExists
			out.Version = ce.Current
		}
	case code != fasthttp.StatusNotFound:
		out.Message = []byte(msg)
	}
	if errors.Is(r.Err, kv.ErrOutcomeUnknown) {
		out.Flags |= batchwire.FlagOutcomeUnknown
	}
	return out, internal
}

// appendJSONResult appends one result as a JSON object.
func appendJSONResult(b []byte, r *batchwire.Result, b64 bool) []byte {
	b = append(b, `{"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	if r.Status == fasthttp.StatusOK {
		b = append(b, `,"value":`...)
		if b64 {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, r.Value)
			b = append(b, '"')
		} else {
			b = appendJSONString(b, r.Value)
		}
	}
	if r.Status == fasthttp.StatusPreconditionFailed {
		b = append(b, `,"exists":`...)
		b = strconv.AppendBool(b, r.Flags&batchwire.FlagExists != 0)
	}
	if r.Status == fasthttp.StatusOK || r.Status == fasthttp.StatusNoContent || r.Flags&batchwire.FlagExists != 0 {
		b = append(b, `,"version":"`...)
		b = r.Version.AppendText(b)
		b = append(b, '"')
	}
	if r.Message != nil {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.Message)
	}
	if r.Flags&batchwire.FlagUnprocessed != 0 {
		b = append(b, `,"unprocessed":true`...)
	}
	if r.Flags&batchwire.FlagOutcomeUnknown != 0 {
		b = append(b, `,"outcome_unknown":true`...)
	}
	return append(b, '}')
}
