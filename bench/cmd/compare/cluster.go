package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/matrix"
)

// clusterConfig is `compare cluster`: cluster.sh's variables as flags,
// 3 rounds, and the builds and spreading it added.
type clusterConfig struct {
	wrkConfig
	Bins   string // label=path,...; empty: the checkout's ringkv
	Spread bool   // wrk's threads over all three nodes, not node 1 alone
}

func clusterFlags(fs *flag.FlagSet) func(context.Context, *runEnv) error {
	c := clusterConfig{wrkConfig: defaultWrk(3), Spread: true}
	c.register(fs, "extra `ringkv serve` flags for every node, space-separated")
	fs.StringVar(&c.Bins, "bins", "", "ringkv binaries to compare, LABEL=PATH or PATH, comma-separated: each gets its single and cluster setups in the alternating rounds (default: the checkout's, built)")
	fs.BoolVar(&c.Spread, "spread", true, "spread wrk's threads over the three nodes (-threads rounded up to a multiple of 3, -conns down to a multiple of it; the single node gets the same wrk); false: all to node 1, as cluster.sh did")
	return func(ctx context.Context, e *runEnv) error { return runCluster(ctx, e, c) }
}

// spreadWrk makes -threads and -conns fit a spread over n nodes: a
// multiple of n threads (one node each), and the connections wrk really
// opens (it gives each thread conns/threads), so the report says what ran.
func (c *clusterConfig) spreadWrk(n int) error {
	if !c.Spread {
		return nil
	}
	c.Threads = (c.Threads + n - 1) / n * n
	if c.Conns < c.Threads {
		return usageErr("-conns (%d) must be at least the %d wrk threads -spread uses", c.Conns, c.Threads)
	}
	c.Conns -= c.Conns % c.Threads
	return nil
}

// clusterRun is one wrk run of a setup: cluster.sh's "rps cpu p99".
type clusterRun struct {
	RPS float64
	CPU float64 // µs of all the setup's ringkv processes per request
	P99 string  // e.g. "7.60ms"
	// Spread is the requests wrk sent to each node (a spread cluster run).
	Spread []nodeCount
}

func (r clusterRun) raw() string { return fmt.Sprintf("%.2f %.2f %s;", r.RPS, r.CPU, r.P99) }

// startNodes starts n nodes of the ringkv binary bin (n > 1: nodes 2..
// join node 1, and it waits until node 1 sees n members alive), each
// with --replicas 3 and extra, logs in node-NAME-I.log and data in
// data-NAME-I, and returns them with node 1's HTTP address.
func startNodes(ctx context.Context, h *harness, bin, name string, n int, extra []string, ports map[int]bool) ([]*proc, string, error) {
	ps, addrs, err := startNodeAddrs(ctx, h, bin, name, n, extra, ports)
	first := ""
	if len(addrs) > 0 {
		first = addrs[0]
	}
	return ps, first, err
}

// startNodeAddrs is startNodes, returning every node's HTTP address.
func startNodeAddrs(ctx context.Context, h *harness, bin, name string, n int, extra []string, ports map[int]bool) ([]*proc, []string, error) {
	var ps []*proc
	var addrs []string
	var firstGossip string
	for i := range n {
		httpAddr, err := freeAddr(ports)
		if err != nil {
			return ps, addrs, err
		}
		gossip, err := freeAddr(ports)
		if err != nil {
			return ps, addrs, err
		}
		argv := []string{bin, "serve", "--data-dir", filepath.Join(h.work, fmt.Sprintf("data-%s-%d", name, i)),
			"--http-addr", httpAddr, "--gossip-addr", gossip, "--replicas", "3", "--log-level", "warn"}
		if i > 0 {
			argv = append(argv, "--join", firstGossip)
		} else {
			firstGossip = gossip
		}
		argv = append(argv, extra...)
		p, err := h.start(fmt.Sprintf("node-%s-%d", name, i), nil, argv...)
		if err != nil {
			return ps, addrs, err
		}
		ps, addrs = append(ps, p), append(addrs, httpAddr)
		if err := waitFor(ctx, p, 30*time.Second, "node "+strconv.Itoa(i+1)+" healthy", func() bool { return healthy(ctx, httpAddr) }); err != nil {
			return ps, addrs, err
		}
	}
	if n > 1 {
		alive := func() bool {
			b, err := getBody(ctx, addrs[0], "/v1/cluster")
			return err == nil && aliveMembers(b) == n
		}
		if err := waitFor(ctx, ps[0], 30*time.Second, "a cluster of "+strconv.Itoa(n)+" alive members", alive); err != nil {
			return ps, addrs, err
		}
	}
	return ps, addrs, nil
}

