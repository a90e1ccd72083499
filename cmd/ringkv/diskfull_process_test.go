package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size on a new directory, unmounted when the
// test ends; it skips the test where that cannot be done (not root, no
// mount).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (a real full disk)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file of n bytes (zeros, which tmpfs allocates).
func fill(t *testing.T, path string, n int64) {
	t.Helper()
	if got := fillUpTo(t, path, n); got < n {
		t.Fatalf("fill %s: the filesystem took %d of %d bytes", path, got, n)
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestDiskFullAnswers507 runs a node on a 64MiB tmpfs, mostly taken by a
// filler file, and writes until the disk is full: writes must then be
// answered 507 promptly (never hang), every acknowledged write stay
// readable, /healthz say degraded, the log not flood, writes resume by
// themselves once the filler is deleted, and SIGTERM on a full disk end
// the process.
func TestDiskFullAnswers507(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	data := filepath.Join(mnt, "data")
	fill(t, filepath.Join(mnt, "filler"), 40<<20)
	const timeout = 3 * time.Second
	// Small memtables, so flushes and compactions run while the disk fills.
	p := startNode(t, data, "--memtable-size", "4MiB", "--request-timeout", timeout.String(), "--row-cache-size", "0")
	p.waitHealthy()
	base := "http://" + p.addr
	t.Cleanup(func() {
		if t.Failed() {
			logs := p.logs.String()
			if len(logs) > 8000 {
				logs = "...\n" + logs[len(logs)-8000:]
			}
			t.Logf("--- node logs ---\n%s", logs)
		}
	})

	// Four writers of 4KiB values until one gets 507.
	val := func(k string) string { return k + strings.Repeat(".", 4<<10) }
	var (
		mu       sync.Mutex
		acked    []string
		full     []byte // the first 507's body
		slowest  time.Duration
		failures []string
	)
	stop := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 50000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d-%06d", w, i)
				start := time.Now()
				code, body, err := call(http.MethodPut, base+"/v1/kv/"+k, val(k))
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("PUT %s after %s: %v", k, d, err))
				case code == http.StatusNoContent:
					acked = append(acked, k)
				case code == http.StatusInsufficientStorage:
					if full == nil {
						full = body
					}
					once.Do(func() { close(stop) })
				default:
					failures = append(failures, fmt.Sprintf("PUT %s: %d %s", k, code, body))
				}
				n := len(failures)
				mu.Unlock()
				if n > 0 {
					once.Do(func() { close(stop) })
					return
				}
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("writes failed other than with 507: %v", failures)
	}
	if full == nil {
		t.Fatalf("no 507 after %d acknowledged writes", len(acked))
	}
	t.Logf("%d writes acknowledged before the disk was full; slowest write %s; 507 body %s", len(acked), slowest, full)
	if slowest > timeout+2*time.Second {
		t.Errorf("a write took %s, beyond --request-timeout %s", slowest, timeout)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(full, &e); err != nil {
		t.Fatalf("507 body %q is not a JSON error: %v", full, err)
	}
	for _, want := range []string{"disk full", data, "free", "--min-free-space"} {
		if !strings.Contains(e.Error, want) {
			t.Errorf("507 error %q does not say %q", e.Error, want)
		}
	}

	// Degraded, yet reads work.
	code, body, err := call(http.MethodGet, base+"/healthz", "")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"status":"degraded"`) || !strings.Contains(string(body), `"reason":"disk full"`) {
		t.Errorf("/healthz on a full disk = %d %s %v", code, body, err)
	}
	checkAcked := func(when string) {
		t.Helper()
		for _, k := range acked {
			code, body, err := call(http.MethodGet, base+"/v1/kv/"+k, "")
			if err != nil || code != http.StatusOK || string(body) != val(k) {
				t.Fatalf("%s: acknowledged %s reads %d (%d bytes), %v", when, k, code, len(body), err)
			}
		}
	}
	checkAcked("on the full disk")
	// More refused writes, as a client retrying would send: the log must
	// not grow with them.
	for i := range 300 {
		code, _, err := call(http.MethodPut, base+fmt.Sprintf("/v1/kv/retry-%d", i), "v")
		if err != nil || code != http.StatusInsufficientStorage {
			t.Fatalf("retry %d on a full disk: %d %v", i, code, err)
		}
	}
	logs := p.logs.String()
	if n := strings.Count(logs, "disk full"); n > 10 {
		t.Errorf("%d log lines say disk full; want at most 10", n)
	}
	if n := strings.Count(logs, "level=ERROR"); n > 30 {
		t.Errorf("%d ERROR log lines while the disk was full; want at most 30", n)
	}

	// Space back: writes resume by themselves.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	poll(t, 15*time.Second, "writes taken again after space was freed", func() (bool, string) {
		code, body, err := call(http.MethodPut, base+"/v1/kv/after", val("after"))
		return err == nil && code == http.StatusNoContent, fmt.Sprintf("%d %s %v", code, body, err)
	})
	acked = append(acked, "after")
	code, body, err = call(http.MethodGet, base+"/healthz", "")
	if err != nil || code != http.StatusOK {
		t.Errorf("/healthz once space is back = %d %s %v", code, body, err)
	}

	// Full again, and SIGTERM: the node stops, exit 0.
	fill(t, filepath.Join(mnt, "filler2"), freeBytes(t, mnt)-(256<<10))
	poll(t, 15*time.Second, "writes refused on the full disk again", func() (bool, string) {
		code, body, err := call(http.MethodPut, base+"/v1/kv/again", val("again"))
		if err == nil && code == http.StatusNoContent {
			acked = append(acked, "again")
		}
		return err == nil && code == http.StatusInsufficientStorage, fmt.Sprintf("%d %s %v", code, body, err)
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(30 * time.Second); code != 0 {
		t.Errorf("SIGTERM on a full disk: exit %d", code)
	}
	if err := os.Remove(filepath.Join(mnt, "filler2")); err != nil {
		t.Fatal(err)
	}
	p = startNode(t, data, "--memtable-size", "4MiB")
	p.waitHealthy()
	base = "http://" + p.addr
	checkAcked("after a restart")
}

// TestDiskFullReplica: in a 3-node cluster (N=3) where one node's disk is
// full, quorum writes go on through the other two, their hints for the
// full node are kept, and once it has room again the hints reach it. It
// logs the write latency with and without the full replica (not
// asserted: the machine is shared).
func TestDiskFullReplica(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	nodes := newCluster(t, 3, "--request-timeout", "3s", "--memtable-size", "4MiB", "--row-cache-size", "0")
	nodes[2].dir = filepath.Join(mnt, "n3")
	startJoined(t, nodes)
	n1 := nodes[0].http

	// load sends quorum PUTs through n1 for d with 4 clients and returns
	// the latencies of the acknowledged ones and the failures.
	load := func(prefix string, d time.Duration) (lat []time.Duration, failed []string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for w := range 4 {
			wg.Go(func() {
				for i := 0; time.Now().Before(end); i++ {
					k := fmt.Sprintf("%s-%d-%06d", prefix, w, i)
					start := time.Now()
					code, body, err := call(http.MethodPut, kvURL(n1, k, "quorum"), strings.Repeat("v", 100))
					el := time.Since(start)
					mu.Lock()
					if err == nil && code == http.StatusNoContent {
						lat = append(lat, el)
					} else if len(failed) < 20 {
						failed = append(failed, fmt.Sprintf("%s: %d %s %v", k, code, body, err))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(lat)
		return lat, failed
	}
	pct := func(lat []time.Duration, p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	healthy, failed := load("ok", 5*time.Second)
	if len(failed) > 0 {
		t.Fatalf("writes failed with every replica healthy: %v", failed)
	}

	fill(t, filepath.Join(mnt, "filler"), freeBytes(t, mnt)-(512<<10))
	poll(t, 15*time.Second, "n3 degraded", func() (bool, string) {
		code, body, err := call(http.MethodGet, "http://"+nodes[2].http+"/healthz", "")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(string(body), "disk full"), fmt.Sprintf("%d %s %v", code, body, err)
	})
	degraded, failed := load("full", 5*time.Second)
	if len(failed) > 0 {
		t.Errorf("quorum writes failed with one full replica: %v", failed)
	}
	t.Logf("quorum PUTs through n1, 4 clients, 100-byte values: healthy %d in 5s, p50 %s, p99 %s; n3's disk full %d in 5s, p50 %s, p99 %s",
		len(healthy), pct(healthy, 0.5), pct(healthy, 0.99), len(degraded), pct(degraded, 0.5), pct(degraded, 0.99))
	code, body, err := call(http.MethodPut, kvURL(n1, "all", "all"), "v")
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("PUT at all with a full replica: %d %s %v", code, body, err)
	}
	st, err := status(n1)
	if err != nil || st.HintsPending["n3"] == 0 {
		t.Errorf("n1 keeps no hints for the full n3: %v %v", st.HintsPending, err)
	}

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "hints delivered to n3", func() (bool, string) {
		total := int64(0)
		for _, c := range nodes[:2] {
			st, err := status(c.http)
			if err != nil {
				return false, err.Error()
			}
			total += st.HintsPending["n3"]
		}
		return total == 0, fmt.Sprintf("%d hints for n3", total)
	})
	// n3 owns every key (3 nodes, N=3) and reads itself first: at
	// consistency=one it answers from its own copy, which the hints made.
	for _, k := range []string{"full-0-000000", "full-3-000010"} {
		code, _, err := call(http.MethodGet, kvURL(nodes[2].http, k, "one"), "")
		if err != nil || code != http.StatusOK {
			t.Errorf("GET %s at one through n3: %d %v", k, code, err)
		}
	}
}
