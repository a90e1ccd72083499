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
	hdrIfMatch     = []byte("If-Match")
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

// writeCondition parses the validators of a PUT or DELETE into the
// condition of a compare-and-set (kv.Condition), answering 400 and
// reporting false for one it does not take: If-Match: * (the key is
// present), If-Match: "V" (present at version V), If-None-Match: * (the
// key is absent, deleted or expired), and not both. If-Match compares
// strongly, so a weak tag is refused, as is a list of several (one
// version is current at a time); If-None-Match on a write takes only *.
func writeCondition(ctx *fasthttp.RequestCtx) (kv.Condition, bool) {
	im := ctx.Request.Header.PeekBytes(hdrIfMatch)
	inm := ctx.Request.Header.PeekBytes(hdrIfNoneMatch)
	switch {
	case im == nil && inm == nil:
		return kv.Condition{}, true
	case im != nil && inm != nil:
		writeError(ctx, fasthttp.StatusBadRequest, "If-Match and If-None-Match together: give one")
		return kv.Condition{}, false
	case inm != nil:
		if string(bytes.TrimSpace(inm)) != "*" {
			writeError(ctx, fasthttp.StatusBadRequest, `If-None-Match on a write takes only * (create only if absent)`)
			return kv.Condition{}, false
		}
		return kv.Condition{Kind: kv.IfAbsent}, true
	}
	tag := bytes.TrimSpace(im)
	if string(tag) == "*" {
		return kv.Condition{Kind: kv.IfPresent}, true
	}
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		writeError(ctx, fasthttp.StatusBadRequest, `If-Match: want * or one strong entity tag "VERSION" (as in ETag)`)
		return kv.Condition{}, false
	}
	v, err := kv.ParseVersion(string(tag[1 : len(tag)-1]))
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, `If-Match: want * or one strong entity tag "VERSION" (as in ETag)`)
		return kv.Condition{}, false
	}
	return kv.Condition{Kind: kv.IfVersion, Version: v}, true
}

// writeConditionFailed answers 412 for a compare-and-set whose condition
// did not hold, with the key's current version (ETag, X-Ringkv-Version
// and in the body), or "exists":false.
func writeConditionFailed(ctx *fasthttp.RequestCtx, ce *kv.ConditionError) {
	writeError(ctx, fasthttp.StatusPreconditionFailed, ce.Error())
	b := ctx.Response.SwapBody(nil)
	b = bytes.TrimSuffix(b, []byte("}\n"))
	if ce.Exists {
		b = append(b, `,"exists":true,"version":"`...)
		b = ce.Current.AppendText(b)
		b = append(b, `"}`+"\n"...)
		ctx.Response.SwapBody(b)
		setVersion(ctx, ce.Current)
		setETag(ctx, ce.Current)
		return
	}
	b = append(b, `,"exists":false}`+"\n"...)
	ctx.Response.SwapBody(b)
}
