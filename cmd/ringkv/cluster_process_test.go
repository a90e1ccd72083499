package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// These tests run clusters of real ringkv processes on loopback: joining
// by gossip, SIGKILL and restart on the same data directory, hinted
// handoff, the cluster secret, and go-kvstore's /add-node.

// cnode is one cluster node across restarts: its identity, data directory
// and addresses stay, its process changes.
type cnode struct {
	t      *testing.T
	id     string
	dir    string
	http   string
	gossip string
	args   []string // extra serve flags, on every start
	netns  string   // the network namespace it runs in (a netLab host), or ""
	env    []string // extra environment, on every start
	bin    string   // the binary, if not ringkvBinary's
	p      *proc    // the current process
	all    []*proc  // every process, for the logs of a failed test
}

// freeGossipAddr returns a loopback address whose port is free for both
// TCP and UDP (memberlist uses both), and not in taken.
func freeGossipAddr(t *testing.T, taken map[string]bool) string {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		if !taken[addr] {
			taken[addr] = true
			return addr
		}
	}
	t.Fatal("no free port for gossip")
	return ""
}

// newCluster makes n node descriptions (ids n1, n2, ...) with distinct free
// addresses; nothing is started.
func newCluster(t *testing.T, n int, args ...string) []*cnode {
	t.Helper()
	taken := map[string]bool{}
	var nodes []*cnode
	for i := range n {
		nodes = append(nodes, &cnode{
			t: t, id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(),
			http: freeGossipAddr(t, taken), gossip: freeGossipAddr(t, taken), args: args,
		})
	}
	// On failure, show what each process said (the end of it).
	t.Cleanup(func() {
		if t.Failed() {
			showLogs(t, nodes)
		}
	})
	return nodes
}

// showLogs logs the end of what each process of nodes said.
func showLogs(t *testing.T, nodes []*cnode) {
	for _, c := range nodes {
		for i, p := range c.all {
			logs := p.logs.String()
			if len(logs) > 6000 {
				logs = "...\n" + logs[len(logs)-6000:]
			}
			t.Logf("--- logs of %s (process %d) ---\n%s", c.id, i+1, logs)
		}
	}
}

// start starts the node's process with extra flags for this start only
// and waits until it serves.
func (c *cnode) start(extra ...string) {
	c.t.Helper()
	args := []string{"serve", "--node-id", c.id, "--data-dir", c.dir, "--http-addr", c.http, "--gossip-addr", c.gossip}
	args = append(append(args, c.args...), extra...)
	c.p = startProcIn(c.t, c.netns, c.bin, c.env, args...)
	c.all = append(c.all, c.p)
	c.p.waitHealthy()
}

// kill9 SIGKILLs the node's process and waits for it to be gone.
func (c *cnode) kill9() {
	c.t.Helper()
	if err := c.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", c.id, err)
	}
	select {
	case <-c.p.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s did not die within 10s of SIGKILL", c.id)
	}
}

func (c *cnode) running() bool {
	select {
	case <-c.p.done:
		return false
	default:
		return true
	}
}

// chc is the tests' HTTP client: every call is bounded.
var chc = &http.Client{Timeout: 15 * time.Second}

