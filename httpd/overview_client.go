package httpd

import (
	"context"
	"encoding/json"
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
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
	}
	// The response is released on return: copy.
	return json.RawMessage(append([]byte(nil), resp.Body()...)), nil
}

var _ OverviewPeers = (*Transport)(nil)
