package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/peer/peertest/casmodel"
)

// TestCompareAndSetLinearizable is the proof of per-key linearizable
// compare-and-set on real processes: six clients, two bound to each node
// of a 3-node cluster on hosts of its own (a netLab), run serial reads,
// counter increments (CompareAndSwap from the version last read),
// creates (PutIfAbsent) and conditional deletes on four hot keys, while
// one node is killed with SIGKILL and restarted, one is cut off from the
// others and healed, and one runs with its clock off; then porcupine
// checks each key's history against a register. A write whose outcome
// the client cannot know (outcome unknown, a timeout, a lost connection)
// may or may not have happened, at any time after its call; a 503 that
// is not "outcome unknown" is held to its word that nothing was applied.
// The two counters, never deleted, must end between their acknowledged
// increments and those plus the increments of unknown outcome.
//
// It needs root and nftables as the robustness suite does (needNetLab),
// and takes about 30s. On a violation porcupine's visualization is
// written to $RINGKV_CASLIN_ARTIFACTS/history.html (else to a new
// temporary directory), its path in the failure.
func TestCompareAndSetLinearizable(t *testing.T) {
	needNetLab(t)
	fp := failpointBinary(t)
	_, hosts, nodes := labCluster(t, 3, "--replicas", "3", "--request-timeout", "2s", "--anti-entropy-interval", "20s")
	for _, c := range nodes {
		c.bin = fp // for the clock fault
	}
	nodes[0].start()
	for _, c := range nodes[1:] {
		c.start("--join", nodes[0].gossip)
	}
	waitCond(t, 60*time.Second, "every node sees every node alive", func() (bool, string) { return seesAll(nodes) })
	// A round needs a quorum of settled owners.
	settled := func() (bool, string) {
		for _, n := range nodes {
			if st, err := status(n.http); err != nil || !st.Settled {
				return false, fmt.Sprintf("%s: settled %v, %v", n.id, err == nil && st.Settled, err)
			}
		}
		return true, ""
	}
	poll(t, 60*time.Second, "every node settled", settled)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	w := &linWorkload{t0: time.Now(), seed: seed}
	for i := range 6 {
		// Short attempts: a request to a node that is gone or cut off
		// ends in seconds, so a phase never waits on one.
		c, err := client.Config{Addrs: []string{nodes[i%len(nodes)].http}, Timeout: 3 * time.Second}.New()
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseIdleConnections()
		w.clients = append(w.clients, c)
	}
	for _, k := range linCounters {
		w.create(t.Context(), 0, k, "0:init")
		if !w.ops[len(w.ops)-1].out.applied {
			t.Fatalf("creating counter %s: %s", k, w.ops[len(w.ops)-1].out.err)
		}
	}
	w.start()

	// The faults, one a phase, each on another node, each healed and
	// the cluster whole again before the next.
	rng := rand.New(rand.NewPCG(seed, 3))
	victims := rng.Perm(len(nodes))
	traffic := func() { time.Sleep(2 * time.Second) } // the workload runs meanwhile
	hold := func() { time.Sleep(4 * time.Second) }    // the fault's length is the scenario
	whole := func(what string) {
		waitCond(t, 60*time.Second, "recovery from "+what, func() (bool, string) { return seesAll(nodes) })
		poll(t, 60*time.Second, "every node settled after "+what, settled)
	}
	traffic()
	v := nodes[victims[0]]
	w.event("kill -9 " + v.id)
	v.kill9()
	hold()
	v.start()
	w.event("restarted " + v.id)
	whole("kill -9")

	traffic()
	h := hosts[victims[1]]
	var others []*labHost
	for i, o := range hosts {
		if i != victims[1] {
			others = append(others, o)
		}
	}
	w.event("cut " + h.name + " off")
	h.cut(false, others...)
	hold()
	h.heal()
	w.event("healed " + h.name)
	whole("the partition")

	traffic()
	v = nodes[victims[2]]
	off := []string{"1s", "-1s"}[rng.IntN(2)]
	v.kill9()
	v.env = []string{"RINGKV_FAILPOINT_CLOCK_OFFSET=" + off}
	v.start()
	w.event(v.id + " restarted with its clock " + off + " off")
	hold()
	v.kill9()
	v.env = nil
	v.start()
	w.event(v.id + " restarted with its clock right")
	whole("the clock offset")
	traffic()
	w.stop()

	// The counters' final values, by serial reads through a node (also
	// checked as operations of the history).
	final := map[string]int{}
	for _, k := range linCounters {
		w.read(t.Context(), 0, k)
		op := w.ops[len(w.ops)-1]
		if op.out.err != "" {
			t.Fatalf("final serial read of %s: %s", k, op.out.err)
		}
		final[k] = counterOf(op.out.value)
	}

	ops := w.history(t)
	counts := map[string]int{}
	for _, op := range w.ops {
		counts[op.kind+" "+op.out.String()]++
	}
	t.Logf("%d operations: %v", len(w.ops), counts)
	t.Logf("events: %s", strings.Join(w.events, "; "))
	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(casmodel.Model, ops, 30*time.Second)
	t.Logf("porcupine: %s in %s", res, time.Since(began).Round(time.Millisecond))
	if res != porcupine.Ok {
		dir := os.Getenv("RINGKV_CASLIN_ARTIFACTS")
		if dir == "" {
			dir, _ = os.MkdirTemp("", "ringkv-caslin")
		}
		path := filepath.Join(dir, "history.html")
		if err := porcupine.VisualizePath(casmodel.Model, info, path); err != nil {
			t.Logf("visualization: %v", err)
		}
		t.Errorf("the history of %d operations is %s, not linearizable: see %s", len(ops), res, path)
	}

	for _, k := range linCounters {
		acked, unknown := 0, 0
		for _, op := range w.ops {
			if op.key == k && op.kind == "cas" {
				switch {
				case op.out.applied:
					acked++
				case op.out.unknown:
					unknown++
				}
			}
		}
		if final[k] < acked || final[k] > acked+unknown {
			t.Errorf("counter %s is %d after %d acknowledged increments and %d of unknown outcome", k, final[k], acked, unknown)
		}
		t.Logf("counter %s: %d, after %d acknowledged increments and %d of unknown outcome", k, final[k], acked, unknown)
	}
	// A run that did next to nothing proves nothing.
	if counts["cas applied"] < 50 || counts["read ok"] < 100 || counts["create applied"] < 3 || counts["delete applied"] < 3 || counts["cas condition-failed"] < 10 {
		t.Errorf("too few operations of some kind succeeded: %v", counts)
	}
}