// call makes one HTTP request and returns the status and body.
func call(method, u, body string) (int, []byte, error) {
	var r io.Reader
	if body != "" || method == http.MethodPut {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Ringkv-Request", "1") // admin POSTs need it
	resp, err := chc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func kvURL(addr, key, consistency string) string {
	u := "http://" + addr + "/v1/kv/" + url.PathEscape(key)
	if consistency != "" {
		u += "?consistency=" + consistency
	}
	return u
}

// status returns GET /v1/cluster of the node at addr.
func status(addr string) (peer.ClusterStatus, error) {
	var st peer.ClusterStatus
	code, b, err := call(http.MethodGet, "http://"+addr+"/v1/cluster", "")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET /v1/cluster: %d %s", code, b)
	}
	return st, json.Unmarshal(b, &st)
}

// memberStates summarizes a status as "id=state" in id order.
func memberStates(st peer.ClusterStatus) string {
	var s []string
	for _, m := range st.Members {
		s = append(s, m.ID+"="+string(m.State))
	}
	return strings.Join(s, " ")
}

// allAlive reports whether st lists exactly the ids, all alive.
func allAlive(st peer.ClusterStatus, ids ...string) bool {
	if len(st.Members) != len(ids) {
		return false
	}
	for _, m := range st.Members {
		if !slices.Contains(ids, m.ID) || m.State != peer.Alive {
			return false
		}
	}
	return true
}

func hintsTotal(st peer.ClusterStatus) int64 {
	var n int64
	for _, v := range st.HintsPending {
		n += v
	}
	return n
}

// poll calls f until it reports done, failing the test after timeout with
// f's last word on why not.
func poll(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	why, done := "", false
	defer func() {
		if !done {
			t.Logf("%s: last: %s", what, why)
		}
	}()
	wait.For(t, timeout, func() bool {
		ok, w := f()
		why = w
		return ok
	}, what)
	done = true
}

// waitAllAlive polls every node until each sees exactly these members alive.
func waitAllAlive(t *testing.T, timeout time.Duration, nodes []*cnode) {
	t.Helper()
	var ids []string
	for _, c := range nodes {
		ids = append(ids, c.id)
	}
	poll(t, timeout, "every node sees "+strings.Join(ids, ",")+" alive", func() (bool, string) { return seesAll(nodes) })
}

// startJoined starts nodes[0], then the others with --join nodes[0], and
// waits until every node sees all of them alive.
func startJoined(t *testing.T, nodes []*cnode) {
	t.Helper()
	nodes[0].start()
	for _, c := range nodes[1:] {
		c.start("--join", nodes[0].gossip)
	}
	waitAllAlive(t, 30*time.Second, nodes)
}

// hintsMetric sums ringkv_hints_pending{node=target} at /metrics of addr.
func hintsMetric(t *testing.T, addr, target string) float64 {
	t.Helper()
	code, b, err := call(http.MethodGet, "http://"+addr+"/metrics", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %v", addr, code, err)
	}
	var sum float64
	want := `ringkv_hints_pending{node="` + target + `"} `
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("bad metric line %q", sc.Text())
			}
			sum += f
		}
	}
	return sum
}

