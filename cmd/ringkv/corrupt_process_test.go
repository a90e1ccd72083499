package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/engine"
)

// flipTable overwrites 16 bytes of the largest live .sst of the stopped
// store in dir at its middle (or, with fromEnd > 0, that many bytes before
// its end) and returns its name. Live: a node killed right after a
// compaction may leave obsolete tables behind, which nothing reads.
func flipTable(t *testing.T, dir string, fromEnd int64) string {
	t.Helper()
	rep, err := engine.Check(dir, nil)
	if err != nil || len(rep.Damaged) > 0 {
		t.Fatalf("check before the damage: %+v %v", rep.Damaged, err)
	}
	var name string
	var size int64
	for _, n := range rep.Files {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.Size() > size {
			name, size = n, fi.Size()
		}
	}
	if name == "" {
		t.Fatalf("no .sst in %s", dir)
	}
	off := size / 2
	if fromEnd > 0 {
		off = size - fromEnd
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x5a
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return name
}

// lsmCorruption is the corruption part of GET /v1/lsm.
type lsmCorruption struct {
	Corruption struct {
		Events int64 `json:"events"`
		Spans  []struct {
			File  string `json:"file"`
			State string `json:"state"`
		} `json:"spans"`
	} `json:"corruption"`
}

// TestDamagedReplicaServesAndIsRepaired: one of 3 replicas gets a flipped
// block in the middle of its largest SSTable while stopped. Restarted, it
// stays up through anti-entropy passes that read the block, every quorum
// read through it returns the value, it excises the span and pulls it
// back from the other two, and afterwards `ringkv check` finds its store
// clean and it answers every key from its own copy.
func TestDamagedReplicaServesAndIsRepaired(t *testing.T) { damagedReplicaRepaired(t, 0) }

// TestUnreadableTableRepairedInCluster: the same with the table's footer
// damaged, so that the file cannot even be opened: the node starts (it
// has other replicas), holds the table's span out of service, and
// repairs it as above.
func TestUnreadableTableRepairedInCluster(t *testing.T) { damagedReplicaRepaired(t, 20) }

// damagedReplicaRepaired runs the tests above, flipping bytes of the
// largest table of one replica at off (0: the middle; else this many
// bytes before its end).
func damagedReplicaRepaired(t *testing.T, off int64) {
	nodes := newCluster(t, 3, "--anti-entropy-interval", "2s")
	startJoined(t, nodes)
	const keys = 600
	val := func(i int) string { return fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", 200)) }
	for i := range keys {
		if code, b, err := call(http.MethodPut, kvURL(nodes[i%3].http, fmt.Sprint("k", i), "all"), val(i)); err != nil || code != http.StatusNoContent {
			t.Fatalf("put %d: %d %s %v", i, code, b, err)
		}
	}
	bad := nodes[2]
	if code, b, err := call(http.MethodPost, "http://"+bad.http+"/v1/admin/compact", ""); err != nil || code != http.StatusOK {
		t.Fatalf("compact: %d %s %v", code, b, err)
	}
	bad.kill9()
	file := flipTable(t, bad.dir, off)

	// Offline, ringkv check finds the damage (exit 1) and names the file.
	out, errOut, code := runRingkv(t, "check", "--data-dir", bad.dir)
	if code != 1 || !strings.Contains(out, "damaged "+file+" (table) covering tokens [") {
		t.Fatalf("check of the damaged store: exit %d\n%s%s", code, out, errOut)
	}

	bad.start()
	restarted := time.Now()
	// As after any restart, quorum reads through it wait for it to see
	// the others alive again.
	waitAllAlive(t, 30*time.Second, nodes)
	// While it runs, check refuses its directory.
	if _, errOut, code := runRingkv(t, "check", "--data-dir", bad.dir); code != 2 || !strings.Contains(errOut, "in use") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("check of a live node's directory: exit %d %q", code, errOut)
	}
	for i := range keys {
		code, b, err := call(http.MethodGet, kvURL(bad.http, fmt.Sprint("k", i), "quorum"), "")
		if err != nil || code != http.StatusOK || string(b) != val(i) {
			t.Fatalf("quorum get %d through the damaged node: %d %.80q %v", i, code, b, err)
		}
	}
	var lsm lsmCorruption
	poll(t, 60*time.Second, "the damaged span repaired", func() (bool, string) {
		if !bad.running() {
			t.Fatalf("the damaged node died: %v", bad.p.err)
		}
		code, b, err := call(http.MethodGet, "http://"+bad.http+"/v1/lsm", "")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprint(code, err)
		}
		lsm = lsmCorruption{}
		if err := json.Unmarshal(b, &lsm); err != nil {
			return false, err.Error()
		}
		c := lsm.Corruption
		return len(c.Spans) > 0 && c.Spans[0].File == file && c.Spans[0].State == "repaired", fmt.Sprintf("%+v", c)
	})
	if lsm.Corruption.Events == 0 {
		t.Fatal("no corruption event counted")
	}
	t.Logf("repaired %s %s after the restart, %d corruption events", file, time.Since(restarted).Round(time.Millisecond), lsm.Corruption.Events)
	for _, l := range strings.Split(bad.p.logs.String(), "\n") {
		if strings.Contains(l, "corrupt") || strings.Contains(l, "excise") || strings.Contains(l, "repaired") || strings.Contains(l, "background error") {
			t.Log(l)
		}
	}
	// Through two more anti-entropy passes of its own (counted, not
	// timed: a loaded machine makes them slow) it stays up and healthy.
	passes := metric(t, bad.http, "ringkv_anti_entropy_passes_total")
	poll(t, 2*time.Minute, "two more anti-entropy passes on the repaired node", func() (bool, string) {
		if !bad.running() {
			t.Fatalf("the repaired node died: %v", bad.p.err)
		}
		n := metric(t, bad.http, "ringkv_anti_entropy_passes_total")
		return n >= passes+2, fmt.Sprintf("%v passes since the repair", n-passes)
	})
	if code, b, err := call(http.MethodGet, "http://"+bad.http+"/healthz", ""); err != nil || code != http.StatusOK || !strings.Contains(string(b), `"status":"ok"`) {
		t.Fatalf("healthz after repair: %d %s %v", code, b, err)
	}
	if code, b, err := call(http.MethodGet, "http://"+bad.http+"/metrics", ""); err != nil || code != http.StatusOK ||
		!strings.Contains(string(b), "ringkv_corruption_errors_total ") || !strings.Contains(string(b), "ringkv_corruption_repairs_total 1") {
		t.Fatalf("metrics lack the corruption counters: %d %v", code, err)
	}
	// Its own copy holds every key again: with the two others down, it
	// answers each at consistency=one.
	nodes[0].kill9()
	nodes[1].kill9()
	for i := range keys {
		code, b, err := call(http.MethodGet, kvURL(bad.http, fmt.Sprint("k", i), "one"), "")
		if err != nil || code != http.StatusOK || string(b) != val(i) {
			t.Fatalf("get %d at one from the repaired node alone: %d %.80q %v", i, code, b, err)
		}
	}
	bad.kill9()
	if out, errOut, code := runRingkv(t, "check", "--data-dir", bad.dir); code != 0 || !strings.Contains(out, "clean") {
		t.Fatalf("check after repair: exit %d\n%s%s", code, out, errOut)
	}
}

