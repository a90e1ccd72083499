package httpd

import (
	"bytes"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// A record's version is its HTTP entity tag: ETag: "<version>", the text
// form of X-Ringkv-Version in quotes. It is a strong validator: two
// records with one version are one write. An If-None-Match on GET or HEAD
// is checked against it (RFC 9110 section 13.1.2): 304 when it names the
// version or is *, and the key exists.

var (
	hdrETag        = []byte("ETag")
	hdrIfNoneMatch = []byte("If-None-Match")
)

// setETag sets the ETag of version v.
func setETag(ctx *fasthttp.RequestCtx, v kv.Version) {
	var b [40]byte
	t := append(b[:0], '"')
	t = v.AppendText(t)
	ctx.Response.Header.SetCanonical(hdrETag, append(t, '"'))
}

var errBadETag = errors.New(`malformed entity tag: want *, or "VERSION" (as in ETag), comma-separated`)

// etagsMatch reports whether the entity-tag list h (an If-Match or
// If-None-Match value) names version v, or is *. Weak tags (W/"...")
// compare as their strong form, as If-None-Match's weak comparison does;
// a tag that is not a ringkv version is malformed (errBadETag), so a
// client's mistake is a 400 rather than a condition that never holds.
func etagsMatch(h []byte, v kv.Version) (bool, error) {
	h = bytes.TrimSpace(h)
	if string(h) == "*" {
		return true, nil
	}
	var want [40]byte
	w := v.AppendText(want[:0])
	match := false
	for len(h) > 0 {
		var tag []byte
		tag, h, _ = bytes.Cut(h, []byte(","))
		tag = bytes.TrimSpace(tag)
		if len(tag) == 0 {
			continue // empty list elements are allowed (RFC 9110 section 5.6.1)
		}
		tag = bytes.TrimPrefix(tag, []byte("W/"))
		if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
			return false, errBadETag
		}
		tag = tag[1 : len(tag)-1]
		if _, err := kv.ParseVersion(string(tag)); err != nil {
			return false, errBadETag
		}
		match = match || bytes.Equal(tag, w)
	}
	return match, nil
}

// notModified answers a GET or HEAD of a record of version v whose
// If-None-Match holds it (304, with its validators and no body), and
// reports whether it did; a malformed If-None-Match is a 400.
func notModified(ctx *fasthttp.RequestCtx, v kv.Version) (answered bool) {
	h := ctx.Request.Header.PeekBytes(hdrIfNoneMatch)
	if h == nil {
		return false
	}
	match, err := etagsMatch(h, v)
	if err != nil {
		ctx.Response.ResetBody()
		writeError(ctx, fasthttp.StatusBadRequest, "If-None-Match: "+err.Error())
		return true
	}
	if !match {
		return false
	}
	ctx.Response.ResetBody()
	ctx.SetStatusCode(fasthttp.StatusNotModified)
	setVersion(ctx, v)
	setETag(ctx, v)
	return true
}