// runRingkv runs the binary as a client, bounded, outside any .env.
func runRingkv(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	// Longer than any --wait a test passes (60s), so the command's own
	// answer is what the test sees.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ringkvBinary(t), args...)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ringkv %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestClusterJoinKillRestart: three nodes join by gossip; with one killed,
// quorum writes still succeed at once and keep hints for it; restarted on
// its directory it rejoins from its stored member list, takes its hints,
// and then holds every write alone.
func TestClusterJoinKillRestart(t *testing.T) {
	ringkvBinary(t) // skip under -short before starting anything
	nodes := newCluster(t, 3, "--replicas", "3")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	t0 := time.Now()
	stage := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	startJoined(t, nodes)
	stage("3 nodes joined")

	// The CLI shows the cluster.
	out, errs, code := runRingkv(t, "cluster", "status", "--addr", n2.http)
	if code != 0 {
		t.Fatalf("ringkv cluster status: exit %d %s", code, errs)
	}
	for _, c := range nodes {
		if !regexpLine(out, c.id, c.http, c.gossip, "alive") {
			t.Fatalf("cluster status lacks a row for %s (%s %s alive):\n%s", c.id, c.http, c.gossip, out)
		}
	}
	if !strings.Contains(out, "cluster seen by n2: 3 members (3 alive); replicas 3, vnodes 128") {
		t.Fatalf("cluster status header:\n%s", out)
	}
	code, b, err := call(http.MethodGet, "http://"+n3.http+"/v1/ring?key=some-key", "")
	var ro peer.RingOwners
	if err != nil || code != 200 || json.Unmarshal(b, &ro) != nil || len(ro.Owners) != 3 {
		t.Fatalf("GET /v1/ring: %d %s %v", code, b, err)
	}
	out, errs, code = runRingkv(t, "cluster", "ring", "some-key", "--addr", n1.http)
	if code != 0 || !strings.Contains(out, "token  "+ro.Token) {
		t.Fatalf("ringkv cluster ring: exit %d %s\n%s", code, errs, out)
	}
	for i, id := range ro.Owners {
		role := "replica"
		if i == 0 {
			role = "primary"
		}
		if !regexpLine(out, strconv.Itoa(i+1), id, ro.Addrs[i], role) {
			t.Fatalf("cluster ring: owner %d should be %s %s %s (as node 3 says):\n%s", i+1, id, ro.Addrs[i], role, out)
		}
	}

	latest := map[string]string{} // key -> newest acknowledged value
	put := func(c *cnode, key, val, consistency string) (int, []byte) {
		t.Helper()
		code, b, err := call(http.MethodPut, kvURL(c.http, key, consistency), val)
		if err != nil {
			t.Fatalf("PUT %s via %s: %v", key, c.id, err)
		}
		if code == http.StatusNoContent {
			latest[key] = val
		}
		return code, b
	}
	mustPut := func(c *cnode, key, val string) {
		t.Helper()
		if code, b := put(c, key, val, "quorum"); code != http.StatusNoContent {
			t.Fatalf("PUT %s at quorum via %s: %d %s", key, c.id, code, b)
		}
	}
	for i := range 200 {
		mustPut(nodes[i%3], fmt.Sprintf("jkr/%03d", i), fmt.Sprintf("before-%d", i))
	}

	// Node 3 dies. Quorum writes through nodes 1 and 2 succeed at once,
	// before and after the others notice; consistency=all cannot.
	stage("200 keys written")
	n3.kill9()
	stage("node 3 killed")
	live := []*cnode{n1, n2}
	wantUnavailable := func(when string) {
		t.Helper()
		t0 := time.Now()
		code, b := put(n1, "jkr/all", "x", "all")
		var e struct{ Error string }
		if code != http.StatusServiceUnavailable || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "put needs 3 replicas") {
			t.Fatalf("%s: PUT consistency=all = %d %q; want 503 with a JSON error", when, code, b)
		}
		t.Logf("%s: consistency=all: 503 %q in %s", when, e.Error, time.Since(t0).Round(time.Millisecond))
	}
	for i := range 100 {
		mustPut(live[i%2], fmt.Sprintf("jkr/%03d", 2*i), fmt.Sprintf("during-%d", 2*i))
	}
	wantUnavailable("just after the kill")
	poll(t, 30*time.Second, "node 1 notices node 3 is down", func() (bool, string) {
		st, err := status(n1.http)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range st.Members {
			if m.ID == "n3" && m.State != peer.Alive {
				return true, ""
			}
		}
		return false, memberStates(st)
	})
	stage("node 1 sees node 3 down")
	for i := range 100 {
		mustPut(live[i%2], fmt.Sprintf("jkr/%03d", 200+i), fmt.Sprintf("down-%d", 200+i))
		mustPut(live[i%2], fmt.Sprintf("jkr/%03d", 2*i+1), fmt.Sprintf("down-%d", 2*i+1))
	}
	wantUnavailable("once node 3 is known down")
	h1, h2 := hintsMetric(t, n1.http, "n3"), hintsMetric(t, n2.http, "n3")
	st1, _ := status(n1.http)
	st2, _ := status(n2.http)
	t.Logf("hints for n3: ringkv_hints_pending %v on n1, %v on n2; /v1/cluster hints_pending %v on n1, %v on n2", h1, h2, st1.HintsPending, st2.HintsPending)
	if h1+h2 == 0 || st1.HintsPending["n3"]+st2.HintsPending["n3"] == 0 {
		t.Fatal("no hints kept for the dead node")
	}

	// Node 3 comes back on its directory and addresses, with no --join: it
	// finds the cluster from its stored member list and gets its hints.
	n3.start()
	stage("node 3 restarted")
	poll(t, 30*time.Second, "nodes 1 and 2 deliver their hints to node 3", func() (bool, string) {
		var why []string
		for _, c := range live {
			st, err := status(c.http)
			if err != nil {
				return false, err.Error()
			}
			if len(st.HintsPending) > 0 || !allAlive(st, "n1", "n2", "n3") {
				why = append(why, fmt.Sprintf("%s: hints %v, members %s", c.id, st.HintsPending, memberStates(st)))
			}
		}
		return len(why) == 0, strings.Join(why, "; ")
	})
	if h := hintsMetric(t, n1.http, "n3") + hintsMetric(t, n2.http, "n3"); h != 0 {
		t.Fatalf("ringkv_hints_pending for n3 = %v after replay", h)
	}

	stage("hints delivered")
	// Node 3 alone holds every write, the ones made while it was down too.
	n1.kill9()
	n2.kill9()
	for key, want := range latest {
		code, b, err := call(http.MethodGet, kvURL(n3.http, key, "one"), "")
		if err != nil || code != http.StatusOK || string(b) != want {
			t.Fatalf("GET %s from node 3 alone: %d %q %v; want %q", key, code, b, err, want)
		}
	}
	t.Logf("node 3 alone served all %d keys with their newest values", len(latest))
}

