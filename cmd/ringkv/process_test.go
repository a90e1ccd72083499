package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// These tests run the real binary on loopback: crash and restart are
// process-level behaviours that in-process tests cannot show.

var (
	binOnce sync.Once
	binPath string
	binErr  error

	fpOnce sync.Once
	fpPath string
	fpErr  error
)

// failpointBinary builds ./cmd/ringkv with -tags failpoints once per test
// run: a binary whose clock RINGKV_FAILPOINT_CLOCK_OFFSET can offset.
func failpointBinary(t *testing.T) string {
	t.Helper()
	ringkvBinary(t) // skips under -short
	fpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ringkv-fp")
		if err != nil {
			fpErr = err
			return
		}
		fpPath = filepath.Join(dir, "ringkv")
		out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", fpPath, ".").CombinedOutput()
		if err != nil {
			fpErr = fmt.Errorf("go build -tags failpoints: %v\n%s", err, out)
		}
	})
	if fpErr != nil {
		t.Fatal(fpErr)
	}
	return fpPath
}

// ringkvBinary builds ./cmd/ringkv once per test run.
func ringkvBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ringkv-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ringkv")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one ringkv serve process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode starts ringkv serve on a free port with data in dir and waits
// until it answers /healthz.
func startNode(t *testing.T, dir string, extra ...string) *proc {
	t.Helper()
	p := startProc(t, "", nil, append([]string{"serve", "--data-dir", dir, "--http-addr", freeAddr(t)}, extra...)...)
	return p
}

func startProc(t *testing.T, cwd string, env []string, args ...string) *proc {
	t.Helper()
	return startProcAt(t, cwd, "", "", env, args...)
}

// startProcIn starts bin (ringkvBinary's when "") in the network namespace
// netns (this one when "").
func startProcIn(t *testing.T, netns, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startProcAt(t, "", netns, bin, env, args...)
}

func startProcAt(t *testing.T, cwd, netns, bin string, env []string, args ...string) *proc {
	t.Helper()
	if bin == "" {
		bin = ringkvBinary(t)
	}
	p := &proc{t: t, logs: &syncBuffer{}, done: make(chan struct{})}
	for i, a := range args {
		if a == "--http-addr" && i+1 < len(args) {
			p.addr = args[i+1]
		}
	}
	if netns != "" {
		// ip netns exec execs the binary: the process is ringkv itself,
		// so signals reach it.
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", netns, bin}, args...)...)
	} else {
		p.cmd = exec.Command(bin, args...)
	}
	p.cmd.Dir = cwd
	// A test binary that dies (a panic, a timeout) takes its nodes along
	// rather than leaving them serving.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Gossip on a free port unless the test says otherwise, so nodes of
	// parallel tests do not collide on the default 7946.
	p.cmd.Env = append(append(os.Environ(), "RINGKV_GOSSIP_ADDR=127.0.0.1:0"), env...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) waitHealthy() {
	p.t.Helper()
	healthy := false
	defer func() {
		if !healthy {
			p.t.Logf("ringkv at %s, its output:\n%s", p.addr, p.logs)
		}
	}()
	wait.For(p.t, time.Minute, func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("ringkv exited before serving: %v\n%s", p.err, p.logs)
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Degraded (a clock off, a full disk) is serving too: 503 with
		// the reasons, unlike a node not yet up or shutting down.
		return resp.StatusCode == 200 || bytes.Contains(b, []byte(`"status":"degraded"`))
	}, "ringkv at "+p.addr+" to be healthy")
	healthy = true
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// exitCode waits for the process to exit and returns its code.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("ringkv did not exit within %s\n%s", timeout, p.logs)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatal(p.err)
	return -1
}

func (p *proc) url(key string) string { return "http://" + p.addr + "/v1/kv/" + url.PathEscape(key) }

func (p *proc) put(key, val string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, p.url(key), strings.NewReader(val))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("PUT %s: %v", key, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		p.t.Fatalf("PUT %s: %s", key, resp.Status)
	}
}

