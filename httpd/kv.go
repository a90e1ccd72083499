package httpd

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// The client API, /v1/kv/{key}. These are the hot paths: they allocate
// nothing (see bench_timing_test.go). The key aliases the request's URI or
// a pooled buffer, the value the request body, and a read's value is
// appended straight into the response body's buffer: the Store contract
// forbids retaining any of them.

// kvGet serves GET and HEAD: 200 with the value and its version (also
// as ETag), 304 when If-None-Match names that version (etag.go), or 404.
// A HEAD reads the value too, so that its Content-Length is the GET's;
// fasthttp then sends no body.
func (s *Server) kvGet(ctx *fasthttp.RequestCtx, rawKey []byte) {
	key, kb, ok := s.requestKey(ctx, rawKey)
	if !ok {
		return
	}
	defer s.releaseKey(kb)
	c, ok := consistencyArg(ctx)
	if !ok {
		return
	}
	buf := ctx.Response.SwapBody(nil)[:0]
	val, ver, err := s.store.Get(s.storeCtx, buf, key, c)
	if err != nil {
		ctx.Response.SwapBody(buf)
		s.writeStoreError(ctx, "get", err)
		return
	}
	ctx.Response.SwapBody(val)
	if notModified(ctx, ver) {
		return
	}
	setVersion(ctx, ver)
	setETag(ctx, ver)
	ctx.SetContentTypeBytes(ctOctet)
}

// kvPut serves PUT: the body is the value; ttl= optionally expires it.
func (s *Server) kvPut(ctx *fasthttp.RequestCtx, rawKey []byte) {
	key, kb, ok := s.requestKey(ctx, rawKey)
	if !ok {
		return
	}
	defer s.releaseKey(kb)
	o, ok := writeOptionsArgs(ctx, true)
	if !ok {
		return
	}
	val := ctx.PostBody()
	if len(val) > s.cfg.MaxValueSize {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "value larger than "+strconv.Itoa(s.cfg.MaxValueSize)+" bytes")
		return
	}
	ver, err := s.store.Put(s.storeCtx, key, val, o)
	if err != nil {
		s.writeWriteError(ctx, "put", err)
		return
	}
	setVersion(ctx, ver)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// kvDelete serves DELETE: 204 whether or not the key existed.