// TestClusterSecret: nodes sharing --cluster-secret join and replicate;
// internode calls without it are refused. (That a node with another
// secret cannot join is peer/membership's TestGossipRefusesMembersWithoutTheKey.)
func TestClusterSecret(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 2, "--replicas", "3")
	n1, n2 := nodes[0], nodes[1]
	n1.args = append(n1.args, "--cluster-secret", "s3cret")
	n2.args = append(n2.args, "--cluster-secret", "s3cret")
	startJoined(t, nodes)

	// Replication works with the secret: a write that needs both nodes.
	if code, b, err := call(http.MethodPut, kvURL(n1.http, "secret/k", "all"), "v"); err != nil || code != http.StatusNoContent {
		t.Fatalf("PUT consistency=all: %d %s %v", code, b, err)
	}
	if code, b, err := call(http.MethodGet, kvURL(n2.http, "secret/k", "one"), ""); err != nil || code != 200 || string(b) != "v" {
		t.Fatalf("GET from node 2 at one: %d %q %v", code, b, err)
	}

	// Internode calls need the secret: 401 without it or with another.
	for _, secret := range []string{"", "wrong"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+n1.http+"/internal/apply", strings.NewReader("junk"))
		if secret != "" {
			req.Header.Set("X-Ringkv-Secret", secret)
		}
		resp, err := chc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Fatalf("POST /internal/apply with secret %q: %d %q; want 401 with a JSON error", secret, resp.StatusCode, b)
		}
	}
	// The raw secret is no credential: calls are signed with a key derived
	// from it (TestSignedInternodeCalls).
	req, _ := http.NewRequest(http.MethodPost, "http://"+n1.http+"/internal/apply", strings.NewReader("junk"))
	req.Header.Set("X-Ringkv-Secret", "s3cret")
	resp, err := chc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /internal/apply with the raw secret: %d, want 401", resp.StatusCode)
	}
}

// TestClusterAddNodeCompat: go-kvstore's /add-node and /list-nodes.
func TestClusterAddNodeCompat(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 2)
	a, b := nodes[0], nodes[1]
	a.start()
	b.start() // no --join
	listNodes := func(c *cnode) string {
		code, body, err := call(http.MethodGet, "http://"+c.http+"/list-nodes", "")
		if err != nil || code != 200 {
			t.Fatalf("GET /list-nodes on %s: %d %v", c.id, code, err)
		}
		return string(body)
	}
	if got := listNodes(b); got != "node: "+b.http+"\n" {
		t.Fatalf("before /add-node, B lists %q", got)
	}
	// POST: GET needs --kvstore-add-node-get. Without a cluster secret
	// it is served to loopback clients only, as here.
	code, body, err := call(http.MethodPost, "http://"+b.http+"/add-node?address="+url.QueryEscape(a.http), "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /add-node: %d %q %v", code, body, err)
	}
	want := []string{"node: " + a.http, "node: " + b.http}
	slices.Sort(want)
	poll(t, 20*time.Second, "A and B list each other", func() (bool, string) {
		for _, c := range nodes {
			got := listNodes(c)
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			slices.Sort(lines)
			if !slices.Equal(lines, want) {
				return false, fmt.Sprintf("%s lists %q", c.id, got)
			}
		}
		return true, ""
	})
	// And they are one cluster: a write needing both succeeds.
	if code, body, err := call(http.MethodPut, kvURL(b.http, "compat/k", "all"), "v"); err != nil || code != http.StatusNoContent {
		t.Fatalf("PUT consistency=all after /add-node: %d %q %v", code, body, err)
	}
}

