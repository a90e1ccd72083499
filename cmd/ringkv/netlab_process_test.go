package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// A netLab is a small network of its own for process tests that need real
// hosts: each node runs in a Linux network namespace of its own, on one
// bridge (in a hub namespace), with its own address; the test process
// reaches every node through one veth pair from its own namespace to the
// bridge. Links between nodes are cut and healed with nftables inside the
// nodes' namespaces, so clients still reach every node while the nodes
// cannot reach one another. Everything the lab creates it deletes in
// t.Cleanup. It needs root, iproute2 and nftables (.ci/run installs them);
// elsewhere the tests that use it skip, and under CI=true they fail.
type netLab struct {
	t      *testing.T
	id     string // short, unique: namespace and interface names carry it
	subnet string // "10.251.X", a /24 only this lab uses
	hub    string // the bridge's namespace
	root   string // the test's end of the veth into the hub
	mu     sync.Mutex
	hosts  []string // namespaces made, for cleanup
}

// labHost is one node's namespace and address in a netLab.
type labHost struct {
	lab  *netLab
	ns   string
	ip   string
	name string
}

// run runs a command and fails the test with its output if it fails.
func labRun(t *testing.T, stdin string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// needNetLab skips (or, under CI, fails) a test that cannot make a netLab.
func needNetLab(t *testing.T) {
	t.Helper()
	ringkvBinary(t) // skips under -short
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root for network namespaces"
	default:
		for _, tool := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = "needs " + tool + " (Debian's iproute2 and nftables; .ci/run installs them)"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// newNetLab makes the hub namespace, its bridge and the test's veth to it.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	needNetLab(t)
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &netLab{t: t, id: id, subnet: fmt.Sprintf("10.251.%d", 1+int(b[0])%250), hub: "rkv" + id + "h", root: "rkv" + id + "r"}
	t.Cleanup(l.cleanup)
	labRun(t, "", "ip", "netns", "add", l.hub)
	labRun(t, "", "ip", "-n", l.hub, "link", "add", "br0", "type", "bridge")
	labRun(t, "", "ip", "-n", l.hub, "link", "set", "br0", "up")
	labRun(t, "", "ip", "link", "add", l.root, "type", "veth", "peer", "name", "up0", "netns", l.hub)
	labRun(t, "", "ip", "-n", l.hub, "link", "set", "up0", "master", "br0", "up")
	labRun(t, "", "ip", "addr", "add", l.subnet+".1/24", "dev", l.root)
	labRun(t, "", "ip", "link", "set", l.root, "up")
	return l
}

// host makes the namespace of the i-th node (from 1) with address
// subnet.(10+i) on the bridge.
func (l *netLab) host(i int) *labHost {
	l.t.Helper()
	h := &labHost{lab: l, ns: fmt.Sprintf("rkv%sn%d", l.id, i), ip: fmt.Sprintf("%s.%d", l.subnet, 10+i), name: fmt.Sprintf("n%d", i)}
	l.mu.Lock()
	l.hosts = append(l.hosts, h.ns)
	l.mu.Unlock()
	port := fmt.Sprintf("p%d", i)
	labRun(l.t, "", "ip", "netns", "add", h.ns)
	labRun(l.t, "", "ip", "-n", l.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	labRun(l.t, "", "ip", "-n", l.hub, "link", "set", port, "master", "br0", "up")
	labRun(l.t, "", "ip", "-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
	labRun(l.t, "", "ip", "-n", h.ns, "link", "set", "eth0", "up")
	labRun(l.t, "", "ip", "-n", h.ns, "link", "set", "lo", "up")
	return h
}

func (l *netLab) cleanup() {
	l.mu.Lock()
	hosts := l.hosts
	l.mu.Unlock()
	for _, ns := range append(hosts, l.hub) {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", l.root).Run() // gone with the hub, usually
}

// cut drops every packet between h and the hosts in from, both ways, or
// only those from them to h when oneWay (h still sends; it hears nothing).
// The client's address is never cut.
func (h *labHost) cut(oneWay bool, from ...*labHost) {
	h.lab.t.Helper()
	var ips []string
	for _, o := range from {
		ips = append(ips, o.ip)
	}
	set := "{ " + strings.Join(ips, ", ") + " }"
	var rules bytes.Buffer
	fmt.Fprintf(&rules, "table inet ringkvcut {\n chain in {\n  type filter hook input priority 0; policy accept;\n  ip saddr %s drop\n }\n", set)
	if !oneWay {
		fmt.Fprintf(&rules, " chain out {\n  type filter hook output priority 0; policy accept;\n  ip daddr %s drop\n }\n", set)
	}
	rules.WriteString("}\n")
	h.heal()
	labRun(h.lab.t, rules.String(), "ip", "netns", "exec", h.ns, "nft", "-f", "-")
}

// heal removes every cut of h's.
func (h *labHost) heal() {
	exec.Command("ip", "netns", "exec", h.ns, "nft", "delete", "table", "inet", "ringkvcut").Run()
}

// labNode is a cluster node (cnode) run inside a lab host: its addresses
// are the host's, on the default ports.
func (h *labHost) node(args ...string) *cnode {
	t := h.lab.t
	// --insecure: the lab's addresses are not loopback, and its nodes
	// run without TLS and --auth-file on purpose.
	args = append([]string{"--insecure"}, args...)
	return &cnode{t: t, id: h.name, dir: t.TempDir(), http: h.ip + ":8080", gossip: h.ip + ":7946", args: args, netns: h.ns}
}

// labCluster makes n hosts in a new lab and a node on each; nothing is
// started. The nodes' logs are shown when the test fails.
func labCluster(t *testing.T, n int, args ...string) (*netLab, []*labHost, []*cnode) {
	t.Helper()
	l := newNetLab(t)
	var hosts []*labHost
	var nodes []*cnode
	for i := range n {
		h := l.host(i + 1)
		hosts = append(hosts, h)
		nodes = append(nodes, h.node(args...))
	}
	t.Cleanup(func() {
		if t.Failed() {
			showLogs(t, nodes)
		}
	})
	return l, hosts, nodes
}

// seesAll reports whether every node sees every node alive, and if not,
// who sees what.
func seesAll(nodes []*cnode) (bool, string) {
	var ids []string
	for _, c := range nodes {
		ids = append(ids, c.id)
	}
	for _, c := range nodes {
		st, err := status(c.http)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", c.id, err)
		}
		if !allAlive(st, ids...) {
			return false, fmt.Sprintf("%s sees %s", c.id, memberStates(st))
		}
	}
	return true, ""
}

// waitCond polls f every 100ms until it holds or timeout passes, and
// returns how long it took (or fails the test with f's last word).
func waitCond(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	poll(t, timeout, what, f)
	return time.Since(start)
}

// etcFile gives the processes started in h's namespace a file of their
// own at /etc/NAME: ip netns exec bind-mounts /etc/netns/NS/NAME over it
// (a hosts file of its own, so a name can mean other addresses on each
// host). The directory goes when the test ends.
func (h *labHost) etcFile(name, content string) {
	t := h.lab.t
	t.Helper()
	dir := "/etc/netns/" + h.ns
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(dir+"/"+name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// launchWild starts c's process bound to 0.0.0.0 on the standard ports,
// as on a host of its own, with extra flags for this start only, and
// returns without waiting for it: the test reaches it at c.http, its
// host's address.
func (c *cnode) launchWild(extra ...string) {
	c.t.Helper()
	args := []string{"serve", "--node-id", c.id, "--data-dir", c.dir, "--http-addr", "0.0.0.0:8080", "--gossip-addr", "0.0.0.0:7946"}
	c.p = startProcIn(c.t, c.netns, c.bin, c.env, append(append(args, c.args...), extra...)...)
	c.p.addr = c.http
	c.all = append(c.all, c.p)
}
