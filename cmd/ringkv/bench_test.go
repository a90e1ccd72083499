package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBenchFlagErrors: a bad value stops bench with one line naming the
// flag and exit code 2, before any request or directory.
func TestBenchFlagErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("RINGKV_ADDR", "")
	os.Unsetenv("RINGKV_ADDR")
	f := func(wantInMsg string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"bench"}, args...), nil, &out, &errb)
		msg := errb.String()
		if code != exitUsage || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, wantInMsg) {
			t.Fatalf("bench %v: exit %d, stderr %q; want exit 2 and one line containing %q", args, code, msg, wantInMsg)
		}
		if !strings.HasPrefix(msg, "ringkv bench") {
			t.Fatalf("bench %v: stderr %q does not start with the command", args, msg)
		}
		if m, _ := filepath.Glob("*"); len(m) != 0 {
			t.Fatalf("bench %v created %v", args, m)
		}
	}
	f("--workload", "--workload", "d")
	f("--distribution", "--distribution", "latest")
	f("--preload", "--preload", "maybe")
	f("--duration", "--duration", "soon")
	f("--duration", "--duration", "0s")
	f("--rate", "--rate", "-5")
	f("--concurrency", "--concurrency", "0")
	f("--keys", "--keys", "0")
	f("--value-size", "--value-size", "lots")
	f("--zipf-theta", "--zipf-theta", "1.5")
	f("--scan-limit", "--scan-limit", "0")
	f("--addr", "--addr", "ftp://h:1")
	f("--addr", "--addr", ",")
	f("--timeout", "--timeout", "0s")
	f("--key-prefix", "--key-prefix", "")
	f("unknown flag --nope", "--nope")
	f("unexpected argument", "extra")
	f("--duration", "compaction", "--duration", "0s")
	f("--profiles", "compaction", "--profiles", "fast")
	f("--distribution", "compaction", "--distribution", "latest")
	f("--keys", "compaction", "--keys", "0")
	f("--writes", "compaction", "--writes", "-1")
	f("--concurrency", "compaction", "--concurrency", "0")
	f("--value-size", "compaction", "--value-size", "big")
	f("unexpected argument", "compaction", "now")
	f("--batch-size (0) must be between 1 and 1000", "--workload", "batch-put", "--batch-size", "0")
	f("--batch-size (1001) must be between 1 and 1000", "--workload", "batch-get", "--batch-size", "1001")
	f("--batch-size", "--batch-size", "many")
	f("--batch-size: only batch-put and batch-get send batches", "--workload", "put", "--batch-size", "10")
	f("--batch-size: only batch-put and batch-get send batches", "--workload", "cas", "--batch-size", "10")
	f("--scan-limit: only the scan workload", "--workload", "batch-put", "--scan-limit", "10")
	f("--scan-limit: only the scan workload", "--workload", "cas", "--scan-limit", "10")
	f("--value-size: the cas workload's values are its counters", "--workload", "cas", "--value-size", "1KiB")
	f("--rate: the cas workload runs closed-loop", "--workload", "cas", "--rate", "100")
	f("--preload always: the cas workload makes its own counters", "--workload", "cas", "--preload", "always")
	f("--workload \"cas2\": want put, get, a, b, c, scan, cas, batch-put or batch-get", "--workload", "cas2")

	// A node that is not there is exit 2 too, before anything is written.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	f("cannot reach "+addr, "--addr", addr, "--duration", "1s")
}

func TestBenchHelp(t *testing.T) {
	for _, args := range [][]string{{"bench", "-h"}, {"bench", "compaction", "--help"}} {
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb); code != exitOK || !strings.Contains(out.String(), "-duration") || errb.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}

// TestBenchRun runs 'ringkv bench' for a second against a fake node: exit
// 0, the summary on stdout, progress on stderr, both report files; then
// the same with a node that fails every PUT: exit 3, report still written.
func TestBenchRun(t *testing.T) {
	t.Chdir(t.TempDir())
	var failPuts atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/lsm":
			w.Write([]byte(`{"l0_sublevels":1,"flushes":2,"stalls":{"count":0,"duration_ns":0}}`))
		case r.Method == http.MethodPut && failPuts.Load():
			w.WriteHeader(503)
			w.Write([]byte(`{"error":"too few replicas"}`))
		case r.Method == http.MethodPut:
			w.WriteHeader(204)
		default:
			w.Write([]byte("value"))
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var out, errb bytes.Buffer
	code := run([]string{"bench", "--addr", addr, "--workload", "c", "--duration", "1s", "--concurrency", "2",
		"--keys", "10", "--out", "r1"}, nil, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	for _, want := range []string{"requests ", "p99.9", "report     r1/report.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "req/s") || !strings.Contains(errb.String(), "preload: skipped") {
		t.Errorf("stderr:\n%s", errb.String())
	}
	var rep map[string]any
	raw, err := os.ReadFile("r1/report.json")
	if err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("report.json: %v", err)
	}
	if _, err := os.Stat("r1/report.html"); err != nil {
		t.Fatal(err)
	}

	failPuts.Store(true)
	out.Reset()
	errb.Reset()
	code = run([]string{"bench", "--addr", "http://" + addr, "--workload", "put", "--duration", "500ms", "--rate", "50",
		"--out", "r2"}, nil, &out, &errb)
	if code != exitBenchErrors || !strings.Contains(out.String(), "503: ") || !strings.Contains(out.String(), "too few replicas") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if _, err := os.Stat("r2/report.html"); err != nil {
		t.Fatal(err)
	}
}

