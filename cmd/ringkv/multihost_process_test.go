package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer"
)

// mhSeed is the name the nodes of TestMultiHost join by, as a Kubernetes
// headless Service's name gives every pod behind it.
const mhSeed = "ringkv-seed"

// multiHostLab makes n hosts, each with a node bound to 0.0.0.0 on the
// standard ports and told to join mhSeed, and gives each host a hosts
// file where mhSeed stands for every address behind it: its own first
// (a node that took only the first address would be alone), then the
// lab's gateway, where nothing listens (a node that took only the first
// other address would never join), then the others. The odd nodes name
// their addresses with --advertise-*; the even ones leave them to the
// default pick, the host's first private address. Nothing is started.
func multiHostLab(t *testing.T, n int, args ...string) ([]*labHost, []*cnode) {
	t.Helper()
	l, hosts, nodes := labCluster(t, n, append([]string{"--join", mhSeed + ":7946"}, args...)...)
	for i, h := range hosts {
		var b strings.Builder
		b.WriteString("127.0.0.1 localhost\n::1 localhost\n")
		fmt.Fprintf(&b, "%s %s\n%s.1 %s\n", h.ip, mhSeed, l.subnet, mhSeed)
		for j := 1; j < n; j++ {
			fmt.Fprintf(&b, "%s %s\n", hosts[(i+j)%n].ip, mhSeed)
		}
		h.etcFile("hosts", b.String())
		// A name server that is not there: names resolve from the hosts
		// file alone, and a look-up that goes further fails at once.
		h.etcFile("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
		if i%2 == 0 {
			nodes[i].args = append(nodes[i].args, "--advertise-http-addr", nodes[i].http, "--advertise-gossip-addr", nodes[i].gossip)
		}
	}
	return hosts, nodes
}

// oneRing reports whether every node sees exactly nodes as members, all
// alive at the addresses of their hosts, holds every range the ring
// gives it, and places keys alike (the same ownership of the token
// space, the same owners of sample keys): one ring, not several.
func oneRing(nodes []*cnode) (bool, string) {
	var ownership map[string]float64
	var owners []string
	for _, c := range nodes {
		st, err := status(c.http)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", c.id, err)
		}
		if len(st.Members) != len(nodes) {
			return false, fmt.Sprintf("%s sees %s", c.id, memberStates(st))
		}
		if !st.Settled {
			return false, fmt.Sprintf("%s does not hold every range the ring gives it yet: %+v", c.id, st.Transfers)
		}
		for _, m := range st.Members {
			i := slices.IndexFunc(nodes, func(c *cnode) bool { return c.id == m.ID })
			if i < 0 || m.State != peer.Alive {
				return false, fmt.Sprintf("%s sees %s", c.id, memberStates(st))
			}
			if m.HTTPAddr != nodes[i].http || m.GossipAddr != nodes[i].gossip {
				return false, fmt.Sprintf("%s sees %s at %s and %s, want %s and %s", c.id, m.ID, m.HTTPAddr, m.GossipAddr, nodes[i].http, nodes[i].gossip)
			}
		}
		var got []string
		for _, key := range []string{"a", "b", "c", "d"} {
			o, err := ringOwners(c.http, key)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", c.id, err)
			}
			got = append(got, strings.Join(o.Owners, ","))
		}
		if ownership == nil {
			ownership, owners = st.Ownership, got
		} else if !maps.Equal(ownership, st.Ownership) || !slices.Equal(owners, got) {
			return false, fmt.Sprintf("%s places keys otherwise than %s: %v %v, not %v %v", c.id, nodes[0].id, st.Ownership, got, ownership, owners)
		}
	}
	return true, ""
}

