package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/peer"
)

// fakeCluster serves the cluster endpoints of one node the way httpd does,
// from peer's own JSON types, and records the requests it got.
type fakeCluster struct {
	status peer.ClusterStatus
	owners peer.RingOwners

	mu       sync.Mutex
	requests []string // "METHOD PATH?QUERY"
}

func newFakeCluster(t *testing.T) (*fakeCluster, string) {
	t.Helper()
	f := &fakeCluster{
		status: peer.ClusterStatus{
			Self: "node-a", Replicas: 3, VNodes: 128,
			Members: []peer.Member{
				{ID: "node-a", HTTPAddr: "127.0.0.1:8001", GossipAddr: "127.0.0.1:7001", State: peer.Alive, Since: time.Now().Add(-50 * time.Hour).Round(0).UTC()},
				{ID: "node-b", HTTPAddr: "127.0.0.1:8002", GossipAddr: "127.0.0.1:7002", State: peer.Alive, Since: time.Now().Add(-(2*time.Hour + 3*time.Minute + 30*time.Second)).Round(0).UTC(),
					Clock: &peer.PeerOffset{Offset: 1500 * time.Microsecond, RTT: time.Millisecond}},
				{ID: "node-c", HTTPAddr: "127.0.0.1:8003", GossipAddr: "127.0.0.1:7003", State: peer.Dead, Since: time.Now().Add(-(3*time.Minute + 20*time.Second)).Round(0).UTC(),
					Clock: &peer.PeerOffset{Offset: -501 * time.Millisecond, Refused: true}},
				{ID: "node-d", HTTPAddr: "127.0.0.1:8004", GossipAddr: "127.0.0.1:7004", State: peer.Left},
			},
			Transfers:    []peer.Transfer{},
			HintsPending: map[string]int64{"node-c": 42},
			Ownership:    map[string]float64{"node-a": 0.3125, "node-b": 0.34375, "node-c": 0.34375},
		},
		owners: peer.RingOwners{
			Token:  "00c0ffee00c0ffee",
			Owners: []string{"node-b", "node-c", "node-a"},
			Addrs:  []string{"127.0.0.1:8002", "127.0.0.1:8003", "127.0.0.1:8001"},
		},
	}
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	writeErr := func(w http.ResponseWriter, code int, msg string) {
		writeJSON(w, code, map[string]string{"error": msg})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writeErr(w, 405, "method not allowed")
			return
		}
		writeJSON(w, 200, f.status)
	})
	mux.HandleFunc("/v1/ring", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		if key == "" {
			writeErr(w, 400, "missing key")
			return
		}
		o := f.owners
		o.Key = key
		writeJSON(w, 200, o)
	})
	mux.HandleFunc("/v1/cluster/remove", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeErr(w, 405, "method not allowed")
			return
		}
		switch id := r.URL.Query().Get("id"); id {
		case "node-c":
			writeJSON(w, 200, map[string]string{"status": "removed", "id": id})
		case "node-b":
			writeErr(w, 409, `peer: member is alive: node-b is alive; remove only a node that is gone for good`)
		default:
			writeErr(w, 404, `peer: no such member: "`+id+`"`)
		}
	})
	mux.HandleFunc("/v1/cluster/leave", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, 501, "this node does not run clustering")
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeCluster) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return ""
	}
	return f.requests[len(f.requests)-1]
}

// runCluster runs 'ringkv cluster args...' in-process.
func runCluster(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"cluster"}, args...), nil, &out, &errb)
	return out.String(), errb.String(), code
}

// oneLineErr fails unless stderr is exactly one line containing want.
func oneLineErr(t *testing.T, args []string, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.HasPrefix(stderr, "ringkv cluster: ") || !strings.Contains(stderr, want) {
		t.Fatalf("ringkv cluster %q: stderr %q; want one 'ringkv cluster: ' line containing %q", args, stderr, want)
	}
}

