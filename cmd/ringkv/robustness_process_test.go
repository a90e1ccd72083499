package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The robustness suite, in the style of etcd's tests/robustness: clients
// run a workload of quorum puts, deletes and gets through every node of a
// cluster on hosts of its own (a netLab) and record each operation's
// invocation, completion and result, while faults from a menu hit one node
// at a time. Afterwards every fault is healed and the history is checked
// (history.checkRead): every acknowledged write is readable, no read
// returns a value older than the last write acknowledged before it began,
// and no acknowledged delete is undone.
//
// The check is not linearizability: with last-writer-wins and quorums a
// read may see a write that a later read does not (read repair is
// asynchronous), which the promise allows. porcupine checks linearizable
// histories, and does so for conditional writes under these faults
// (TestCompareAndSetLinearizable).
//
// CI runs a short campaign (RINGKV_ROBUSTNESS_DURATION, default 60s, one
// of each fault). A longer one:
//
//	RINGKV_ROBUSTNESS_DURATION=10m RINGKV_ROBUSTNESS_REPORT=/tmp/robust \
//	  go test -run TestRobustness -timeout 30m -v ./cmd/ringkv/
//
// writes report.json there. RINGKV_ROBUSTNESS_FAULTS picks faults (comma
// separated), RINGKV_ROBUSTNESS_NODES the cluster size (3 or 5) and
// RINGKV_ROBUSTNESS_SEED the seed.

// fault is one kind of failure the campaign injects into a victim node;
// inject returns what heals it.
type fault struct {
	name   string
	inject func(r *robust, victim int) (heal func())
}

// robust is one campaign's cluster and history.
type robust struct {
	t     *testing.T
	hosts []*labHost
	nodes []*cnode
	mu    sync.Mutex
	h     *history
}

func (r *robust) others(victim int) []*labHost {
	var out []*labHost
	for i, h := range r.hosts {
		if i != victim {
			out = append(out, h)
		}
	}
	return out
}

func (r *robust) event(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.events = append(r.h.events, r.h.at(time.Now())+" "+fmt.Sprintf(format, a...))
}

// faultMenu is every fault the campaign knows.
func faultMenu() []fault {
	signal := func(c *cnode, s syscall.Signal) {
		if err := c.p.cmd.Process.Signal(s); err != nil {
			c.t.Fatalf("signal %v to %s: %v", s, c.id, err)
		}
	}
	return []fault{
		{"kill9", func(r *robust, v int) func() {
			r.nodes[v].kill9()
			return func() { r.nodes[v].start() }
		}},
		{"sigstop", func(r *robust, v int) func() {
			signal(r.nodes[v], syscall.SIGSTOP)
			return func() { signal(r.nodes[v], syscall.SIGCONT) }
		}},
		{"partition", func(r *robust, v int) func() {
			r.hosts[v].cut(false, r.others(v)...)
			return r.hosts[v].heal
		}},
		{"oneway", func(r *robust, v int) func() {
			r.hosts[v].cut(true, r.others(v)...)
			return r.hosts[v].heal
		}},
		{"diskfull", func(r *robust, v int) func() {
			// The node's data dir is a tmpfs of its own: a filler takes all
			// but 4MiB of it, below the default floor (2% of 512MiB), so
			// its writes are refused with 507 and it counts as a failed
			// replica; freeing it heals.
			c := r.nodes[v]
			filler := filepath.Join(c.dir, "robustness-filler")
			fillUpTo(r.t, filler, max(freeBytes(r.t, c.dir)-4<<20, 0))
			return func() {
				if err := os.Remove(filler); err != nil {
					r.t.Fatal(err)
				}
			}
		}},
		{"corrupt", func(r *robust, v int) func() {
			// Everything it holds flushed to tables, killed, 16 bytes
			// flipped in the middle of its largest live table (a data
			// block) or in its footer (the table cannot be opened),
			// restarted: it must serve on and repair the span from the
			// others.
			c := r.nodes[v]
			// Enough data that the middle of the table is a data block,
			// not its index.
			filler := strings.Repeat("f", 1024)
			for i := range 1500 {
				if code, b, err := call(http.MethodPut, kvURL(c.http, fmt.Sprintf("rbfill/%04d", i), "one"), filler); err != nil || code != http.StatusNoContent {
					r.t.Fatalf("filler PUT through %s: %d %s %v", c.id, code, b, err)
				}
			}
			if code, b, err := call(http.MethodPost, "http://"+c.http+"/v1/admin/compact", ""); err != nil || code != http.StatusOK {
				r.t.Fatalf("compact %s: %d %s %v", c.id, code, b, err)
			}
			c.kill9()
			where, off := "the middle of", int64(0)
			if rand.IntN(2) == 0 {
				where, off = "the footer of", 20
			}
			r.event("%s: flipped bytes in %s %s", c.id, where, flipTable(r.t, c.dir, off))
			c.start()
			return func() {}
		}},
		{"clock", func(r *robust, v int) func() {
			// Restarted with its clock twice the bound off, ahead or
			// behind, then restarted right.
			c := r.nodes[v]
			off := "1s"
			if rand.IntN(2) == 0 {
				off = "-1s"
			}
			c.kill9()
			c.env = []string{"RINGKV_FAILPOINT_CLOCK_OFFSET=" + off}
			c.start()
			r.event("%s restarted with its clock %s off", c.id, off)
			return func() {
				c.kill9()
				c.env = nil
				c.start()
			}
		}},
	}
}