// formRing waits until nodes form one ring. Meanwhile, with expect (all
// run with --bootstrap-expect), no node may show a ring of only some of
// them: a node's first ring is the whole initial one. Without, the rings
// shown may grow as nodes enter (and differ while the news travels), but
// every two of them must share a member: two rings apart are two
// clusters, which are never merged.
func formRing(t *testing.T, nodes []*cnode, expect bool) {
	t.Helper()
	partial := map[string]string{} // ring -> who showed it
	took := waitCond(t, 30*time.Second, "one ring of 5", func() (bool, string) {
		for _, c := range nodes {
			if st, err := status(c.http); err == nil && len(st.Ownership) > 0 && len(st.Ownership) < len(nodes) {
				partial[strings.Join(slices.Sorted(maps.Keys(st.Ownership)), ",")] = c.id
			}
		}
		return oneRing(nodes)
	})
	t.Logf("one ring of %d, every node settled, %.1fs after the last node served", len(nodes), took.Seconds())
	for ring, id := range partial {
		if expect {
			t.Errorf("while the cluster bootstrapped, %s showed a ring of %s only", id, ring)
			continue
		}
		for other, oid := range partial {
			if !meet(strings.Split(ring, ","), strings.Split(other, ",")) {
				t.Errorf("while the cluster bootstrapped, %s showed a ring of %s and %s one of %s: two clusters", id, ring, oid, other)
			}
		}
	}
}

// meet reports whether a and b share a member.
func meet(a, b []string) bool {
	return slices.ContainsFunc(a, func(id string) bool { return slices.Contains(b, id) })
}

// TestMultiHost runs five nodes as on five hosts (network namespaces on
// a bridge), each bound to 0.0.0.0:8080 and 0.0.0.0:7946 and advertising
// its own address, all started at once with the same --join name. They
// form one ring; a quorum load through every node loses no acknowledged
// write while a host is killed (reads go on meanwhile) and comes back;
// after one node leaves, the four others hold every acknowledged key.
func TestMultiHost(t *testing.T) {
	hosts, nodes := multiHostLab(t, 5, "--bootstrap-expect", "5", "--replicas", "3", "--request-timeout", "3s")
	for _, c := range nodes {
		c.env = append(c.env, "RINGKV_CLUSTER_SECRET=multi-host-secret")
	}
	t0 := time.Now()
	stage := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	for _, c := range nodes {
		c.launchWild()
	}
	for _, c := range nodes {
		c.p.waitHealthy()
	}
	formRing(t, nodes, true)
	stage(fmt.Sprintf("5 nodes on %s..%s form one ring", hosts[0].ip, hosts[4].ip))

	h := &history{t0: time.Now(), byVal: map[string]int{}}
	seed := uint64(t0.UnixNano())
	t.Logf("load seed %d", seed)
	wl := &checkLoad{clients: 4, keys: 100, prefix: "mh", deletes: true, seed: seed, nodes: nodes}
	wl.Start()
	// A test that fails midway stops its clients too.
	t.Cleanup(func() { wl.stop.Store(true); wl.wg.Wait() })
	event := func(format string, a ...any) {
		h.events = append(h.events, h.at(time.Now())+" "+fmt.Sprintf(format, a...))
	}
	// The spans below are the scenario's length, not waits for a condition.
	time.Sleep(2 * time.Second)
	victim := nodes[1] // one of the default-picked addresses
	victim.kill9()
	lostAt := time.Now()
	event("killed %s", victim.id)
	time.Sleep(3 * time.Second)
	backAt := time.Now()
	victim.launchWild()
	victim.p.waitHealthy()
	event("restarted %s", victim.id)
	waitCond(t, 30*time.Second, "one ring of 5 again", func() (bool, string) { return oneRing(nodes) })
	stage("the lost host is back")
	time.Sleep(2 * time.Second)
	wl.Stop(h)
	event("load stopped")
	servedMeanwhile(t, h, nodes, victim, lostAt, backAt)
	if wl.Check(t, h) > 0 {
		return
	}
	stage("no acknowledged write lost")
	leaveOne(t, h, wl, nodes)
	stage("4 nodes hold every acknowledged key after a leave")
}