func TestClusterStatusTable(t *testing.T) {
	t.Chdir(t.TempDir())
	f, addr := newFakeCluster(t)
	out, errs, code := runCluster(t, "status", "--addr", addr)
	if code != exitOK || errs != "" {
		t.Fatalf("status: exit %d, stderr %q", code, errs)
	}
	if f.last() != "GET /v1/cluster" {
		t.Fatalf("status sent %q", f.last())
	}
	for _, want := range []string{
		"cluster seen by node-a: 4 members (2 alive, 1 dead, 1 left); replicas 3, vnodes 128",
		"HINTS PENDING",
		"transfers: none",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("status output lacks %q:\n%s", want, out)
		}
	}
	// One row per member, in the server's order, with its columns.
	rows := map[string][]string{}
	var order []string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.HasPrefix(fields[0], "node-") {
			if fields[1] == "*" { // the self marker
				fields = append([]string{fields[0] + " *"}, fields[2:]...)
			}
			id := strings.TrimSuffix(fields[0], " *")
			rows[id] = fields
			order = append(order, id)
		}
	}
	if !reflect.DeepEqual(order, []string{"node-a", "node-b", "node-c", "node-d"}) {
		t.Fatalf("rows %v:\n%s", order, out)
	}
	want := map[string][]string{
		"node-a": {"node-a *", "127.0.0.1:8001", "127.0.0.1:7001", "alive", "2d2h", "self", "31.2%", "0"},
		"node-b": {"node-b", "127.0.0.1:8002", "127.0.0.1:7002", "alive", "2h3m", "+1.5ms", "34.4%", "0"},
		"node-c": {"node-c", "127.0.0.1:8003", "127.0.0.1:7003", "dead", "3m20s", "refused", "34.4%", "42"},
		"node-d": {"node-d", "127.0.0.1:8004", "127.0.0.1:7004", "left", "-", "-", "-", "0"},
	}
	for id, w := range want {
		if !reflect.DeepEqual(rows[id], w) {
			t.Fatalf("row of %s = %q, want %q\n%s", id, rows[id], w, out)
		}
	}
	// The columns line up: every row's STATE starts where the header's does.
	lines := strings.Split(out, "\n")
	var header string
	for _, l := range lines {
		if strings.HasPrefix(l, "ID ") {
			header = l
		}
	}
	col := strings.Index(header, "STATE")
	for _, l := range lines {
		if strings.HasPrefix(l, "node-") && !strings.HasPrefix(l[col:], "alive") && !strings.HasPrefix(l[col:], "dead") && !strings.HasPrefix(l[col:], "left") {
			t.Fatalf("columns not aligned:\n%s", out)
		}
	}

	// Transfers in flight and hints for an id no longer listed still show.
	f.status.Transfers = []peer.Transfer{{Range: "(00, 7f]", From: "node-a", To: "node-b", RangesDone: 5, RangesTotal: 20,
		BytesDone: 3 << 20, BytesTotal: 12 << 20, Rate: 1 << 20, ETASeconds: 15, Attempts: 2, LastError: "node-a is down"}}
	f.status.HintsPending["node-z"] = 7
	out, _, code = runCluster(t, "status", "--addr", addr)
	if code != exitOK || !strings.Contains(out, "transfers in flight: 1") ||
		!strings.Contains(out, "node-b <- node-a [#####---------------] 5/20 ranges, 3.0MiB of ~12.0MiB at 1.0MiB/s, ETA 15s, now (00, 7f]; 2 failed attempts, last: node-a is down") {
		t.Fatalf("status with a transfer: exit %d\n%s", code, out)
	}
	if !regexpLine(out, "node-z", "unknown", "-", "-", "-", "7") {
		t.Fatalf("hints for an unlisted id not shown:\n%s", out)
	}
}

