package httpd

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// statusHTML is the status page: one self-contained file (its CSS and JS
// inline, no external asset, so it works offline and behind any proxy)
// that polls GET /v1/overview and renders everything in the browser.
//
//go:embed status/index.html
var statusHTML []byte

// statusCSP lets the page run only its own inline script and styles, and
// fetch only from the node that served it: a page that loaded anything
// from elsewhere would fail in the browser test.
const statusCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// status serves GET /: the page. Its data comes from /v1/overview.
func (s *Server) status(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(fasthttp.HeaderCacheControl, "no-cache")
	ctx.SetContentTypeBytes(ctHTML)
	ctx.Response.SetBodyRaw(statusHTML)
}
