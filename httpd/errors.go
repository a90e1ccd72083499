package httpd

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// statusOf maps an error of the Store or Ops to its HTTP status. It is the
// one place that does so.
func statusOf(err error) int {
	switch {
	case err == nil:
		return fasthttp.StatusOK
	case errors.Is(err, kv.ErrNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, kv.ErrBadBatch):
		// A batch the store refused whole, having applied nothing.
		return fasthttp.StatusBadRequest
	case errors.Is(err, kv.ErrDiskFull):
		// The node's disk is below its free-space floor: it refused the
		// write before writing anything, and takes writes again once
		// space is freed.
		return fasthttp.StatusInsufficientStorage
	case errors.Is(err, kv.ErrConditionFailed):
		return fasthttp.StatusPreconditionFailed
	case errors.Is(err, kv.ErrOutcomeUnknown):
		// A conditional write's round was cut short once its record may
		// have been accepted: a serial read tells whether it applied.
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, kv.ErrUnavailable):
		// Too few replicas answered: the request may succeed when retried.
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		// The coordinator gave up waiting for replicas.
		return fasthttp.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		// Only a forced Shutdown cancels the store's context.
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusInternalServerError
}

// Content types, precomputed so that the hot paths do not convert strings.
var (
	ctJSON  = []byte("application/json")
	ctOctet = []byte("application/octet-stream")
	ctText  = []byte("text/plain; charset=utf-8")
	ctHTML  = []byte("text/html; charset=utf-8")

	hdrVersion = []byte("X-Ringkv-Version")
	hdrAllow   = []byte("Allow")
)

// writeError replaces whatever response ctx holds with a JSON error:
// {"error":msg} and status code.
func writeError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.Response.Header.DelBytes(hdrVersion)
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(ctJSON)
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, "}\n"...)
	ctx.Response.SwapBody(b)
}

// writeStoreError answers a failed Store or Ops call: its status from
// statusOf, and its text. 5xx causes other than unavailability are logged,
// since they mean a bug or a broken disk rather than a client mistake.
func (s *Server) writeStoreError(ctx *fasthttp.RequestCtx, op string, err error) {
	code, msg, internal := storeErrorText(err)
	if internal {
		s.lg.Error("request failed", "op", op, "uri", string(ctx.RequestURI()), "err", err)
	}
	writeError(ctx, code, msg)
}

// storeErrorText is the status and message of a failed Store or Ops call,
// and whether it is worth logging: a 5xx cause other than unavailability.
// A batch item's result (batch.go) is this too.
func storeErrorText(err error) (code int, msg string, internal bool) {
	code = statusOf(err)
	msg = err.Error()
	if code == fasthttp.StatusNotFound {
		msg = "key not found"
	}
	// Reads of a damaged span are logged by the engine, rate-limited: not
	// once a request here.
	internal = code == fasthttp.StatusInternalServerError && !errors.Is(err, kv.ErrCorruption)
	return code, msg, internal
}

// methodNotAllowed answers 405 with the Allow header that lists the
// route's methods.
func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method "+string(ctx.Method())+" not allowed; allowed: "+allow)
	ctx.Response.Header.SetCanonical(hdrAllow, []byte(allow))
}

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD, as encoding/json does, so the output is always valid
// JSON; clients that store binary keys or values ask for encoding=base64.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			}
			i++
			start = i
			continue
		}
		// NB: converting at most UTFMax bytes to a string that does not
		// escape costs no allocation, whichever T is.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