// The checker's history.

// write is one PUT, or DELETE (del), the workload issued.
type write struct {
	key, val   string // val names a delete too, for the history
	del        bool
	start, end time.Time
	acked      bool // 204
	// answered: the node answered (204 or an error status), so the
	// write's timestamp was taken before end. Otherwise (no answer, a
	// timeout, a reset) it may take effect at any time.
	answered bool
	outcome  string
	via      string
}

// read is one successful GET the workload issued.
type read struct {
	key, val   string
	found      bool
	start, end time.Time
	via        string
}

// history is every operation of the workload, for the checks.
type history struct {
	t0     time.Time
	writes []write
	reads  []read
	byVal  map[string]int   // value -> index in writes
	byKey  map[string][]int // key -> indexes in writes (checkRead builds it)
	events []string         // kills and restarts, as text with times
}

func (h *history) at(t time.Time) string {
	return fmt.Sprintf("%.3fs", t.Sub(h.t0).Seconds())
}

func (h *history) describeWrite(w write) string {
	end := h.at(w.end)
	if !w.answered {
		end += "?"
	}
	if w.del {
		return fmt.Sprintf("delete %s (%s) via %s [%s, %s] %s", w.key, w.val, w.via, h.at(w.start), end, w.outcome)
	}
	return fmt.Sprintf("put %s=%s via %s [%s, %s] %s", w.key, w.val, w.via, h.at(w.start), end, w.outcome)
}

// keyHistory prints every operation on key in start order, and the events.
func (h *history) keyHistory(key string) string {
	type line struct {
		at time.Time
		s  string
	}
	var ls []line
	for _, w := range h.writes {
		if w.key == key {
			ls = append(ls, line{w.start, h.describeWrite(w)})
		}
	}
	for _, r := range h.reads {
		if r.key == key {
			v := r.val
			if !r.found {
				v = "(not found)"
			}
			ls = append(ls, line{r.start, fmt.Sprintf("get %s -> %s via %s [%s, %s]", r.key, v, r.via, h.at(r.start), h.at(r.end))})
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].at.Before(ls[j].at) })
	var b strings.Builder
	for _, l := range ls {
		b.WriteString("  " + l.s + "\n")
	}
	b.WriteString("  events: " + strings.Join(h.events, "; ") + "\n")
	return b.String()
}

// checkRead checks one read of key that started at start and returned
// (val, found) against the writes (puts and deletes): the value must come
// from a put of key, and neither it nor, for a read that found nothing,
// every delete of key may have ended before the newest acknowledged write
// (acknowledged before the read started) was issued. Since LWW orders
// writes by timestamp, and a timestamp is taken within a write's span,
// such an older write cannot beat the newer acknowledged one on the W
// replicas it reached, which every R-replica read meets when R+W > N. So
// an acknowledged write is never lost, no read is staler than the writes
// acknowledged before it began, and no acknowledged delete is undone.
// It returns "" or what is wrong.
func (h *history) checkRead(key, val string, found bool, start time.Time) string {
	if h.byKey == nil {
		// Index once: a campaign's history holds tens of thousands of
		// writes, and every read is checked against its key's.
		h.byKey = map[string][]int{}
		for i, w := range h.writes {
			h.byKey[w.key] = append(h.byKey[w.key], i)
		}
	}
	var newest *write // the acknowledged write, acknowledged before start, issued last
	for _, i := range h.byKey[key] {
		w := &h.writes[i]
		if w.acked && w.end.Before(start) && (newest == nil || w.start.After(newest.start)) {
			newest = w
		}
	}
	// older: w certainly took its timestamp before newest was issued.
	older := func(w write) bool { return newest != nil && w.answered && w.end.Before(newest.start) }
	if !found {
		if newest == nil || newest.del {
			return ""
		}
		for _, i := range h.byKey[key] {
			if w := h.writes[i]; w.del && !older(w) {
				return "" // a delete as new as newest, or newer
			}
		}
		return fmt.Sprintf("not found, but %s was acknowledged before the read", h.describeWrite(*newest))
	}
	i, ok := h.byVal[val]
	if !ok || h.writes[i].key != key || h.writes[i].del {
		return fmt.Sprintf("value %q was never written to %s", val, key)
	}
	if got := h.writes[i]; older(got) {
		return fmt.Sprintf("got %s, which ended before %s was issued", h.describeWrite(got), h.describeWrite(*newest))
	}
	return ""
}