// regexpLine reports whether some line of s has these fields in this order.
func regexpLine(s string, fields ...string) bool {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		i := 0
		for _, x := range f {
			if i < len(fields) && x == fields[i] {
				i++
			}
		}
		if i == len(fields) {
			return true
		}
	}
	return false
}

func TestClusterStatusJSON(t *testing.T) {
	t.Chdir(t.TempDir())
	f, addr := newFakeCluster(t)
	out, errs, code := runCluster(t, "--json", "status", "--addr", addr)
	if code != exitOK || errs != "" {
		t.Fatalf("status --json: exit %d, stderr %q", code, errs)
	}
	var got peer.ClusterStatus
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status --json printed no JSON: %v\n%s", err, out)
	}
	want := f.status
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status --json = %+v, want %+v", got, want)
	}
}

func TestClusterRing(t *testing.T) {
	t.Chdir(t.TempDir())
	f, addr := newFakeCluster(t)
	key := "user/1 &?=%"
	out, errs, code := runCluster(t, "ring", key, "--addr", addr)
	if code != exitOK || errs != "" {
		t.Fatalf("ring: exit %d, stderr %q", code, errs)
	}
	if f.last() != "GET /v1/ring?key=user%2F1+%26%3F%3D%25" {
		t.Fatalf("ring sent %q", f.last())
	}
	if !strings.Contains(out, `key    "user/1 &?=%"`) || !strings.Contains(out, "token  00c0ffee00c0ffee") {
		t.Fatalf("ring output lacks the key or token:\n%s", out)
	}
	var owners [][]string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] != "#" {
			owners = append(owners, f)
		}
	}
	want := [][]string{
		{"1", "node-b", "127.0.0.1:8002", "primary"},
		{"2", "node-c", "127.0.0.1:8003", "replica"},
		{"3", "node-a", "127.0.0.1:8001", "replica"},
	}
	if !reflect.DeepEqual(owners, want) {
		t.Fatalf("owners %q, want %q\n%s", owners, want, out)
	}

	out, _, code = runCluster(t, "ring", "k", "--json", "--addr", addr)
	var o peer.RingOwners
	if code != exitOK || json.Unmarshal([]byte(out), &o) != nil || o.Key != "k" || len(o.Owners) != 3 {
		t.Fatalf("ring --json: exit %d\n%s", code, out)
	}
}

