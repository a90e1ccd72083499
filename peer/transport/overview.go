package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"
)

// NodeOverviewURI is the request for a node's own snapshot of the status
// page (httpd's GET /v1/overview?scope=node).
const NodeOverviewURI = "/v1/overview?scope=node"

// ErrNoOverview is matched by NodeOverview's error for a node that answers
// but serves no /v1/overview: an older release, which the status page
// shows as such rather than as down.
var ErrNoOverview = errors.New("the node serves no /v1/overview")

// NodeOverview asks the node at addr for its status-page snapshot, signed
// as every internode call is, so that a peer with --auth-file answers it.
// The JSON is the node's own; this package does not read it.
func (t *Transport) NodeOverview(ctx context.Context, addr string) (json.RawMessage, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url(addr, NodeOverviewURI))
	t.sign(&req.Header, fasthttp.MethodGet, NodeOverviewURI, nil)
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return nil, t.explain(addr, err)
	}
	switch resp.StatusCode() {
	case fasthttp.StatusOK:
		// The response is released on return: copy.
		return json.RawMessage(append([]byte(nil), resp.Body()...)), nil
	case fasthttp.StatusNotFound:
		// A release before /v1/overview (a rolling upgrade).
		return nil, fmt.Errorf("%w: status 404", ErrNoOverview)
	}
	return nil, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
}