// robustEnv reads an environment knob, or def.
func robustEnv(name string, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// faultRecord is one fault of a campaign's report.
type faultRecord struct {
	Kind       string  `json:"kind"`
	Victim     string  `json:"victim"`
	At         float64 `json:"at_seconds"`
	Held       float64 `json:"held_seconds"`
	RecoveredS float64 `json:"recovered_seconds"` // from the heal to every node seeing every node alive
}

func TestRobustness(t *testing.T) {
	needNetLab(t)
	duration, err := time.ParseDuration(robustEnv("RINGKV_ROBUSTNESS_DURATION", "60s"))
	if err != nil {
		t.Fatalf("RINGKV_ROBUSTNESS_DURATION: %v", err)
	}
	size, err := strconv.Atoi(robustEnv("RINGKV_ROBUSTNESS_NODES", "3"))
	if err != nil || size < 3 || size > 9 {
		t.Fatalf("RINGKV_ROBUSTNESS_NODES: want 3 to 9")
	}
	seed, err := strconv.ParseUint(robustEnv("RINGKV_ROBUSTNESS_SEED", strconv.FormatUint(uint64(time.Now().UnixNano()), 10)), 10, 64)
	if err != nil {
		t.Fatalf("RINGKV_ROBUSTNESS_SEED: %v", err)
	}
	t.Logf("seed %d, %s, %d nodes", seed, duration, size)
	rng := rand.New(rand.NewPCG(seed, 7))
	var menu []fault
	want := strings.Split(strings.ReplaceAll(robustEnv("RINGKV_ROBUSTNESS_FAULTS", ""), " ", ""), ",")
	for _, f := range faultMenu() {
		if want[0] == "" || slices.Contains(want, f.name) {
			menu = append(menu, f)
		}
	}
	if len(menu) == 0 {
		t.Fatalf("RINGKV_ROBUSTNESS_FAULTS=%q names no fault", want)
	}

	fp := failpointBinary(t)
	_, hosts, nodes := labCluster(t, size, "--replicas", "3", "--request-timeout", "3s", "--anti-entropy-interval", "20s")
	for _, c := range nodes {
		c.bin = fp
		c.dir = mountTmpfs(t, "512m") // for the diskfull fault
	}
	nodes[0].start()
	for _, c := range nodes[1:] {
		c.start("--join", nodes[0].gossip)
	}
	waitCond(t, 60*time.Second, "every node sees every node alive", func() (bool, string) { return seesAll(nodes) })
	r := &robust{t: t, hosts: hosts, nodes: nodes, h: &history{t0: time.Now(), byVal: map[string]int{}}}

	wl := &checkLoad{clients: 4, keys: 100, prefix: "rb", deletes: true, seed: seed, nodes: nodes}
	wl.Start()

	// The faults: one at a time, each held a few seconds, then healed;
	// the cluster must recover (every node sees every node alive) before
	// the next. The campaign starts no fault past its duration.
	var records []faultRecord
	order := rng.Perm(len(menu))
	for i := 0; time.Since(r.h.t0) < duration || i < len(menu); i++ {
		f := menu[order[i%len(menu)]]
		victim := rng.IntN(len(nodes))
		time.Sleep(2 * time.Second) // traffic between faults
		rec := faultRecord{Kind: f.name, Victim: nodes[victim].id, At: time.Since(r.h.t0).Seconds()}
		r.event("inject %s on %s", f.name, nodes[victim].id)
		heal := f.inject(r, victim)
		hold := time.Duration(5+rng.IntN(5)) * time.Second
		time.Sleep(hold) // the fault's length is the scenario
		heal()
		rec.Held = time.Since(r.h.t0).Seconds() - rec.At
		r.event("healed %s on %s", f.name, nodes[victim].id)
		took := waitCond(t, 90*time.Second, "recovery from "+f.name, func() (bool, string) { return seesAll(nodes) })
		rec.RecoveredS = took.Seconds()
		records = append(records, rec)
		t.Logf("%s on %s: held %.1fs, every node saw every node alive %.1fs after the heal", f.name, rec.Victim, rec.Held, rec.RecoveredS)
	}
	time.Sleep(2 * time.Second)
	h := r.h
	r.mu.Lock()
	wl.Stop(h)
	r.mu.Unlock()
	r.event("workload stopped")
	violations := wl.Check(t, h)
	if dir := os.Getenv("RINGKV_ROBUSTNESS_REPORT"); dir != "" {
		rep := map[string]any{
			"seed": seed, "nodes": size, "duration_seconds": duration.Seconds(), "faults": records,
			"writes": len(h.writes), "reads": len(h.reads), "violations": violations, "events": h.events,
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("report: %s", filepath.Join(dir, "report.json"))
	}
}

// fillUpTo writes a file of up to n bytes of zeros, fewer if the
// filesystem fills first (a node may write beside it), and returns how
// many it wrote.
func fillUpTo(t *testing.T, path string, n int64) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var done int64
	for done < n {
		w, err := f.Write(chunk[:min(n-done, int64(len(chunk)))])
		done += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	return done
}