func (p *proc) get(key string) (string, int) {
	p.t.Helper()
	resp, err := http.Get(p.url(key))
	if err != nil {
		p.t.Fatalf("GET %s: %v", key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// TestKill9KeepsAcknowledgedWrites: every write acknowledged with --sync is
// there after SIGKILL and a restart on the same directory, and the
// restarted node's row cache warm caches each of them.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	p := startNode(t, dir, "--sync=true")
	p.waitHealthy()
	const n = 400
	for i := 0; i < n; i++ {
		p.put(fmt.Sprintf("key/%d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%50)))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.exitCode(10 * time.Second)

	q := startNode(t, dir)
	q.waitHealthy()
	// The restarted node warms its row cache from the store: every key,
	// so the reads below are answered from it.
	poll(t, 30*time.Second, "row cache warm", func() (bool, string) {
		resp, err := http.Get("http://" + q.addr + "/v1/lsm")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var lsm struct {
			RowCache struct {
				Warming bool  `json:"warming"`
				Warmed  int64 `json:"warmed_records"`
			} `json:"row_cache"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&lsm); err != nil {
			return false, err.Error()
		}
		return !lsm.RowCache.Warming && lsm.RowCache.Warmed == n, fmt.Sprintf("%+v", lsm.RowCache)
	})
	for i := 0; i < n; i++ {
		got, code := q.get(fmt.Sprintf("key/%d", i))
		want := fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%50))
		if code != 200 || got != want {
			t.Fatalf("after kill -9, key/%d = %d %q, want %q", i, code, got, want)
		}
	}
}

// TestGracefulShutdown: SIGTERM finishes, exits 0, and a restart with a
// different compaction profile finds the data.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	p := startNode(t, dir)
	p.waitHealthy()
	for i := 0; i < 50; i++ {
		p.put(fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("SIGTERM exit code %d\n%s", code, p.logs)
	}
	if !strings.Contains(p.logs.String(), "engine closed") {
		t.Fatalf("no clean close logged:\n%s", p.logs)
	}
	for _, profile := range []string{"write-heavy", "read-heavy"} {
		q := startNode(t, dir, "--compaction-profile", profile)
		q.waitHealthy()
		for i := 0; i < 50; i++ {
			if got, code := q.get(fmt.Sprint("k", i)); code != 200 || got != fmt.Sprint("v", i) {
				t.Fatalf("profile %s: k%d = %d %q", profile, i, code, got)
			}
		}
		q.cmd.Process.Signal(syscall.SIGINT)
		if code := q.exitCode(30 * time.Second); code != 0 {
			t.Fatalf("SIGINT exit code %d", code)
		}
	}
}

// TestContentionProfiles: with --mutex-profile-fraction and
// --block-profile-rate, /debug/pprof/mutex and /debug/pprof/block carry
// samples (Go records none by default).
func TestContentionProfiles(t *testing.T) {
	p := startNode(t, t.TempDir(), "--mutex-profile-fraction", "1", "--block-profile-rate", "1ns")
	p.waitHealthy()
	for i := range 50 {
		p.put(fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	fetch := func(name string) string {
		t.Helper()
		resp, err := http.Get("http://" + p.addr + "/debug/pprof/" + name + "?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s profile: %d, %v", name, resp.StatusCode, err)
		}
		return string(b)
	}
	if m := fetch("mutex"); !strings.Contains(m, "sampling period=1\n") {
		t.Fatalf("mutex profile not sampling every event:\n%.300s", m)
	}
	if b := fetch("block"); !strings.Contains(b, " @ 0x") {
		t.Fatalf("block profile holds no sample after 50 synced writes:\n%.300s", b)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("SIGTERM exit code %d\n%s", code, p.logs)
	}
}

// TestNodeAddressFromDotEnv: go-kvstore users set NODE_ADDRESS in .env.
func TestNodeAddressFromDotEnv(t *testing.T) {
	cwd := t.TempDir()
	addr := freeAddr(t)
	if err := os.WriteFile(filepath.Join(cwd, ".env"), []byte("NODE_ADDRESS="+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, cwd, nil, "serve", "--data-dir", filepath.Join(cwd, "data"))
	p.addr = addr
	p.waitHealthy()
	p.put("from-dotenv", "yes")

	// The environment beats .env, and RINGKV_HTTP_ADDR beats NODE_ADDRESS.
	p.kill()
	addr2 := freeAddr(t)
	q := startProc(t, cwd, []string{"RINGKV_HTTP_ADDR=" + addr2, "RINGKV_DATA_DIR=" + filepath.Join(cwd, "data")}, "serve")
	q.addr = addr2
	q.waitHealthy()
	if got, code := q.get("from-dotenv"); code != 200 || got != "yes" {
		t.Fatalf("GET = %d %q", code, got)
	}
}

// TestCLI: the client commands' output and exit codes, which scripts rely on.
func TestCLI(t *testing.T) {
	p := startNode(t, t.TempDir())
	p.waitHealthy()
	bin := ringkvBinary(t)
	cli := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--addr", p.addr)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	f := func(stdin string, wantOut string, wantCode int, args ...string) {
		t.Helper()
		out, errs, code := cli(stdin, args...)
		if code != wantCode || (wantOut != "*" && out != wantOut) {
			t.Fatalf("ringkv %v: exit %d stdout %q stderr %q; want exit %d stdout %q", args, code, out, errs, wantCode, wantOut)
		}
		if code != 0 && (errs == "" || strings.Count(strings.TrimSpace(errs), "\n") > 1) {
			t.Fatalf("ringkv %v: want a short message on stderr, got %q", args, errs)
		}
	}
	f("", "", 0, "put", "user/1", "alice")
	f("", "alice", 0, "get", "user/1")
	f("", "", 1, "get", "user/2")
	f("binary\x00value", "", 0, "put", "user/2", "-")
	f("", "binary\x00value", 0, "get", "user/2")
	f("", "", 0, "put", "a key with spaces?&=/", "odd")
	f("", "odd", 0, "get", "a key with spaces?&=/")
	// Scans list keys in token (hash) order, not lexicographic order.
	if out, _, code := cli("", "scan", "--prefix", "user/"); code != 0 ||
		!sameLines(out, "user/1\talice\nuser/2\tbinary\x00value\n") {
		t.Fatalf("scan: exit %d, %q", code, out)
	}
	// Paging: every key once, across pages, and --limit stops early.
	for i := 0; i < 30; i++ {
		f("", "", 0, "put", fmt.Sprint("page/", i), fmt.Sprint(i))
	}
	out, _, code := cli("", "scan", "--prefix", "page/", "--page-size", "7", "--limit", "1000")
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); code != 0 || len(lines) != 30 || len(uniq(lines)) != 30 {
		t.Fatalf("paged scan: exit %d, %d lines", code, len(lines))
	}
	out, _, _ = cli("", "scan", "--prefix", "page/", "--page-size", "7", "--limit", "10")
	if n := strings.Count(out, "\n"); n != 10 {
		t.Fatalf("scan --limit 10 printed %d lines", n)
	}
	f("", "", 0, "delete", "user/1")
	f("", "", 1, "get", "user/1")
	f("", "", 0, "delete", "never-existed")
	f("", "", 2, "get")
	f("", "", 2, "get", "user/1", "--consistency", "most")
	f("", "", 2, "put", "k", "v", "--ttl", "soon")

	// A node that cannot be reached is exit 2, not "not found".
	cmd := exec.Command(bin, "get", "k", "--addr", freeAddr(t), "--timeout", "2s")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(errb.String(), "cannot reach") {
		t.Fatalf("unreachable node: %v %q", err, errb.String())
	}
}

func sameLines(a, b string) bool {
	la, lb := strings.Split(strings.TrimSuffix(a, "\n"), "\n"), strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	slices.Sort(la)
	slices.Sort(lb)
	return slices.Equal(la, lb)
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// TestServeStartupErrors: a gossip address that cannot be listened on is
// the flag's fault (exit 2, naming --gossip-addr); a data directory whose
// stored member list is damaged is the data's (exit 1, naming --data-dir).
func TestServeStartupErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := startNode(t, t.TempDir(), "--gossip-addr", taken.Addr().String())
	if code := p.exitCode(30 * time.Second); code != 2 || !strings.Contains(p.logs.String(), "ringkv serve: --gossip-addr: ") {
		t.Fatalf("taken gossip address: exit %d\n%s", code, p.logs.String())
	}

	dir := t.TempDir()
	e, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMeta("ring-roster", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	p = startNode(t, dir, "--gossip-addr", freeGossipAddr(t, map[string]bool{}))
	if code := p.exitCode(30 * time.Second); code != 1 || !strings.Contains(p.logs.String(), "ringkv serve: --data-dir "+dir+": cannot read the stored member list") {
		t.Fatalf("damaged member list: exit %d\n%s", code, p.logs.String())
	}
}
