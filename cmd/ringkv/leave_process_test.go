package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterLeave: 'ringkv cluster leave' takes a loaded node out of a
// 3-node cluster (N=2): it returns once the other two hold its ranges, and
// with the node then killed they serve every key at consistency=all. Then
// a node run with --drain leaves on SIGTERM before it exits, and the last
// node alone holds everything. A node that left cannot start again on its
// old data directory.
func TestClusterLeave(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 3, "--replicas", "2")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.start()
	n2.start("--join", n1.gossip, "--drain")
	n3.start("--join", n1.gossip)
	waitAllAlive(t, 30*time.Second, nodes)
	const keys = 900
	for i := range keys {
		code, b, err := call(http.MethodPut, kvURL(nodes[i%3].http, fmt.Sprintf("lv/%04d", i), "all"), fmt.Sprint("v", i))
		if err != nil || code/100 != 2 {
			t.Fatalf("PUT: %d %s %v", code, b, err)
		}
	}
	out, errs, code := runRingkv(t, "cluster", "leave", "--addr", n3.http, "--wait", "60s")
	if code != 0 || !strings.Contains(out, "has left") {
		t.Fatalf("ringkv cluster leave: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("leave output:\n%s", out)
	// Killed the moment its leave is done, as a script that scales down
	// would: every member must have heard of it by then, or they would
	// show n3 dead for good.
	n3.kill9()
	for _, n := range []*cnode{n1, n2} {
		st, err := status(n.http)
		if err != nil || len(st.Members) != 3 || st.Members[2].ID != "n3" || st.Members[2].State != "left" {
			t.Fatalf("%s, once n3's leave was done: %s, %v", n.id, memberStates(st), err)
		}
	}
	for i := range keys {
		k := fmt.Sprintf("lv/%04d", i)
		code, b, err := call(http.MethodGet, kvURL(nodes[i%2].http, k, "all"), "")
		if err != nil || code != http.StatusOK || string(b) != fmt.Sprint("v", i) {
			t.Fatalf("GET %s at all after n3 left: %d %q %v", k, code, b, err)
		}
	}

	// n3, killed the moment its leave was done, refuses to come back on
	// its old directory: its copies are out of date.
	p := startProc(t, "", nil, "serve", "--node-id", "n3", "--data-dir", n3.dir, "--http-addr", n3.http, "--gossip-addr", n3.gossip, "--join", n1.gossip)
	if code := p.exitCode(30 * time.Second); code != 1 || !strings.Contains(p.logs.String(), "left the cluster or was removed from it") {
		t.Fatalf("n3 restarted on its old directory after leaving: exit %d\n%s", code, p.logs.String())
	}

	// SIGTERM with --drain: n2 hands over to n1 (alone: N=1) and exits 0.
	if err := n2.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := n2.p.exitCode(60 * time.Second); code != 0 {
		t.Fatalf("n2 with --drain exited %d", code)
	}
	if !strings.Contains(n2.p.logs.String(), "leave: left") {
		t.Errorf("n2's logs do not say it left:\n%s", n2.p.logs.String())
	}
	for i := range keys {
		k := fmt.Sprintf("lv/%04d", i)
		code, b, err := call(http.MethodGet, kvURL(n1.http, k, "all"), "")
		if err != nil || code != http.StatusOK || string(b) != fmt.Sprint("v", i) {
			t.Fatalf("GET %s from n1 alone: %d %q %v", k, code, b, err)
		}
	}
}
