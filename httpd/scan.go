package httpd

import (
	"encoding/base64"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// Scan limits: the default page size and the largest one a client may ask
// for, which bounds the response a single request can make the cluster
// assemble.
const (
	defaultScanLimit = 100
	maxScanLimit     = 10000
)

// scan serves GET /v1/kv?prefix=P&limit=N&after=K&consistency=C&encoding=E:
//
//	{"items":[{"key":"..","value":"..","version":".."}, ...],"next":"..."|null}
//
// Items come in token order (see kv.ScanQuery). next is the key to pass
// as after= for the following page, or null at the end. A page ends early
// once it holds Limits.MaxScanBytes (always one item at least), with next
// set; past Limits.MaxConcurrentScans scans at once the answer is 429.
//
// Keys and values are JSON strings by default, and any invalid UTF-8 in
// them is replaced by U+FFFD, so binary data does not survive. With
// encoding=base64, key, value and next are standard base64 (RFC 4648 with
// padding) instead, and after= is read as base64 too, so that next can be
// passed back unchanged; prefix= stays a plain query argument either way
// (percent-encode binary bytes; a '+' there means a space, as in any query).
func (s *Server) scan(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	c, ok := consistencyArg(ctx)
	if !ok {
		return
	}
	if c == kv.Serial {
		writeError(ctx, fasthttp.StatusBadRequest, "consistency=serial is for single-key reads, not scans")
		return
	}
	q, b64, ok := s.scanQuery(ctx)
	if !ok {
		return
	}
	q.Consistency = c
	if !s.acquireScan(ctx) {
		return
	}
	defer s.releaseScan()
	page, err := s.store.Scan(s.storeCtx, q)
	if err != nil {
		s.writeStoreError(ctx, "scan", err)
		return
	}
	b := ctx.Response.SwapBody(nil)[:0]
	b = appendScanPage(b, page, q.MaxBytes, b64)
	ctx.Response.SwapBody(b)
	ctx.SetContentTypeBytes(ctJSON)
}

// scanQuery reads a scan's limit=, encoding=, prefix= and after= (see
// scan), with MaxBytes at Limits.MaxScanBytes, and whether keys and values
// are base64. On a bad argument it answers 400 and returns false.
func (s *Server) scanQuery(ctx *fasthttp.RequestCtx) (kv.ScanQuery, bool, bool) {
	args := ctx.QueryArgs()
	limit := defaultScanLimit
	if b := args.Peek("limit"); len(b) > 0 {
		n, err := fasthttp.ParseUint(b)
		if err != nil || n < 1 || n > maxScanLimit {
			writeError(ctx, fasthttp.StatusBadRequest, "invalid limit "+strconv.Quote(string(b))+": want 1 to "+strconv.Itoa(maxScanLimit))
			return kv.ScanQuery{}, false, false
		}
		limit = n
	}
	var b64 bool
	switch enc := args.Peek("encoding"); string(enc) {
	case "":
	case "base64":
		b64 = true
	default:
		writeError(ctx, fasthttp.StatusBadRequest, "invalid encoding "+strconv.Quote(string(enc))+": want base64, or none for JSON strings")
		return kv.ScanQuery{}, false, false
	}
	prefix := args.Peek("prefix")
	if len(prefix) > s.cfg.MaxKeySize {
		writeError(ctx, fasthttp.StatusBadRequest, "prefix longer than "+strconv.Itoa(s.cfg.MaxKeySize)+" bytes")
		return kv.ScanQuery{}, false, false
	}
	after := args.Peek("after")
	if b64 && len(after) > 0 {
		dec, err := base64.StdEncoding.AppendDecode(nil, after)
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "invalid after: not standard base64, as encoding=base64 requires")
			return kv.ScanQuery{}, false, false
		}
		after = dec
	}
	if len(after) > s.cfg.MaxKeySize {
		writeError(ctx, fasthttp.StatusBadRequest, "after longer than "+strconv.Itoa(s.cfg.MaxKeySize)+" bytes")
		return kv.ScanQuery{}, false, false
	}
	return kv.ScanQuery{Prefix: prefix, After: after, Limit: limit, MaxBytes: s.cfg.Limits.MaxScanBytes}, b64, true
}

// appendScanPage appends page as scan's JSON answer to b. The store capped
// the page's raw bytes at maxBytes; escaping can grow them up to sixfold,
// so the answer is capped again as encoded, next then set to continue.
func appendScanPage(b []byte, page kv.ScanPage, maxBytes int, b64 bool) []byte {
	b = append(b, `{"items":[`...)
	for i, it := range page.Items {
		if i > 0 && len(b) >= maxBytes {
			page.Next = page.Items[i-1].Key
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendScanBytes(b, it.Key, b64)
		b = append(b, `,"value":`...)
		b = appendScanBytes(b, it.Value, b64)
		b = append(b, `,"version":"`...)
		b = it.Version.AppendText(b)
		b = append(b, `"}`...)
	}
	b = append(b, `],"next":`...)
	if page.Next == nil {
		b = append(b, "null"...)
	} else {
		b = appendScanBytes(b, page.Next, b64)
	}
	return append(b, "}\n"...)
}

// appendScanBytes appends v as a JSON string: escaped, or base64.
func appendScanBytes(dst, v []byte, b64 bool) []byte {
	if !b64 {
		return appendJSONString(dst, v)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}