// TestDamagedFooterStopsServe: a node whose SSTable footer is damaged
// exits 1 at start with one line naming the file and suggesting ringkv
// check, and no panic or stack trace.
func TestDamagedFooterStopsServe(t *testing.T) {
	dir := t.TempDir()
	p := startNode(t, dir, "--gossip-addr", freeGossipAddr(t, map[string]bool{}))
	p.waitHealthy()
	for i := range 300 {
		p.put(fmt.Sprint("k", i), strings.Repeat("v", 100))
	}
	if code, b, err := call(http.MethodPost, "http://"+p.addr+"/v1/admin/compact", ""); err != nil || code != http.StatusOK {
		t.Fatalf("compact: %d %s %v", code, b, err)
	}
	p.kill()
	file := flipTable(t, dir, 20)

	p = startNode(t, dir, "--gossip-addr", freeGossipAddr(t, map[string]bool{}))
	code := p.exitCode(30 * time.Second)
	logs := p.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "ringkv serve: ") || !strings.Contains(last, file) || !strings.Contains(last, "ringkv check") {
		t.Fatalf("damaged footer: exit %d, last line %q\n%s", code, last, logs)
	}
	if strings.Contains(logs, "goroutine ") || strings.Contains(logs, "panic") {
		t.Fatalf("damaged footer: a panic or stack trace\n%s", logs)
	}
	out, _, code := runRingkv(t, "check", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, file) {
		t.Fatalf("check of the damaged footer: exit %d\n%s", code, out)
	}
}

