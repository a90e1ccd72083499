package transport

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// NodeOverview asks the node at addr for its status-page snapshot, signed
// as every internode call is, so that a peer with --auth-file answers it.
// The JSON is the node's own; this package does not read it. A node
// that answers 404 (an older release) gives an error matching
// kv.ErrNoOverview.
func (t *Transport) NodeOverview(ctx context.Context, addr string) (json.RawMessage, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url(addr, kv.NodeOverviewURI))
	t.sign(&req.Header, fasthttp.MethodGet, kv.NodeOverviewURI, nil)
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return nil, t.explain(addr, err)
	}
	switch resp.StatusCode() {
	case fasthttp.StatusOK:
		// The response is released on return: copy.
		return json.RawMessage(append([]byte(nil), resp.Body()...)), nil
	case fasthttp.StatusNotFound:
		// A release before /v1/overview (a rolling upgrade).
		return nil, fmt.Errorf("%w: status 404", kv.ErrNoOverview)
	}
	return nil, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
}
