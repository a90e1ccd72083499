package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"
)

// NodeOverview asks the node at addr for its snapshot (GET
// /v1/overview?scope=node), signed as every internode call is, so that a
// peer with --auth-file answers it (route.go's peerCall).
func (t *Transport) NodeOverview(ctx context.Context, addr string) (json.RawMessage, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url(addr, NodeScopeURI))
	t.sign(&req.Header, fasthttp.MethodGet, NodeScopeURI, nil)
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return nil, err
	}
	if resp.StatusCode() == fasthttp.StatusNotFound {
		// A release before /v1/overview (a rolling upgrade).
		return nil, fmt.Errorf("%w: status 404", ErrNoOverview)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
	}
	// The response is released on return: copy.
	return json.RawMessage(append([]byte(nil), resp.Body()...)), nil
}

// ErrNoOverview is matched by NodeOverview's error for a node that
// answers but has no /v1/overview: an older release, which the page shows
// as such rather than as down.
var ErrNoOverview = errors.New("httpd: the node serves no /v1/overview")

var _ OverviewPeers = (*Transport)(nil)