// The hot keys: counters are only incremented; registers are created,
// swapped and deleted.
var (
	linCounters  = []string{"lin/ctr0", "lin/ctr1"}
	linRegisters = []string{"lin/reg0", "lin/reg1"}
)

// A value is "N:TAG", N the counter, TAG unique to the write, so a
// value names the one write that made it and the model can follow
// values where the clients compare versions.
func counterOf(v string) int {
	n, _ := strconv.Atoi(strings.SplitN(v, ":", 2)[0])
	return n
}

// linOp is one operation of the history.
type linOp struct {
	client     int
	kind       string // read, cas, create, delete
	key        string
	expect     string // the value the condition names ("" absent): that of the version it was read at
	next       string // the value written ("" for a delete)
	call, ret  time.Time
	out        linOutcome
	version    client.Version // a read's or an applied write's
	current    client.Version // a failed condition's
	curPresent bool
}

// linOutcome is an operation's answer, as porcupine's output.
type linOutcome struct {
	value   string // a read's value, or a failed condition's current one if known
	known   bool   // of a failed condition: value is the current value
	applied bool
	failed  bool // a write not applied (412 when condFailed, else a 503 saying so)
	cond    bool // failed: the condition did not hold
	unknown bool
	err     string // a read that failed (left out of the history), or why a write's outcome is unknown
}

func (o linOutcome) String() string {
	switch {
	case o.applied:
		return "applied"
	case o.cond:
		return "condition-failed"
	case o.failed:
		return "not-applied"
	case o.unknown:
		return "unknown"
	case o.err != "":
		return "error"
	}
	return "ok"
}

