package httpd

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
)

// The JSON cluster endpoints are pinned by testdata/api/cluster; the
// internode ones, which the server mounts, are peer/transport's.

// testRecord returns a valid encoded record.
func testRecord(ts uint64, value string) []byte {
	r := memtable.Record{Version: memtable.Version{TS: ts, Node: 3}, Value: []byte(value)}
	return r.Append(nil)
}

func testMutations(prefix string, n int, ts uint64) []peer.Mutation {
	ms := make([]peer.Mutation, n)
	for i := range ms {
		ms[i] = peer.Mutation{Key: fmt.Appendf(nil, "%s%04d", prefix, i), Record: testRecord(ts, fmt.Sprint("v", i))}
	}
	return ms
}

// post sends one POST with a binary body.
func (ts *testServer) post(t testing.TB, target string, body []byte, headers ...string) *fasthttp.Response {
	t.Helper()
	return ts.roundTrip(t, rawRequest("POST", target, body, headers...), false)
}

func wantStatus(t testing.TB, what string, resp *fasthttp.Response, code int) {
	t.Helper()
	if resp.StatusCode() != code {
		t.Fatalf("%s: status %d, want %d; body %q", what, resp.StatusCode(), code, resp.Body())
	}
}

func TestClusterStatusJSON(t *testing.T) {
	ts := newClusterTestServer(t, Config{})
	resp := ts.roundTrip(t, rawRequest("GET", "/v1/cluster", nil), false)
	wantStatus(t, "GET /v1/cluster", resp, 200)
	var got kv.ClusterStatus
	if err := json.Unmarshal(resp.Body(), &got); err != nil {
		t.Fatalf("GET /v1/cluster: %v in %q", err, resp.Body())
	}
	want := ts.cl.ClusterStatus()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET /v1/cluster = %+v, want %+v", got, want)
	}

	resp = ts.roundTrip(t, rawRequest("GET", "/v1/ring?key=a%2Fb", nil), false)
	wantStatus(t, "GET /v1/ring", resp, 200)
	var owners kv.RingOwners
	if err := json.Unmarshal(resp.Body(), &owners); err != nil {
		t.Fatal(err)
	}
	wantOwners, _ := ts.cl.Owners([]byte("a/b"))
	if !reflect.DeepEqual(owners, wantOwners) {
		t.Errorf("GET /v1/ring = %+v, want %+v", owners, wantOwners)
	}
}

// internalCalls are one call of each /internal/ endpoint the server
// mounts, and of a method none answers.
var internalCalls = []struct {
	method, target string
	body           []byte
	code           int
}{
	{"POST", "/internal/apply", []byte("x"), 204},
	{"POST", "/internal/read", []byte("x"), 200},
	{"POST", "/internal/scan", []byte("x"), 200},
	{"GET", "/internal/gossip", nil, 200},
	{"GET", "/internal/span?lo=0&hi=0", nil, 200},
	{"GET", "/internal/merkle?start=0&end=0&depth=1", nil, 200},
}

// TestClusterNotImplemented: when the Ops given to New is not a Cluster,
// every cluster endpoint answers 501 with a JSON error.
func TestClusterNotImplemented(t *testing.T) {
	ts := newTestServer(t, Config{})
	calls := []struct{ method, target string }{
		{"GET", "/v1/cluster"},
		{"HEAD", "/v1/cluster"},
		{"GET", "/v1/ring?key=k"},
		{"POST", "/v1/cluster/remove?id=node-3"},
		{"POST", "/v1/cluster/leave"},
		{"POST", "/add-node?address=127.0.0.1:8081"},
		{"POST", "/add-node?address=http://127.0.0.1:8081/"},
	}
	for _, c := range internalCalls {
		if c.code != 405 {
			calls = append(calls, struct{ method, target string }{c.method, c.target})
		}
	}
	for _, c := range calls {
		head := c.method == "HEAD"
		resp := ts.roundTrip(t, rawRequest(c.method, c.target, []byte("x"), RequestHeader+": 1"), head)
		wantStatus(t, c.method+" "+c.target, resp, 501)
		if !head {
			checkJSONError(t, resp.Header.ContentType(), resp.Body())
		}
	}
}

// TestInternodeMounted: the server mounts Config.Internode's handler for
// the internode routes, which then need its credential (a signature by
// the cluster secret), while the client and admin routes do not.
func TestInternodeMounted(t *testing.T) {
	const secret = "correct horse"
	ts := newClusterTestServer(t, Config{Secrets: keyring.New("", []byte(secret))})
	for _, c := range internalCalls {
		resp := ts.roundTrip(t, rawRequest(c.method, c.target, c.body), false)
		wantStatus(t, c.method+" "+c.target+" unsigned", resp, 401)
		checkJSONError(t, resp.Header.ContentType(), resp.Body())
	}
	s, _ := sign(keyring.New("", []byte(secret)), "n2", "GET", "/internal/gossip", nil, time.Now())
	resp := ts.roundTrip(t, rawRequest("GET", "/internal/gossip", nil, NodeHeader+": "+s.node, TimeHeader+": "+s.time, SignatureHeader+": "+s.sig), false)
	wantStatus(t, "GET /internal/gossip signed", resp, 200)
	var addrs []string
	if err := json.Unmarshal(resp.Body(), &addrs); err != nil || !reflect.DeepEqual(addrs, ts.cl.GossipAddrs()) {
		t.Errorf("GET /internal/gossip: %q, %v; want %q", resp.Body(), err, ts.cl.GossipAddrs())
	}
	for _, target := range []string{"/v1/cluster", "/v1/ring?key=k", "/healthz"} {
		wantStatus(t, target, ts.roundTrip(t, rawRequest("GET", target, nil), false), 200)
	}
}