func TestClusterRemoveAndLeave(t *testing.T) {
	t.Chdir(t.TempDir())
	f, addr := newFakeCluster(t)
	out, errs, code := runCluster(t, "remove", "node-c", "--addr", addr)
	if code != exitOK || errs != "" || !strings.Contains(out, "removed node-c") {
		t.Fatalf("remove: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if f.last() != "POST /v1/cluster/remove?id=node-c" {
		t.Fatalf("remove sent %q", f.last())
	}
	out, _, code = runCluster(t, "remove", "node-c", "--json", "--addr", addr)
	if code != exitOK || !strings.Contains(out, `"status": "removed"`) {
		t.Fatalf("remove --json: exit %d, %q", code, out)
	}

	// The node refuses: exit 1 with its message on one line.
	for _, tc := range []struct{ id, want string }{
		{"node-b", "409 Conflict: peer: member is alive: node-b is alive"},
		{"nobody", `404 Not Found: peer: no such member: "nobody"`},
	} {
		args := []string{"remove", tc.id, "--addr", addr}
		out, errs, code := runCluster(t, args...)
		if code != exitFailure || out != "" {
			t.Fatalf("remove %s: exit %d stdout %q, want exit 1", tc.id, code, out)
		}
		oneLineErr(t, args, errs, tc.want)
	}

	// A node that cannot leave says so: exit 2 (the process test
	// TestClusterLeave follows a real leave).
	args := []string{"leave", "--addr", addr}
	out, errs, code = runCluster(t, args...)
	if code != exitUsage || out != "" {
		t.Fatalf("leave: exit %d stdout %q, want exit 2", code, out)
	}
	oneLineErr(t, args, errs, "leave: 501 Not Implemented: this node does not run clustering")
	if f.last() != "POST /v1/cluster/leave" {
		t.Fatalf("leave sent %q", f.last())
	}
}

func TestClusterUsageAndErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	_, addr := newFakeCluster(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "want a command"},
		{[]string{"explode"}, `unknown command "explode"`},
		{[]string{"ring"}, "ring wants 1 argument(s), got 0"},
		{[]string{"ring", "a", "b"}, "ring wants 1 argument(s), got 2"},
		{[]string{"ring", ""}, "must not be empty"},
		{[]string{"remove"}, "remove wants 1 argument(s), got 0"},
		{[]string{"status", "extra"}, "status wants 0 argument(s), got 1"},
		{[]string{"status", "--nope"}, "unknown flag --nope"},
		{[]string{"status", "--timeout", "soon"}, "--timeout"},
		{[]string{"status", "--timeout", "0s"}, "--timeout"},
		// A node that cannot be reached is exit 2.
		{[]string{"status", "--addr", freeAddr(t), "--timeout", "2s"}, "status: cannot reach"},
		{[]string{"remove", "x", "--addr", freeAddr(t), "--timeout", "2s"}, "remove: cannot reach"},
	} {
		out, errs, code := runCluster(t, tc.args...)
		if code != exitUsage || out != "" {
			t.Fatalf("ringkv cluster %q: exit %d stdout %q; want exit 2", tc.args, code, out)
		}
		oneLineErr(t, tc.args, errs, tc.want)
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"status", "-h"}, {"--help"}} {
		out, errs, code := runCluster(t, args...)
		if code != exitOK || errs != "" || !strings.Contains(out, "usage: ringkv cluster") || !strings.Contains(out, "-addr") {
			t.Fatalf("ringkv cluster %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	_ = addr
}

// TestClusterNodeAnswers: answers that are not a cluster's.
func TestClusterNodeAnswers(t *testing.T) {
	t.Chdir(t.TempDir())
	mux := http.NewServeMux()
	// A single node without clustering answers 501.
	mux.HandleFunc("/v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(501)
		w.Write([]byte(`{"error":"this node does not run clustering"}` + "\n"))
	})
	// Something that is not ringkv.
	mux.HandleFunc("/v1/ring", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>hello</html>"))
	})
	mux.HandleFunc("/v1/cluster/remove", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write([]byte("internal\nerror\nwith lines"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"status"}, exitUsage, "status: 501 Not Implemented: this node does not run clustering"},
		{[]string{"ring", "k"}, exitUsage, "ring: malformed answer from"},
		{[]string{"remove", "x"}, exitFailure, "remove: 500 Internal Server Error: internal ..."},
	} {
		args := append(tc.args, "--addr", srv.URL) // an http:// URL works too
		out, errs, code := runCluster(t, args...)
		if code != tc.wantCode || out != "" {
			t.Fatalf("ringkv cluster %q: exit %d stdout %q; want exit %d", args, code, out, tc.wantCode)
		}
		oneLineErr(t, args, errs, tc.want)
	}
}

