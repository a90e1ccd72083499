package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process has to exit after SIGTERM before it is
// killed, as the scripts did (a node closing Pebble may take a while).
const stopGrace = 15 * time.Second

// harness owns what a run creates: a temp dir (binaries, data, logs) and
// every process started in it. close stops the processes still running
// and removes the dir, on every way out (error, Ctrl-C, success).
type harness struct {
	root string // the module's root: builds and wrk scripts are found from it
	work string // the temp dir
	bin  string // work/bin
	keep bool   // keep work on close
	log  io.Writer
	// grace is how long a process has after SIGTERM (stopGrace; tests
	// shorten it).
	grace time.Duration
	hz    float64 // clock ticks a second, of /proc/PID/stat's times

	mu    sync.Mutex
	procs []*proc // started and not yet stopped
}

func newHarness(root, name string, keep bool, log io.Writer) (*harness, error) {
	work, err := os.MkdirTemp("", "ringkv-"+name+".")
	if err != nil {
		return nil, err
	}
	return &harness{root: root, work: work, bin: filepath.Join(work, "bin"), keep: keep, log: log, grace: stopGrace, hz: clockTick()}, nil
}

func (h *harness) logf(format string, a ...any) { fmt.Fprintf(h.log, "== "+format+"\n", a...) }

// close stops every process still running and removes the temp dir
// (unless keep).
func (h *harness) close() {
	h.mu.Lock()
	ps := h.procs
	h.procs = nil
	h.mu.Unlock()
	// Stop them together: each may take stopGrace.
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.stop(h.grace) })
	}
	wg.Wait()
	if h.keep {
		h.logf("kept %s", h.work)
		return
	}
	os.RemoveAll(h.work)
}

// build builds pkgs (module paths like ./cmd/ringkv) into h.bin in one go
// build.
func (h *harness) build(ctx context.Context, pkgs ...string) error {
	h.logf("building %s", strings.Join(pkgs, " "))
	if err := os.MkdirAll(h.bin, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", h.bin + "/"}, pkgs...)...)
	cmd.Dir = h.root
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cannot build %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}

// proc is one process the harness started.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once Wait has returned
	err     error         // Wait's, once done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL; it returns once
// the process has been reaped.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		fmt.Fprintf(os.Stderr, "compare: %s (pid %d) ignored SIGTERM for %s, killing it\n", p.name, p.pid(), grace)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// start runs argv in the background from the temp dir (so that no stray
// .env of the caller's directory applies), its output in work/name.log,
// without NODE_ADDRESS in its environment. prefix (e.g. taskset) goes
// before argv. The process is in a process group of its own, so a Ctrl-C
// at the terminal reaches only the driver, which then stops it in order.
func (h *harness) start(name string, prefix []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(h.work, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	full := append(append([]string{}, prefix...), argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = h.work
	cmd.Env = cleanEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// stop stops p and forgets it.
func (h *harness) stop(p *proc) {
	p.stop(h.grace)
	h.mu.Lock()
	for i, q := range h.procs {
		if q == p {
			h.procs = append(h.procs[:i], h.procs[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
}

func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NODE_ADDRESS=") {
			out = append(out, kv)
		}
	}
	return out
}

// runTo runs argv to completion (bounded by ctx and timeout), its output
// to w; the process is the harness's while it runs.
func (h *harness) runTo(ctx context.Context, timeout time.Duration, w io.Writer, env []string, argv ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = h.work
	cmd.Env = append(cleanEnv(os.Environ()), env...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", filepath.Base(argv[0]), context.Cause(ctx))
		}
		return fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	return nil
}

// freeAddr returns 127.0.0.1:PORT with a port that was free for both TCP
// and UDP (memberlist gossips over both) when it was asked. taken holds
// the ports already handed out in this run, so two picks never collide.
func freeAddr(taken map[int]bool) (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if uerr != nil || taken[port] {
			continue
		}
		u.Close()
		taken[port] = true
		return fmt.Sprintf("127.0.0.1:%d", port), nil
	}
	return "", errors.New("cannot find a free port")
}

// waitFor polls cond every 100ms until it holds, p exits, ctx ends or
// within has passed.
func waitFor(ctx context.Context, p *proc, within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before %s:\n%s", p.name, what, p.tail())
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("no %s within %s", what, within)
			if p != nil {
				msg += ":\n" + p.tail()
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// listening reports whether addr accepts TCP connections.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// getBody GETs http://addr/path and returns the body of a 200.
func getBody(ctx context.Context, addr, path string) ([]byte, error) {
	return getURL(ctx, http.DefaultTransport, "http://"+addr+path)
}

// getURL GETs url through rt and returns the body of a 200.
func getURL(ctx context.Context, rt http.RoundTripper, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

func healthy(ctx context.Context, addr string) bool {
	_, err := getBody(ctx, addr, "/healthz")
	return err == nil
}

// cpuTicks returns utime+stime of pid (fields 14 and 15 of
// /proc/PID/stat) in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

// parseStatTicks reads utime+stime from a /proc/PID/stat line. The comm
// field (2) may hold spaces and parentheses, so fields are counted from
// its last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat line %.60q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("bad stat line %.60q", stat)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

// sumTicks adds up the CPU ticks of ps.
func sumTicks(ps []*proc) (int64, error) {
	var total int64
	for _, p := range ps {
		t, err := cpuTicks(p.pid())
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}

// clockTick is getconf CLK_TCK (100 on every Linux this runs on).
func clockTick() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if v, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && perr == nil && v > 0 {
		return v
	}
	return 100
}

// cpuPerRequest is the server CPU per request in µs, rounded to 2 places
// as the scripts printed it.
func cpuPerRequest(ticks int64, hz float64, requests int64) float64 {
	if requests <= 0 {
		return 0
	}
	return round2(float64(ticks) * 1e6 / hz / float64(requests))
}

// procStatusBytes returns the VmRSS and VmHWM of pid in bytes.
func procStatusBytes(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// loadAvg returns the 1-minute load average as /proc/loadavg writes it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "0"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "0"
	}
	return f[0]
}

// dirBytes is the apparent size of the files under dir (du -sb).
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// gitCommit returns the short commit of root, with "-dirty" when dirty is
// asked for and the tree has changes; "unknown" outside git.
func gitCommit(root string, dirty bool) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if dirty {
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			c += "-dirty"
		}
	}
	return c
}

// goVersion is the toolchain that built the binaries (go env GOVERSION).
func goVersion(root string) string {
	cmd := exec.Command("go", "env", "GOVERSION")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// moduleRoot finds the directory of go.mod from dir upward.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %s or above: run from the ringkv checkout", dir)
		}
	}
}
