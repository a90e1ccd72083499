package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/matrix"
)

// clusterRun is one wrk run of a setup: cluster.sh's "rps cpu p99".
type clusterRun struct {
	RPS float64
	CPU float64 // µs of all the setup's ringkv processes per request
	P99 string  // e.g. "7.60ms"
}

func (r clusterRun) raw() string { return fmt.Sprintf("%.2f %.2f %s;", r.RPS, r.CPU, r.P99) }

// startNodes starts n nodes of the ringkv binary bin (n > 1: nodes 2..
// join node 1, and it waits until node 1 sees n members alive), each
// with --replicas 3 and extra, logs in node-NAME-I.log and data in
// data-NAME-I, and returns them with node 1's HTTP address.
func startNodes(ctx context.Context, h *harness, bin, name string, n int, extra []string, ports map[int]bool) ([]*proc, string, error) {
	var ps []*proc
	var first, firstGossip string
	for i := range n {
		httpAddr, err := freeAddr(ports)
		if err != nil {
			return ps, "", err
		}
		gossip, err := freeAddr(ports)
		if err != nil {
			return ps, "", err
		}
		argv := []string{bin, "serve", "--data-dir", filepath.Join(h.work, fmt.Sprintf("data-%s-%d", name, i)),
			"--http-addr", httpAddr, "--gossip-addr", gossip, "--replicas", "3", "--log-level", "warn"}
		if i > 0 {
			argv = append(argv, "--join", firstGossip)
		} else {
			first, firstGossip = httpAddr, gossip
		}
		argv = append(argv, extra...)
		p, err := h.start(fmt.Sprintf("node-%s-%d", name, i), nil, argv...)
		if err != nil {
			return ps, "", err
		}
		ps = append(ps, p)
		if err := waitFor(ctx, p, 30*time.Second, "node "+strconv.Itoa(i+1)+" healthy", func() bool { return healthy(ctx, httpAddr) }); err != nil {
			return ps, "", err
		}
	}
	if n > 1 {
		alive := func() bool {
			b, err := getBody(ctx, first, "/v1/cluster")
			return err == nil && aliveMembers(b) == n
		}
		if err := waitFor(ctx, ps[0], 30*time.Second, "a cluster of "+strconv.Itoa(n)+" alive members", alive); err != nil {
			return ps, "", err
		}
	}
	return ps, first, nil
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

func runCluster(ctx context.Context, e *runEnv, c wrkConfig) error {
	if err := c.check(); err != nil {
		return err
	}
	h := e.h
	if err := h.buildWithWrk(ctx, "./cmd/ringkv", "./bench/cmd/preload"); err != nil {
		return err
	}
	ports := map[int]bool{}
	wrkEnv := c.env()
	results := map[string][]clusterRun{} // "single,get" -> runs
	for r := 1; r <= c.Rounds; r++ {
		order := []string{"single", "cluster"}
		if r%2 == 0 {
			order = []string{"cluster", "single"}
		}
		for _, setup := range order {
			h.logf("round %d: %s", r, setup)
			n := 1
			if setup == "cluster" {
				n = 3
			}
			ps, addr, err := startNodes(ctx, h, filepath.Join(h.bin, "ringkv"), fmt.Sprintf("%d-%d", n, r), n, c.ringkvArgs(), ports)
			if err != nil {
				return err
			}
			if err := h.preload(ctx, c.preload(addr)); err != nil {
				return err
			}
			for _, op := range []string{"get", "put"} {
				res, cpu, err := h.measureWrk(ctx, c.run(op, addr, wrkEnv), ps)
				if err != nil {
					return fmt.Errorf("%s %s: %w", setup, op, err)
				}
				appendFile(filepath.Join(h.work, "wrk-"+setup+"-"+op+".txt"), res.Output)
				if res.Non2xx > 0 || res.Errors > 0 {
					return fmt.Errorf("%s %s: %d non-2xx answers, %d errors", setup, op, res.Non2xx, res.Errors)
				}
				run := clusterRun{RPS: round2(res.RPS), CPU: cpu, P99: p99ms(res.P99US)}
				h.logf("%s %s: %.2f req/s, p99 %s, server CPU %.2f us/req", setup, op, run.RPS, run.P99, run.CPU)
				results[setup+","+op] = append(results[setup+","+op], run)
			}
			for _, p := range ps {
				h.stop(p)
			}
			removeGlob(filepath.Join(h.work, "data-*"))
		}
	}
	rep := clusterReport{Date: stamp(time.Now()), Config: c, CPUs: runtime.NumCPU(), Results: results}
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	return e.writeResults("cluster-"+rep.Date, md, js)
}

type clusterReport struct {
	Date    string
	Config  wrkConfig
	CPUs    int
	Results map[string][]clusterRun
}

func (r *clusterReport) render() (string, []byte, error) {
	c := r.Config
	var md strings.Builder
	fmt.Fprintf(&md, "# 3-node cluster vs one node (%s)\n\n", r.Date)
	fmt.Fprintf(&md, "`go run ./bench/cmd/compare cluster %s`, %d CPUs, medians of %d. Cluster: 3 nodes on this machine, --replicas 3, quorum reads and writes (R=W=2), fsync on; wrk sends to node 1.\n\n",
		c.flagLine(), r.CPUs, c.Rounds)
	md.WriteString("| op | single req/s | cluster req/s | ratio | single CPU µs/req | cluster CPU µs/req (3 nodes) |\n|---|---|---|---|---|---|\n")
	var doc ordered
	for _, op := range []string{"get", "put"} {
		single, cluster := r.Results["single,"+op], r.Results["cluster,"+op]
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
		s, cl, sc, cc := med(single, false), med(cluster, false), med(single, true), med(cluster, true)
		q := ratio(cl, s)
		fmt.Fprintf(&md, "| %s | %.2f | %.2f | **%s** | %.2f | %.2f |\n", op, s, cl, fmtRatio(q), sc, cc)
		raw := func(rs []clusterRun) string {
			var b strings.Builder
			for _, x := range rs {
				b.WriteString(x.raw())
			}
			return b.String()
		}
		doc.add(op, ordered{{"single_rps", jnum(s)}, {"cluster_rps", jnum(cl)}, {"ratio", jnum(q)},
			{"single_cpu_us", jnum(sc)}, {"cluster_cpu_us", jnum(cc)}, {"raw_single", raw(single)}, {"raw_cluster", raw(cluster)}})
	}
	md.WriteString("\nMedians are bench/matrix.Median's: with an even number of rounds, the lower middle.\n")
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
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
