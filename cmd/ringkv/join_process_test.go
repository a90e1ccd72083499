package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServeNotReadyWhileJoining: a brand-new node started with --join
// while nobody answers there forms no ring of its own: /healthz answers
// 503 "not ready" (reason joining) and /livez 200, for as long as it
// waits; once a node starts at the --join address, it joins, and both
// are ready with the two in one ring.
func TestServeNotReadyWhileJoining(t *testing.T) {
	nodes := newCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	n2.p = startProcIn(t, "", "", nil, "serve", "--node-id", n2.id, "--data-dir", n2.dir, "--http-addr", n2.http, "--gossip-addr", n2.gossip, "--join", n1.gossip)
	n2.all = append(n2.all, n2.p)
	poll(t, 30*time.Second, "n2 to answer /healthz 503 not ready, joining", func() (bool, string) {
		code, b, err := call(http.MethodGet, "http://"+n2.http+"/healthz", "")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(string(b), `"status":"not ready","reason":"joining"`), fmt.Sprint(code, string(b), err)
	})
	if code, b, err := call(http.MethodGet, "http://"+n2.http+"/livez", ""); err != nil || code != http.StatusOK {
		t.Fatalf("/livez while joining: %d %s %v", code, b, err)
	}
	if st, err := status(n2.http); err != nil || len(st.Ownership) != 0 {
		t.Fatalf("n2 while joining: ring ownership %v (%v), want no ring", st.Ownership, err)
	}
	n1.start() // founds (no --join)
	n2.p.waitHealthy()
	poll(t, 30*time.Second, "both to see one ring of the two", func() (bool, string) {
		for _, c := range nodes {
			st, err := status(c.http)
			if err != nil || len(st.Ownership) != 2 {
				return false, fmt.Sprint(c.id, st.Ownership, err)
			}
		}
		return true, ""
	})
}

// TestServeJoinTimeout: with --join-timeout, a node that cannot join in
// time exits 1 with a line saying so.
func TestServeJoinTimeout(t *testing.T) {
	nodes := newCluster(t, 2)
	n1, n2 := nodes[0], nodes[1] // nobody at n1's address
	n2.p = startProcIn(t, "", "", nil, "serve", "--node-id", n2.id, "--data-dir", n2.dir, "--http-addr", n2.http, "--gossip-addr", n2.gossip,
		"--join", n1.gossip, "--join-timeout", "2s")
	n2.all = append(n2.all, n2.p)
	select {
	case <-n2.p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit after --join-timeout 2s:\n%s", n2.p.logs)
	}
	var ee *exec.ExitError
	if !errors.As(n2.p.err, &ee) || ee.ExitCode() != exitFailure || !strings.Contains(n2.p.logs.String(), "--join-timeout 2s ran out") {
		t.Fatalf("serve after --join-timeout: %v, logs:\n%s\nwant exit 1 and a line naming --join-timeout", n2.p.err, n2.p.logs)
	}
}