// aliveMembers counts the members of a /v1/cluster answer in state alive.
func aliveMembers(body []byte) int {
	var st struct {
		Members []struct {
			State string `json:"state"`
		} `json:"members"`
	}
	if json.Unmarshal(body, &st) != nil {
		return 0
	}
	n := 0
	for _, m := range st.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// clusterSetup is one build's single or cluster setup, a step of a round.
type clusterSetup struct {
	build cwBuild
	name  string // "single" or "cluster"
}

func runCluster(ctx context.Context, e *runEnv, c clusterConfig) error {
	builds, err := parseBins(c.Bins)
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if err := c.spreadWrk(3); err != nil {
		return err
	}
	h := e.h
	pkgs := []string{"./bench/cmd/preload"}
	if len(builds) == 0 {
		pkgs, builds = append(pkgs, "./cmd/ringkv"), []cwBuild{{"ringkv", filepath.Join(h.bin, "ringkv")}}
	}
	if err := h.buildWithWrk(ctx, pkgs...); err != nil {
		return err
	}
	var steps []clusterSetup
	for _, b := range builds {
		steps = append(steps, clusterSetup{b, "single"}, clusterSetup{b, "cluster"})
	}
	ports := map[int]bool{}
	wrkEnv := c.env()
	results := map[string]map[string][]clusterRun{} // label -> "single,get" -> runs
	for _, b := range builds {
		results[b.Label] = map[string][]clusterRun{}
	}
	for r := 1; r <= c.Rounds; r++ {
		// Every other round the order is reversed, so that drift on a
		// shared machine spreads over every setup.
		order := slices.Clone(steps)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, st := range order {
			setup, label := st.name, st.build.Label
			if len(builds) > 1 {
				setup = label + " " + setup
			}
			h.logf("round %d: %s", r, setup)
			n := 1
			if st.name == "cluster" {
				n = 3
			}
			name := fmt.Sprintf("%d-%d", n, r)
			if len(builds) > 1 {
				name = fmt.Sprintf("%d-%s", slices.Index(builds, st.build), name)
			}
			ps, addrs, err := startNodeAddrs(ctx, h, st.build.Path, name, n, c.ringkvArgs(), ports)
			if err != nil {
				return err
			}
			if err := h.preload(ctx, c.preload(addrs[0])); err != nil {
				return err
			}
			for _, op := range []string{"get", "put"} {
				wr := c.run(op, addrs[0], wrkEnv)
				if c.Spread && n > 1 {
					wr.Addrs = addrs
				}
				// CPU is every node's of the setup over all requests,
				// wherever wrk sent them.
				res, cpu, err := h.measureWrk(ctx, wr, ps)
				if err != nil {
					return fmt.Errorf("%s %s: %w", setup, op, err)
				}
				appendFile(filepath.Join(h.work, "wrk-"+strings.ReplaceAll(setup, " ", "-")+"-"+op+".txt"), res.Output)
				if res.Non2xx > 0 || res.Errors > 0 {
					return fmt.Errorf("%s %s: %d non-2xx answers, %d errors", setup, op, res.Non2xx, res.Errors)
				}
				if len(wr.Addrs) > 0 && len(res.Spread) != len(wr.Addrs) {
					return fmt.Errorf("%s %s: wrk reported %d nodes' requests, want %d (bench/wrk/common.lua's SPREAD line)", setup, op, len(res.Spread), len(wr.Addrs))
				}
				run := clusterRun{RPS: round2(res.RPS), CPU: cpu, P99: p99ms(res.P99US), Spread: res.Spread}
				h.logf("%s %s: %.2f req/s, p99 %s, server CPU %.2f us/req%s", setup, op, run.RPS, run.P99, run.CPU, spreadNote(run.Spread))
				results[label][st.name+","+op] = append(results[label][st.name+","+op], run)
			}
			for _, p := range ps {
				h.stop(p)
			}
			removeGlob(filepath.Join(h.work, "data-*"))
		}
	}
	rep := clusterReport{Date: stamp(time.Now()), Config: c.wrkConfig, Spread: c.Spread, CPUs: runtime.NumCPU(), Results: results[builds[0].Label]}
	if c.Bins != "" {
		rep.Bins, rep.Builds, rep.ByBuild = c.Bins, builds, results
	}
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	return e.writeResults("cluster-"+rep.Date, md, js)
}

// spreadNote is a log line's tail: each node's share of the requests.
func spreadNote(s []nodeCount) string {
	if len(s) == 0 {
		return ""
	}
	return ", sent to the nodes " + shares(s)
}

// shares writes each node's share of the requests sent, "33.4/33.3/33.3%".
func shares(s []nodeCount) string {
	var total int64
	for _, x := range s {
		total += x.Sent
	}
	var parts []string
	for _, x := range s {
		parts = append(parts, fmt.Sprintf("%.1f", 100*float64(x.Sent)/float64(max(total, 1))))
	}
	return strings.Join(parts, "/") + "%"
}

type clusterReport struct {
	Date    string
	Config  wrkConfig
	Spread  bool
	CPUs    int
	Results map[string][]clusterRun // the first build's
	// With -bins: every build's results, by label.
	Bins    string
	Builds  []cwBuild
	ByBuild map[string]map[string][]clusterRun
}

// clusterOp is one build's medians of an op.
type clusterOp struct {
	s, cl, sc, cc float64
}

func (r *clusterReport) op(res map[string][]clusterRun, op string) clusterOp {
	med := func(rs []clusterRun, cpu bool) float64 {
		vs := make([]float64, len(rs))
		for i, x := range rs {
			vs[i] = x.RPS
			if cpu {
				vs[i] = x.CPU
			}
		}
		return matrix.Median(vs)
	}
	single, cluster := res["single,"+op], res["cluster,"+op]
	return clusterOp{med(single, false), med(cluster, false), med(single, true), med(cluster, true)}
}

// opDoc is an op's JSON object: cluster.sh's fields, then spread's.
func (r *clusterReport) opDoc(res map[string][]clusterRun, op string) ordered {
	m := r.op(res, op)
	raw := func(rs []clusterRun) string {
		var b strings.Builder
		for _, x := range rs {
			b.WriteString(x.raw())
		}
		return b.String()
	}
	var spread strings.Builder
	for _, x := range res["cluster,"+op] {
		if len(x.Spread) > 0 {
			spread.WriteString(shares(x.Spread) + ";")
		}
	}
	return ordered{{"single_rps", jnum(m.s)}, {"cluster_rps", jnum(m.cl)}, {"ratio", jnum(ratio(m.cl, m.s))},
		{"single_cpu_us", jnum(m.sc)}, {"cluster_cpu_us", jnum(m.cc)}, {"raw_single", raw(res["single,"+op])}, {"raw_cluster", raw(res["cluster,"+op])},
		{"spread", r.Spread}, {"cluster_node_shares", spread.String()}}
}

func (r *clusterReport) render() (string, []byte, error) {
	c := r.Config
	var md strings.Builder
	fmt.Fprintf(&md, "# 3-node cluster vs one node (%s)\n\n", r.Date)
	command := "go run ./bench/cmd/compare cluster"
	if r.Bins != "" {
		command += " -bins " + r.Bins
	}
	target := "wrk sends to node 1"
	if r.Spread {
		target = fmt.Sprintf("wrk -t%d spreads its threads over the three nodes, one node a thread (the single node gets the same wrk)", c.Threads)
	}
	fmt.Fprintf(&md, "`%s %s -spread=%v`, %d CPUs, medians of %d. Cluster: 3 nodes on this machine, --replicas 3, quorum reads and writes (R=W=2), fsync on; %s; CPU is all the setup's nodes' over all its requests.\n\n",
		command, c.flagLine(), r.Spread, r.CPUs, c.Rounds, target)
	var doc ordered
	if len(r.Builds) == 0 {
		md.WriteString("| op | single req/s | cluster req/s | ratio | single CPU µs/req | cluster CPU µs/req (3 nodes) |\n|---|---|---|---|---|---|\n")
		for _, op := range []string{"get", "put"} {
			m := r.op(r.Results, op)
			fmt.Fprintf(&md, "| %s | %.2f | %.2f | **%s** | %.2f | %.2f |\n", op, m.s, m.cl, fmtRatio(ratio(m.cl, m.s)), m.sc, m.cc)
			doc.add(op, r.opDoc(r.Results, op))
		}
		r.sharesLine(&md, "", r.Results)
	} else {
		// The top level is the first build's, as without -bins; "builds"
		// has each, with its ratios to the first.
		for _, op := range []string{"get", "put"} {
			doc.add(op, r.opDoc(r.ByBuild[r.Builds[0].Label], op))
		}
		md.WriteString("| build | op | single req/s | cluster req/s | ratio | single CPU µs/req | cluster CPU µs/req (3 nodes) |\n|---|---|---|---|---|---|---|\n")
		for _, b := range r.Builds {
			for _, op := range []string{"get", "put"} {
				m := r.op(r.ByBuild[b.Label], op)
				fmt.Fprintf(&md, "| %s | %s | %.2f | %.2f | **%s** | %.2f | %.2f |\n", b.Label, op, m.s, m.cl, fmtRatio(ratio(m.cl, m.s)), m.sc, m.cc)
			}
		}
		first := r.ByBuild[r.Builds[0].Label]
		var builds ordered
		if len(r.Builds) > 1 {
			fmt.Fprintf(&md, "\n| build / %s | single GET req/s | single PUT req/s | cluster GET req/s | cluster PUT req/s | single GET CPU | single PUT CPU | cluster GET CPU | cluster PUT CPU |\n|---|---|---|---|---|---|---|---|---|\n", r.Builds[0].Label)
		}
		for i, b := range r.Builds {
			res := r.ByBuild[b.Label]
			bd := ordered{{"path", b.Path}}
			g, p, fg, fp := r.op(res, "get"), r.op(res, "put"), r.op(first, "get"), r.op(first, "put")
			for _, op := range []string{"get", "put"} {
				m, f := r.op(res, op), r.op(first, op)
				d := r.opDoc(res, op)
				d = append(d, ordered{{"single_rps_vs_first", jnum(ratio(m.s, f.s))}, {"cluster_rps_vs_first", jnum(ratio(m.cl, f.cl))},
					{"single_cpu_vs_first", jnum(ratio(m.sc, f.sc))}, {"cluster_cpu_vs_first", jnum(ratio(m.cc, f.cc))}}...)
				bd.add(op, d)
			}
			builds.add(b.Label, bd)
			if i > 0 {
				fmt.Fprintf(&md, "| %s | **%s** | **%s** | **%s** | **%s** | %s | %s | %s | %s |\n", b.Label,
					fmtRatio(ratio(g.s, fg.s)), fmtRatio(ratio(p.s, fp.s)), fmtRatio(ratio(g.cl, fg.cl)), fmtRatio(ratio(p.cl, fp.cl)),
					fmtRatio(ratio(g.sc, fg.sc)), fmtRatio(ratio(p.sc, fp.sc)), fmtRatio(ratio(g.cc, fg.cc)), fmtRatio(ratio(p.cc, fp.cc)))
			}
		}
		for _, b := range r.Builds {
			r.sharesLine(&md, b.Label+": ", r.ByBuild[b.Label])
		}
		doc.add("builds", builds)
	}
	md.WriteString("\nMedians are bench/matrix.Median's: with an even number of rounds, the lower middle.\n")
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}

// sharesLine notes how wrk's requests fell on the cluster's nodes.
func (r *clusterReport) sharesLine(md *strings.Builder, build string, res map[string][]clusterRun) {
	for _, op := range []string{"get", "put"} {
		var parts []string
		for _, x := range res["cluster,"+op] {
			if len(x.Spread) > 0 {
				parts = append(parts, shares(x.Spread))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(md, "\n%scluster %s requests sent to nodes 1/2/3, by round: %s.\n", build, op, strings.Join(parts, ", "))
		}
	}
}

func appendFile(path, s string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(s)
}

func removeGlob(pattern string) {
	m, _ := filepath.Glob(pattern)
	for _, p := range m {
		os.RemoveAll(p)
	}
}