// TestBenchCompactionRun: one profile, briefly, through the command line.
func TestBenchCompactionRun(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	code := run([]string{"bench", "compaction", "--duration", "200ms", "--writes", "3000", "--keys", "1000", "--concurrency", "1",
		"--profiles", "pebble-defaults,write-heavy", "--out", "m"}, nil, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "| pebble-defaults |") || !strings.Contains(out.String(), "| write-heavy |") {
		t.Errorf("table:\n%s", out.String())
	}
	var res struct {
		Rows []struct{ Name string } `json:"rows"`
	}
	raw, err := os.ReadFile("m/compaction.json")
	if err != nil || json.Unmarshal(raw, &res) != nil || len(res.Rows) != 2 {
		t.Fatalf("compaction.json: %v %s", err, raw)
	}
}

// TestBenchCompactionHonoursDuration: --duration bounds each profile even
// with --writes at its default (4M writes once made --duration 10s run
// 116s), and the table says the writes were cut short.
func TestBenchCompactionHonoursDuration(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	code := run([]string{"bench", "compaction", "--duration", "400ms", "--concurrency", "1",
		"--profiles", "pebble-defaults", "--out", "m"}, nil, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	var res struct {
		Writes int
		Rows   []struct {
			WriteOps  int  `json:"write_ops"`
			WritesCut bool `json:"writes_cut"`
		} `json:"rows"`
	}
	raw, err := os.ReadFile("m/compaction.json")
	if err != nil || json.Unmarshal(raw, &res) != nil || len(res.Rows) != 1 {
		t.Fatalf("compaction.json: %v %s", err, raw)
	}
	if r := res.Rows[0]; r.WriteOps >= res.Writes || !r.WritesCut {
		t.Errorf("%d of %d writes, cut %v: --duration did not bound the write phase", r.WriteOps, res.Writes, r.WritesCut)
	}
	if !strings.Contains(out.String(), "reached half of --duration") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestBenchCASExit: a cas run whose counters total the acknowledged
// increments exits 0 with the check on stdout; against a node that
// acknowledges increments it drops, exit 1 and the mismatch on stderr.
func TestBenchCASExit(t *testing.T) {
	t.Chdir(t.TempDir())
	var mu sync.Mutex
	kv := map[string]string{}
	ver := 0
	var lose atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		cur, ok := kv[key]
		curVer, _, _ := strings.Cut(cur, " ")
		switch {
		case !strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			w.WriteHeader(404)
		case r.Method == http.MethodGet && !ok:
			w.WriteHeader(404)
		case r.Method == http.MethodGet:
			v, val, _ := strings.Cut(cur, " ")
			w.Header().Set("X-Ringkv-Version", v)
			w.Write([]byte(val))
		case (r.Header.Get("If-None-Match") == "*" && ok) || (r.Header.Get("If-Match") != "" && r.Header.Get("If-Match") != `"`+curVer+`"`):
			w.WriteHeader(412)
			w.Write([]byte(`{"error":"condition failed","exists":true,"version":"` + curVer + `"}`))
		default:
			body := new(bytes.Buffer)
			body.ReadFrom(r.Body)
			ver++
			if !lose.Load() || ver%7 != 0 {
				kv[key] = "v" + strconv.Itoa(ver) + " " + body.String()
			}
			w.WriteHeader(204)
		}
	}))
	defer srv.Close()
	args := []string{"bench", "--addr", srv.Listener.Addr().String(), "--workload", "cas", "--duration", "300ms",
		"--concurrency", "4", "--keys", "3"}
	var out, errb bytes.Buffer
	if code := run(append(args, "--out", "r1"), nil, &out, &errb); code != exitOK || !strings.Contains(out.String(), ": match") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	// The counters are counter-N unless --key-prefix says otherwise.
	mu.Lock()
	_, hot := kv["counter-0"]
	mu.Unlock()
	if !hot {
		t.Errorf("no counter-0 among %v", kv)
	}
	lose.Store(true)
	out.Reset()
	errb.Reset()
	code := run(append(args, "--out", "r2"), nil, &out, &errb)
	if code != exitFailure || !strings.Contains(errb.String(), "cas check failed: the counters total") || !strings.Contains(out.String(), "MISMATCH") {
		t.Fatalf("losing node: exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	if _, err := os.Stat("r2/report.json"); err != nil {
		t.Fatal(err)
	}
}