// checkLoad is the checkers' clients: each runs quorum gets and puts (and,
// with deletes, deletes: 5, 4 and 1 in 10; else gets and puts half and
// half) of random keys prefix/000.. through random nodes until Stop,
// recording every operation for a history.
type checkLoad struct {
	clients, keys int
	prefix        string
	deletes       bool
	seed          uint64
	nodes         []*cnode

	stop   atomic.Bool
	wg     sync.WaitGroup
	writes [][]write
	reads  [][]read
	failed []int // reads that failed, unchecked
}

func (w *checkLoad) key(k int) string { return fmt.Sprintf("%s/%03d", w.prefix, k) }

// Start starts the clients.
func (w *checkLoad) Start() {
	w.writes, w.reads, w.failed = make([][]write, w.clients), make([][]read, w.clients), make([]int, w.clients)
	for c := range w.clients {
		crng := rand.New(rand.NewPCG(w.seed, uint64(c)+2))
		hc := &http.Client{Timeout: 8 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		w.wg.Go(func() {
			defer hc.CloseIdleConnections()
			for seq := 0; !w.stop.Load(); seq++ {
				key := w.key(crng.IntN(w.keys))
				via := w.nodes[crng.IntN(len(w.nodes))]
				op := crng.IntN(10)
				if op < 5 {
					w.get(c, hc, via, key)
					continue
				}
				wr := write{key: key, val: fmt.Sprintf("c%d-%d", c, seq), via: via.id, del: w.deletes && op == 9, start: time.Now()}
				method, body := http.MethodPut, io.Reader(strings.NewReader(wr.val))
				if wr.del {
					method, body = http.MethodDelete, nil
				}
				req, _ := http.NewRequest(method, kvURL(via.http, key, "quorum"), body)
				resp, err := hc.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					wr.answered = true
					wr.acked = resp.StatusCode == http.StatusNoContent
					wr.outcome = strconv.Itoa(resp.StatusCode)
					if !wr.acked {
						wr.outcome += " " + strings.TrimSpace(string(b))
					}
				} else {
					wr.outcome = "error: " + err.Error()
				}
				wr.end = time.Now()
				w.writes[c] = append(w.writes[c], wr)
			}
		})
	}
}