// servedMeanwhile fails the test unless, while victim was down, every
// other node served reads and acknowledged writes.
func servedMeanwhile(t *testing.T, h *history, nodes []*cnode, victim *cnode, from, to time.Time) {
	t.Helper()
	reads, acked := map[string]int{}, map[string]int{}
	for _, r := range h.reads {
		if r.start.After(from) && r.end.Before(to) {
			reads[r.via]++
		}
	}
	for _, w := range h.writes {
		if w.acked && w.start.After(from) && w.end.Before(to) {
			acked[w.via]++
		}
	}
	t.Logf("while %s was down: reads served %v, writes acknowledged %v", victim.id, reads, acked)
	for _, c := range nodes {
		if c != victim && (reads[c.id] < 5 || acked[c.id] < 5) {
			t.Fatalf("while %s was down, %s served %d reads and acknowledged %d writes", victim.id, c.id, reads[c.id], acked[c.id])
		}
	}
}

// leaveOne scales down by one, as a StatefulSet removes its highest
// ordinal: the last node leaves with ringkv cluster leave and, once the
// others know, is stopped; they must then hold every key as the history
// says.
func leaveOne(t *testing.T, h *history, wl *checkLoad, nodes []*cnode) {
	t.Helper()
	gone, rest := nodes[len(nodes)-1], nodes[:len(nodes)-1]
	out, errs, code := runRingkv(t, "cluster", "leave", "--addr", gone.http, "--wait", "60s")
	if code != 0 || !strings.Contains(out, "has left") {
		t.Fatalf("ringkv cluster leave: exit %d\n%s%s", code, out, errs)
	}
	waitCond(t, 30*time.Second, "the others see "+gone.id+" left", func() (bool, string) {
		for _, c := range rest {
			st, err := status(c.http)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", c.id, err)
			}
			for _, m := range st.Members {
				want := peer.Alive
				if m.ID == gone.id {
					want = peer.Left
				}
				if m.State != want {
					return false, fmt.Sprintf("%s sees %s", c.id, memberStates(st))
				}
			}
		}
		return true, ""
	})
	// Then the pod goes, as a StatefulSet stops it: SIGTERM.
	if err := gone.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := gone.p.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("%s, stopped after its leave, exited %d", gone.id, code)
	}
	at := time.Now()
	for k := range wl.keys {
		key, via := wl.key(k), rest[k%len(rest)]
		code, b, err := call(http.MethodGet, kvURL(via.http, key, "all"), "")
		if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
			t.Fatalf("GET %s at all via %s after %s left: %d %q %v", key, via.id, gone.id, code, b, err)
		}
		if why := h.checkRead(key, string(b), code == http.StatusOK, at); why != "" {
			t.Fatalf("GET %s at all via %s after %s left: %s\n%s", key, via.id, gone.id, why, h.keyHistory(key))
		}
	}
}

// ringOwners returns GET /v1/ring?key= of the node at addr.
func ringOwners(addr, key string) (peer.RingOwners, error) {
	var ro peer.RingOwners
	code, b, err := call(http.MethodGet, "http://"+addr+"/v1/ring?key="+key, "")
	if err != nil {
		return ro, err
	}
	if code != http.StatusOK {
		return ro, fmt.Errorf("GET /v1/ring: %d %s", code, b)
	}
	return ro, json.Unmarshal(b, &ro)
}

// TestMultiHostWithoutExpect: five nodes as on five hosts started at
// once with the same --join name and no --bootstrap-expect also form one
// ring (the lowest id of those that met founds it, the others enter it),
// never two.
func TestMultiHostWithoutExpect(t *testing.T) {
	_, nodes := multiHostLab(t, 5, "--replicas", "3")
	for _, c := range nodes {
		c.launchWild()
	}
	for _, c := range nodes {
		c.p.waitHealthy()
	}
	formRing(t, nodes, false)
}