func (s *Server) kvDelete(ctx *fasthttp.RequestCtx, rawKey []byte) {
	key, kb, ok := s.requestKey(ctx, rawKey)
	if !ok {
		return
	}
	defer s.releaseKey(kb)
	o, ok := writeOptionsArgs(ctx, false)
	if !ok {
		return
	}
	ver, err := s.store.Delete(s.storeCtx, key, o)
	if err != nil {
		s.writeWriteError(ctx, "delete", err)
		return
	}
	setVersion(ctx, ver)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// writeWriteError answers a failed PUT or DELETE: 412 with the current
// version for a condition that did not hold, else as writeStoreError.
func (s *Server) writeWriteError(ctx *fasthttp.RequestCtx, op string, err error) {
	var ce *kv.ConditionError
	if errors.As(err, &ce) {
		writeConditionFailed(ctx, ce)
		return
	}
	s.writeStoreError(ctx, op, err)
}

func setVersion(ctx *fasthttp.RequestCtx, v kv.Version) {
	var b [40]byte
	ctx.Response.Header.SetCanonical(hdrVersion, v.AppendText(b[:0]))
}

// requestKey percent-decodes the key of a /v1/kv/{key} path and checks its
// length, answering 400 and reporting false if it is malformed. A key
// without escapes is the raw bytes; one with escapes is decoded into a
// pooled buffer kb, which the caller hands back to releaseKey.
func (s *Server) requestKey(ctx *fasthttp.RequestCtx, raw []byte) (key []byte, kb *[]byte, ok bool) {
	if len(raw) > 3*s.cfg.MaxKeySize {
		// Longer than any encoding of a MaxKeySize key: skip decoding.
		writeError(ctx, fasthttp.StatusBadRequest, s.keyTooLong())
		return nil, nil, false
	}
	key = raw
	if bytes.IndexByte(raw, '%') >= 0 {
		kb = s.keyBufs.Get().(*[]byte)
		var err error
		key, err = percentDecode((*kb)[:0], raw)
		*kb = key[:0]
		if err != nil {
			s.keyBufs.Put(kb)
			writeError(ctx, fasthttp.StatusBadRequest, err.Error())
			return nil, nil, false
		}
	}
	if msg := s.checkKey(key); msg != "" {
		s.releaseKey(kb)
		writeError(ctx, fasthttp.StatusBadRequest, msg)
		return nil, nil, false
	}
	return key, kb, true
}

func (s *Server) releaseKey(kb *[]byte) {
	if kb != nil {
		s.keyBufs.Put(kb)
	}
}

// checkKey returns why key is not a valid key, or "".
func (s *Server) checkKey(key []byte) string {
	switch {
	case len(key) == 0:
		return "empty key"
	case len(key) > s.cfg.MaxKeySize:
		return s.keyTooLong()
	}
	return ""
}

func (s *Server) keyTooLong() string {
	return "key longer than " + strconv.Itoa(s.cfg.MaxKeySize) + " bytes"
}

var errBadEscape = errors.New("malformed percent-encoding in key")

// percentDecode appends the percent-decoding of src to dst. It is strict:
// every '%' must start a %XX escape with two hex digits. '+' is a plus, as
// in any path.
func percentDecode(dst, src []byte) ([]byte, error) {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(src) {
			return dst, errBadEscape
		}
		hi, ok1 := unhex(src[i+1])
		lo, ok2 := unhex(src[i+2])
		if !ok1 || !ok2 {
			return dst, errBadEscape
		}
		dst = append(dst, hi<<4|lo)
		i += 2
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// consistencyArg parses the consistency= query argument (absent or empty:
// quorum), answering 400 and reporting false if it is invalid.
func consistencyArg(ctx *fasthttp.RequestCtx) (kv.Consistency, bool) {
	b := ctx.QueryArgs().Peek("consistency")
	// NB: switching on string(b) does not allocate; kv.ParseConsistency
	// (whose argument escapes into its error) is called only to build the
	// error of an invalid value, and stays the authority on valid ones.
	switch string(b) {
	case "", "quorum":
		return kv.Quorum, true
	case "one":
		return kv.One, true
	case "all":
		return kv.All, true
	}
	c, err := kv.ParseConsistency(string(b))
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return c, false
	}
	return c, true
}

// writeOptionsArgs parses the query arguments of a write: consistency=
// and, if ttlOK, ttl= (a Go duration above zero; absent or empty: none).
func writeOptionsArgs(ctx *fasthttp.RequestCtx, ttlOK bool) (kv.WriteOptions, bool) {
	var o kv.WriteOptions
	var ok bool
	if o.Consistency, ok = consistencyArg(ctx); !ok {
		return o, false
	}
	if o.Condition, ok = writeCondition(ctx); !ok {
		return o, false
	}
	if o.Consistency == kv.Serial && o.Condition.Kind == kv.Unconditional {
		writeError(ctx, fasthttp.StatusBadRequest, "consistency=serial is for reads, and for writes with If-Match or If-None-Match (which are always serial)")
		return o, false
	}
	if !ttlOK {
		return o, true
	}
	if b := ctx.QueryArgs().Peek("ttl"); len(b) > 0 {
		// NB: b viewed as a string without a copy, saving the PUT's only
		// allocation (BenchmarkPut/ttl). Safe: ParseDuration keeps no
		// reference to its argument (its errors quote a copy), and the
		// error below copies b.
		d, err := time.ParseDuration(unsafe.String(unsafe.SliceData(b), len(b)))
		if err != nil || d <= 0 {
			writeError(ctx, fasthttp.StatusBadRequest, "invalid ttl "+strconv.Quote(string(b))+": want a positive duration such as 90s or 24h")
			return o, false
		}
		o.TTL = d
	}
	return o, true
}