// linWorkload runs the clients and keeps the history.
type linWorkload struct {
	t0      time.Time
	seed    uint64
	clients []*client.Client
	done    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	ops    []*linOp
	events []string
}

func (w *linWorkload) event(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, fmt.Sprintf("%.1fs %s", time.Since(w.t0).Seconds(), s))
}

func (w *linWorkload) add(op *linOp) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, op)
}

// classify sets a write's outcome from its error.
func classify(op *linOp, err error) {
	var ce *client.ConditionError
	var se *client.StatusError
	switch {
	case err == nil:
		op.out.applied = true
	case errors.As(err, &ce):
		op.out.failed, op.out.cond = true, true
		op.current, op.curPresent = ce.Current, ce.Exists
	case errors.Is(err, client.ErrOutcomeUnknown):
		op.out.unknown, op.out.err = true, err.Error()
	case errors.As(err, &se) && (se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests):
		// The node says nothing of it was applied; held to that.
		op.out.failed, op.out.err = true, err.Error()
	default:
		// A timeout, a lost connection, a 504: it may have been applied.
		op.out.unknown, op.out.err = true, err.Error()
	}
}

func (w *linWorkload) read(ctx context.Context, c int, key string) (string, client.Version, bool) {
	op := &linOp{client: c, kind: "read", key: key, call: time.Now()}
	val, v, err := w.clients[c].GetVersioned(ctx, key)
	op.ret = time.Now()
	switch {
	case err == nil:
		op.out.value, op.version = string(val), v
	case errors.Is(err, client.ErrNotFound):
	default:
		op.out.err = err.Error()
	}
	w.add(op)
	return op.out.value, v, op.out.err == ""
}

func (w *linWorkload) create(ctx context.Context, c int, key, val string) *linOp {
	op := &linOp{client: c, kind: "create", key: key, next: val, call: time.Now()}
	v, err := w.clients[c].PutIfAbsent(ctx, key, []byte(val))
	op.ret, op.version = time.Now(), v
	classify(op, err)
	w.add(op)
	return op
}

func (w *linWorkload) swap(ctx context.Context, c int, key, old string, oldV client.Version, val string) *linOp {
	op := &linOp{client: c, kind: "cas", key: key, expect: old, next: val, call: time.Now()}
	v, err := w.clients[c].CompareAndSwap(ctx, key, oldV, []byte(val))
	op.ret, op.version = time.Now(), v
	classify(op, err)
	w.add(op)
	return op
}

func (w *linWorkload) del(ctx context.Context, c int, key, old string, oldV client.Version) *linOp {
	op := &linOp{client: c, kind: "delete", key: key, expect: old, call: time.Now()}
	v, err := w.clients[c].DeleteIf(ctx, key, oldV)
	op.ret, op.version = time.Now(), v
	classify(op, err)
	w.add(op)
	return op
}

// start runs every client until stop: read a hot key, then increment it
// (a counter), or create, swap or delete it (a register), from what was
// read; now and then a create of a key that exists, or a swap from a
// version read earlier.
func (w *linWorkload) start() {
	w.done = make(chan struct{})
	for c := range w.clients {
		w.wg.Go(func() {
			rng := rand.New(rand.NewPCG(w.seed, uint64(c)))
			ctx := context.Background()
			pause := func() bool { // after an error: no busy loop on a node that is down
				select {
				case <-w.done:
					return false
				case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
					return true
				}
			}
			stale := map[string][2]string{} // key: a value and version read before
			for seq := 0; ; seq++ {
				select {
				case <-w.done:
					return
				default:
				}
				tag := fmt.Sprintf("c%d.%d", c, seq)
				keys := linCounters
				if rng.IntN(2) == 0 {
					keys = linRegisters
				}
				key := keys[rng.IntN(len(keys))]
				val, v, ok := w.read(ctx, c, key)
				if !ok {
					pause()
					continue
				}
				var op *linOp
				switch {
				case keys[0] == linCounters[0] && val != "":
					if s, ok := stale[key]; ok && rng.IntN(8) == 0 {
						val, v = s[0], client.Version(s[1])
					}
					op = w.swap(ctx, c, key, val, v, fmt.Sprintf("%d:%s", counterOf(val)+1, tag))
				case keys[0] == linCounters[0]:
					continue
				case val == "" || rng.IntN(10) == 0:
					op = w.create(ctx, c, key, "0:"+tag)
				case rng.IntN(4) == 0:
					op = w.del(ctx, c, key, val, v)
				default:
					op = w.swap(ctx, c, key, val, v, fmt.Sprintf("%d:%s", counterOf(val)+1, tag))
				}
				if val != "" {
					stale[key] = [2]string{val, string(v)}
				}
				if (op.out.failed && !op.out.cond || op.out.unknown) && !pause() {
					return
				}
			}
		})
	}
}

