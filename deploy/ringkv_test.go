package deploy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The ringkv binary the tests run: built once, as the Dockerfile builds
// it (static, -trimpath), from the parent module.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// testVersion is the VERSION the tests build ringkv with.
const testVersion = "v0.0.0-deploy-test"

// dockerLDFlags returns the -ldflags of the Dockerfile's go build, with
// ${VERSION} set to version.
func dockerLDFlags(version string) (string, error) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`go build [^\n]*-ldflags "([^"]*)"`).FindSubmatch(b)
	if m == nil {
		return "", errors.New(`the Dockerfile has no go build -ldflags "..."`)
	}
	return strings.ReplaceAll(string(m[1]), "${VERSION}", version), nil
}

// ringkvBinary returns the path of a static ringkv built from ../cmd/ringkv
// as the Dockerfile builds it (its -ldflags, VERSION testVersion).
func ringkvBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		ld, err := dockerLDFlags(testVersion)
		if err != nil {
			binErr = err
			return
		}
		binDir, binErr = os.MkdirTemp("", "ringkv-deploy-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ringkv")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ld, "-o", binPath, "./cmd/ringkv")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/ringkv: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serveFlags returns the flags of `ringkv serve -h`.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(ringkvBinary(t), "serve", "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("ringkv serve -h: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["http-addr"] || !flags["data-dir"] {
		t.Fatalf("ringkv serve -h lists no --http-addr or --data-dir:\n%s", out)
	}
	return flags
}

// envName is the variable that sets a serve flag, as cmd/ringkv/env.go
// names it.
func envName(flag string) string {
	return "RINGKV_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkRingkvEnv reports every RINGKV_* name of vars that is no serve flag's.
func checkRingkvEnv(t *testing.T, where string, vars []string) {
	t.Helper()
	byEnv := map[string]bool{}
	for f := range serveFlags(t) {
		byEnv[envName(f)] = true
	}
	for _, v := range vars {
		if strings.HasPrefix(v, "RINGKV_") && !byEnv[v] {
			t.Errorf("%s sets %s, but ringkv serve has no flag --%s", where, v, strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v, "RINGKV_")), "_", "-"))
		}
	}
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP (gossip
// uses both).
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// waitFor polls cond until it returns nil, failing the test with its last
// error after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if errors.Is(err, errDone) {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// node is a ringkv process a test started.
type node struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its Wait error, once done
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
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

// cleanEnv is the test's environment without anything ringkv reads.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RINGKV_") && !strings.HasPrefix(kv, "NODE_ADDRESS=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startProcess starts cmd (its output kept) and stops it at the end of the
// test: SIGTERM, then SIGKILL if it has not exited within 30s.
func startProcess(t *testing.T, cmd *exec.Cmd) *node {
	t.Helper()
	n := &node{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		n.err = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() {
			t.Logf("output of %v:\n%s", cmd.Args, n.out)
		}
	})
	return n
}

// stop sends SIGTERM and waits for the process; it returns its exit error.
func (n *node) stop(t *testing.T) error {
	select {
	case <-n.done:
		return n.err
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%v did not stop within 30s of SIGTERM", n.cmd.Args)
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	return n.err
}

// exited returns an error if the process has exited.
func (n *node) exited() error {
	select {
	case <-n.done:
		return fmt.Errorf("exited (%v): %s", n.err, n.out)
	default:
		return nil
	}
}

// httpClient calls nodes as kubelet probes do: HTTPS without verifying
// the certificate.
var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// get returns the status and body of GET url.
func get(url string, header ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitOK polls url until it answers 200, failing if n exits first.
func waitOK(t *testing.T, n *node, url string) {
	t.Helper()
	waitFor(t, 60*time.Second, "GET "+url, func() error {
		if err := n.exited(); err != nil {
			return errors.Join(errDone, err)
		}
		code, body, err := get(url)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%d %s", code, body)
		}
		return err
	})
}

var errDone = errors.New("process is gone")