// TestCheckUsage: bad flags and a directory that is not a store exit 2.
func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check"}, {"check", "--bogus"}, {"check", "--data-dir", t.TempDir()}, {"check", "--data-dir", filepath.Join(t.TempDir(), "missing")}} {
		if _, errOut, code := runRingkv(t, args...); code != 2 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "ringkv check: ") {
			t.Errorf("ringkv %v: exit %d %q; want 2 and one line", args, code, errOut)
		}
	}
}

// TestDamagedBlockOnSingleNode: a lone node with a flipped block keeps
// serving: reads that meet the damage answer 500 naming the file and its
// token span, every other key reads, and it stays up.
func TestDamagedBlockOnSingleNode(t *testing.T) {
	dir := t.TempDir()
	p := startNode(t, dir, "--gossip-addr", freeGossipAddr(t, map[string]bool{}))
	p.waitHealthy()
	const keys = 600
	for i := range keys {
		p.put(fmt.Sprint("k", i), strings.Repeat("v", 200))
	}
	if code, b, err := call(http.MethodPost, "http://"+p.addr+"/v1/admin/compact", ""); err != nil || code != http.StatusOK {
		t.Fatalf("compact: %d %s %v", code, b, err)
	}
	p.kill()
	file := flipTable(t, dir, 0)
	p = startNode(t, dir, "--gossip-addr", freeGossipAddr(t, map[string]bool{}))
	p.waitHealthy()
	failed := 0
	for i := range keys {
		code, b, err := call(http.MethodGet, "http://"+p.addr+"/v1/kv/k"+fmt.Sprint(i), "")
		if err != nil {
			t.Fatalf("get %d: %v\n%s", i, err, p.logs)
		}
		switch code {
		case http.StatusOK:
		case http.StatusInternalServerError:
			failed++
			if !strings.Contains(string(b), `"error":"cannot read \"k`) || !strings.Contains(string(b), `engine: corruption in file `+file+` covering tokens [`) {
				t.Fatalf("get %d: 500 %s; want the file and its tokens", i, b)
			}
		default:
			t.Fatalf("get %d: %d %s", i, code, b)
		}
	}
	if failed == 0 || failed > keys/4 {
		t.Fatalf("%d of %d reads failed; want those of the damaged block only", failed, keys)
	}
	code, b, err := call(http.MethodGet, "http://"+p.addr+"/healthz", "")
	if err != nil || code != http.StatusOK || !strings.Contains(string(b), `"status":"degraded"`) || !strings.Contains(string(b), file) {
		t.Fatalf("healthz: %d %s %v", code, b, err)
	}
	// A compaction over the block fails; the node stays up.
	if code, _, err := call(http.MethodPost, "http://"+p.addr+"/v1/admin/compact", ""); err != nil || code != http.StatusInternalServerError {
		t.Fatalf("compact over the damage: %d %v", code, err)
	}
	time.Sleep(2 * time.Second)
	select {
	case <-p.done:
		t.Fatalf("the node died: %v\n%s", p.err, p.logs)
	default:
	}
	if logs := p.logs.String(); strings.Contains(logs, "goroutine ") || strings.Contains(logs, "panic") {
		t.Fatalf("a panic or stack trace in the logs\n%s", logs)
	}
	t.Logf("%d of %d keys in the damaged block answered 500", failed, keys)
}