func (w *checkLoad) get(c int, hc *http.Client, via *cnode, key string) {
	r := read{key: key, via: via.id, start: time.Now()}
	resp, err := hc.Get(kvURL(via.http, key, "quorum"))
	if err != nil {
		w.failed[c]++
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	switch {
	case err != nil:
		w.failed[c]++
		return
	case resp.StatusCode == http.StatusOK:
		r.found, r.val = true, string(b)
	case resp.StatusCode != http.StatusNotFound:
		w.failed[c]++
		return
	}
	w.reads[c] = append(w.reads[c], r)
}

// Stop stops the clients and adds what they did to h.
func (w *checkLoad) Stop(h *history) {
	w.stop.Store(true)
	w.wg.Wait()
	for c := range w.clients {
		h.writes = append(h.writes, w.writes[c]...)
		h.reads = append(h.reads, w.reads[c]...)
	}
	for i, wr := range h.writes {
		h.byVal[wr.val] = i
	}
}

// Check waits for every hint to be delivered, then checks every read of
// the history and a final quorum read of every key (checkRead), logs what
// was checked, and fails the test on too little work or any violation.
func (w *checkLoad) Check(t *testing.T, h *history) (violations int) {
	t.Helper()
	poll(t, 90*time.Second, "hints drained", func() (bool, string) {
		for _, c := range w.nodes {
			st, err := status(c.http)
			if err != nil {
				return false, err.Error()
			}
			if hintsTotal(st) > 0 {
				return false, fmt.Sprintf("%s holds %v", c.id, st.HintsPending)
			}
		}
		return true, ""
	})
	h.events = append(h.events, h.at(time.Now())+" hints drained")
	var bad []string
	for _, r := range h.reads {
		if why := h.checkRead(r.key, r.val, r.found, r.start); why != "" {
			bad = append(bad, fmt.Sprintf("get %s via %s at %s: %s\n%s", r.key, r.via, h.at(r.start), why, h.keyHistory(r.key)))
		}
	}
	// No acknowledged write lost: a final quorum read of every key
	// returns its newest acknowledged write or a newer one.
	final := time.Now()
	for k := range w.keys {
		key := w.key(k)
		via := w.nodes[k%len(w.nodes)]
		code, b, err := call(http.MethodGet, kvURL(via.http, key, "quorum"), "")
		if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
			t.Fatalf("final read of %s via %s: %d %q %v", key, via.id, code, b, err)
		}
		if why := h.checkRead(key, string(b), code == http.StatusOK, final); why != "" {
			bad = append(bad, fmt.Sprintf("final get %s via %s: %s\n%s", key, via.id, why, h.keyHistory(key)))
		}
	}
	acked, deletes := 0, 0
	for _, wr := range h.writes {
		if wr.acked {
			acked++
			if wr.del {
				deletes++
			}
		}
	}
	failed := 0
	for _, n := range w.failed {
		failed += n
	}
	t.Logf("checked %d operations: %d writes (%d acknowledged, %d of them deletes), %d reads, and %d keys at the end; %d reads failed (unchecked); %d violations",
		len(h.writes)+len(h.reads), len(h.writes), acked, deletes, len(h.reads), w.keys, failed, len(bad))
	t.Logf("events: %s", strings.Join(h.events, "; "))
	if acked < 100 || len(h.reads) < 100 {
		t.Fatalf("too little work to check: %d acknowledged writes, %d reads", acked, len(h.reads))
	}
	for i, b := range bad {
		if i == 5 {
			t.Errorf("... and %d more violations", len(bad)-5)
			break
		}
		t.Error(b)
	}
	return len(bad)
}

// TestClusterChecker runs a concurrent workload of quorum reads and
// writes against three nodes (N=3, R=W=2) while nodes are killed and
// restarted, and checks the history: no acknowledged write is lost, and
// every read returns the newest acknowledged write of its key, or newer.
func TestClusterChecker(t *testing.T) {
	ringkvBinary(t)
	const duration = 14 * time.Second
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	nodes := newCluster(t, 3, "--replicas", "3", "--request-timeout", "3s")
	startJoined(t, nodes)

	h := &history{t0: time.Now(), byVal: map[string]int{}}
	wl := &checkLoad{clients: 4, keys: 200, prefix: "chk", seed: seed, nodes: nodes}
	wl.Start()
	event := func(format string, a ...any) {
		h.events = append(h.events, h.at(time.Now())+" "+fmt.Sprintf(format, a...))
	}
	// pause lets the workload run until d after its start.
	pause := func(d time.Duration) {
		if wait := time.Until(h.t0.Add(d)); wait > 0 {
			time.Sleep(wait)
		}
	}
	// Twice: kill a random node, restart it a few seconds later.
	for _, at := range []time.Duration{2 * time.Second, 8 * time.Second} {
		pause(at)
		victim := nodes[rng.IntN(len(nodes))]
		victim.kill9()
		event("killed %s", victim.id)
		pause(at + 3*time.Second)
		victim.start()
		event("restarted %s", victim.id)
	}
	pause(duration)
	wl.Stop(h)
	event("workload stopped")
	waitAllAlive(t, 30*time.Second, nodes)
	wl.Check(t, h)
}