// TestClusterAddrFromEnv: --addr defaults to RINGKV_ADDR, else
// NODE_ADDRESS (go-kvstore's forms), and the flag beats both.
func TestClusterAddrFromEnv(t *testing.T) {
	t.Chdir(t.TempDir())
	f, addr := newFakeCluster(t)
	_, port, _ := strings.Cut(addr, ":")

	t.Setenv("NODE_ADDRESS", "http://127.0.0.1:"+port+"/")
	if _, errs, code := runCluster(t, "status"); code != exitOK {
		t.Fatalf("NODE_ADDRESS: exit %d %q", code, errs)
	}
	t.Setenv("NODE_ADDRESS", ":"+port)
	if _, errs, code := runCluster(t, "status"); code != exitOK {
		t.Fatalf("NODE_ADDRESS=:PORT: exit %d %q", code, errs)
	}
	t.Setenv("RINGKV_ADDR", addr)
	t.Setenv("NODE_ADDRESS", freeAddr(t))
	if _, errs, code := runCluster(t, "status"); code != exitOK {
		t.Fatalf("RINGKV_ADDR over NODE_ADDRESS: exit %d %q", code, errs)
	}
	t.Setenv("RINGKV_ADDR", freeAddr(t))
	if _, errs, code := runCluster(t, "status", "--addr", addr); code != exitOK {
		t.Fatalf("--addr over RINGKV_ADDR: exit %d %q", code, errs)
	}
	if _, errs, code := runCluster(t, "status", "--timeout", "2s"); code != exitUsage || !strings.Contains(errs, "cannot reach") {
		t.Fatalf("RINGKV_ADDR unreachable: exit %d %q", code, errs)
	}
	_ = f
}

// A node handing its ranges over may miss a status poll; 'cluster leave'
// keeps following the leave instead of reporting a failure it is not.
func TestClusterLeaveRidesOutMissedPolls(t *testing.T) {
	t.Chdir(t.TempDir())
	var polls atomic.Int32
	var down atomic.Bool // every poll fails
	down.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cluster/leave", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"leaving"}`))
	})
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		n := polls.Add(1)
		switch {
		case down.Load() || n <= 3:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"busy"}`))
		case n <= 5:
			w.Write([]byte(`{"self":"node-a","leave":"handing over 2 of 4 ranges"}`))
		default:
			w.Write([]byte(`{"self":"node-a","leave":"left"}`))
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// Polls that keep failing end the wait at --wait, with the last error.
	args := []string{"leave", "--addr", addr, "--wait", "1s"}
	out, errs, code := runCluster(t, args...)
	if code != exitFailure || !strings.Contains(out, "is leaving") || polls.Load() < 2 {
		t.Fatalf("leave with a silent node: exit %d stdout %q after %d polls, want exit 1 after several", code, out, polls.Load())
	}
	oneLineErr(t, args, errs, "leave: 503 Service Unavailable: busy")
	if !strings.Contains(errs, "goes on in the background") {
		t.Errorf("--wait over while polls fail: %q does not say the leave goes on", errs)
	}

	// A node that stops answering altogether: after the grace, the poll's
	// own error and code (2: cannot be reached); at --wait, 1.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	goneAddr := strings.TrimPrefix(gone.URL, "http://")
	for _, tc := range []struct {
		wait, grace time.Duration
		code        int
	}{{time.Minute, 300 * time.Millisecond, exitUsage}, {300 * time.Millisecond, time.Minute, exitFailure}} {
		var stdout, stderr bytes.Buffer
		cl, err := client.Config{Addrs: []string{goneAddr}, Timeout: time.Second}.New()
		if err != nil {
			t.Fatal(err)
		}
		cc := &clusterCmdCtx{ctx: context.Background(), cl: cl, sub: "leave", stdout: &stdout, stderr: &stderr}
		if code := cc.waitLeft(tc.wait, tc.grace); code != tc.code {
			t.Errorf("--wait %s, grace %s on a node that is gone: exit %d, want %d", tc.wait, tc.grace, code, tc.code)
		}
		oneLineErr(t, []string{"leave"}, stderr.String(), "cannot reach "+goneAddr)
	}

	// A few missed polls are ridden out: the leave is followed to its end.
	down.Store(false)
	polls.Store(0)
	out, errs, code = runCluster(t, "leave", "--addr", addr, "--wait", "1m")
	if code != exitOK || errs != "" || !strings.Contains(out, "handing over 2 of 4 ranges") || !strings.Contains(out, "has left") {
		t.Fatalf("leave: exit %d stdout %q stderr %q; want exit 0 after the progress and 'has left'", code, out, errs)
	}
}