func (w *linWorkload) stop() {
	close(w.done)
	w.wg.Wait()
}

// history turns the operations into porcupine's, each value found for
// the versions the clients saw: reads and applied writes name both, a
// failed condition only the version.
func (w *linWorkload) history(t *testing.T) []porcupine.Operation {
	t.Helper()
	vals := map[client.Version]string{}
	note := func(v client.Version, val string) {
		if v == "" {
			return
		}
		if old, ok := vals[v]; ok && old != val {
			t.Errorf("version %s names two values, %q and %q", v, old, val)
		}
		vals[v] = val
	}
	for _, op := range w.ops {
		switch {
		case op.kind == "read" && op.out.err == "" && op.out.value != "":
			note(op.version, op.out.value)
		case op.kind != "read" && op.out.applied:
			note(op.version, op.next)
		}
	}
	// Each operation's output, a failed condition's current value found
	// by its version.
	outs := make([]linOutcome, len(w.ops))
	observed := map[string]map[string]bool{} // key: the values some operation saw or named
	unresolvedOn := map[string]bool{}        // keys with a failed condition of unknown current value
	see := func(key, val string) {
		if observed[key] == nil {
			observed[key] = map[string]bool{}
		}
		observed[key][val] = true
	}
	resolved, unresolved := 0, 0
	for i, op := range w.ops {
		out := op.out
		if out.cond {
			switch val, ok := vals[op.current]; {
			case !op.curPresent:
				out.value, out.known = "", true
			case ok:
				out.value, out.known = val, true
				resolved++
			default:
				unresolved++ // written by an operation of unknown outcome, never read
				unresolvedOn[op.key] = true
			}
		}
		outs[i] = out
		switch {
		case op.kind == "read" && out.err == "":
			see(op.key, out.value)
		case op.kind != "read":
			see(op.key, op.expect)
			if out.known {
				see(op.key, out.value)
			}
		}
	}
	var h []porcupine.Operation
	dropped := 0
	for i, op := range w.ops {
		out := outs[i]
		if op.kind == "read" && out.err != "" {
			continue // a read that failed changed nothing
		}
		ret := op.ret.Sub(w.t0).Nanoseconds()
		if out.unknown {
			if !observed[op.key][op.next] && !unresolvedOn[op.key] {
				// Its value was never seen nor named: had it been
				// applied, nothing after it could have read, replaced
				// or named that value, so it changes no verdict. Left
				// out, it no longer multiplies the checker's search.
				dropped++
				continue
			}
			ret = 1 << 62 // it may take effect at any time after its call
		}
		h = append(h, porcupine.Operation{ClientId: op.client, Input: casmodel.Input{Kind: op.kind, Key: op.key, Expect: op.expect, Next: op.next},
			Call: op.call.Sub(w.t0).Nanoseconds(), Output: out.model(), Return: ret})
	}
	t.Logf("failed conditions: the current value known for %d by its version, unknown for %d; %d writes of unknown outcome never seen, left out", resolved, unresolved, dropped)
	return h
}

// model is o as the shared register model takes it.
func (o linOutcome) model() casmodel.Output {
	return casmodel.Output{Value: o.value, Known: o.known, Applied: o.applied, CondFailed: o.cond,
		NotApplied: o.failed && !o.cond, Unknown: o.unknown}
}
