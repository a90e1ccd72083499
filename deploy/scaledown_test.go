package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeKubectl answers the calls scale-down.sh makes, on a cluster of
// real nodes on loopback: the StatefulSet has $FAKE_REPLICAS replicas; a
// port-forward does nothing (the leaving node already listens on the
// local port); every call is logged to $FAKE_LOG, a scale with the
// status of the leaving node ($FAKE_LEAVING_ADDR) and of another
// ($FAKE_STATUS_ADDR) at that moment.
const fakeKubectl = `#!/usr/bin/env bash
echo "kubectl $*" >> "$FAKE_LOG"
args=("$@")
[ "${args[0]}" = -n ] && args=("${args[@]:2}")
case "${args[0]}" in
  get) echo "$FAKE_REPLICAS" ;;
  port-forward) exec sleep 600 ;;
  scale) echo "at scale: $(ringkv cluster status --json --addr "$FAKE_LEAVING_ADDR" | tr -d ' \n')" >> "$FAKE_LOG"
         echo "at scale: $(ringkv cluster status --json --addr "$FAKE_STATUS_ADDR" | tr -d ' \n')" >> "$FAKE_LOG" ;;
  wait|delete) ;;
  *) echo "fake kubectl: unexpected $*" >&2; exit 1 ;;
esac
`

// TestScaleDownScript: scale-down.sh has the highest ordinal leave the
// ring, waits until it has handed its ranges over, and only then scales
// the StatefulSet and deletes the pod's claim. With one replica per key,
// every key is still readable after the leaving node stops.
func TestScaleDownScript(t *testing.T) {
	bin := ringkvBinary(t)
	dir := t.TempDir()
	fakeBin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(fakeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fakeBin, "kubectl"), []byte(fakeKubectl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(fakeBin, "ringkv")); err != nil {
		t.Fatal(err)
	}

	// ringkv-0, -1, -2 on loopback; ringkv-2's HTTP port is the script's
	// local port.
	var nodes []*node
	var https []string
	join := ""
	for i := range 3 {
		h, g := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := []string{"serve", "--node-id", fmt.Sprintf("ringkv-%d", i), "--http-addr", h, "--gossip-addr", g,
			"--data-dir", filepath.Join(dir, fmt.Sprint(i)), "--replicas", "1", "--vnodes", "16"}
		if join != "" {
			args = append(args, "--join", join)
		} else {
			join = g
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, cleanEnv()
		n := startProcess(t, cmd)
		waitOK(t, n, "http://"+h+"/healthz")
		nodes, https = append(nodes, n), append(https, h)
	}
	waitFor(t, 60*time.Second, "3 members alive", func() error { return membersAlive(https[0], 3) })
	const keys = 300
	for i := range keys {
		if code, err := put("http://"+https[0]+"/v1/kv/"+fmt.Sprint("k", i), "v"); err != nil || code != 204 {
			t.Fatalf("PUT k%d: %d %v", i, code, err)
		}
	}

	log := filepath.Join(dir, "kubectl.log")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "kubernetes/scale-down.sh", "-n", "db", "-p", portOf(t, https[2]), "2")
	cmd.Env = cleanEnv("PATH="+fakeBin+":"+os.Getenv("PATH"), "RINGKV_SCHEME=http",
		"FAKE_LOG="+log, "FAKE_REPLICAS=3", "FAKE_STATUS_ADDR="+https[0], "FAKE_LEAVING_ADDR="+https[2])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scale-down.sh 2: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(log)
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"kubectl -n db get statefulset ringkv -o jsonpath={.spec.replicas}",
		"kubectl -n db port-forward pod/ringkv-2 " + portOf(t, https[2]) + ":8080",
		"kubectl -n db scale statefulset ringkv --replicas=2",
		"", // the leaving node at the scale
		"", // another node at the scale
		"kubectl -n db wait --for=delete pod/ringkv-2 --timeout=5m",
		"kubectl -n db delete pvc data-ringkv-2 --wait=false",
	}
	if len(calls) != len(want) {
		t.Fatalf("kubectl calls:\n%s\nscript output:\n%s", b, out)
	}
	for i, w := range want {
		if w != "" && calls[i] != w {
			t.Errorf("kubectl call %d: %q, want %q", i, calls[i], w)
		}
	}
	// "left": every other member holds the ranges of the ring without it.
	if !strings.Contains(calls[3], `"leave":"left"`) {
		t.Errorf("when the StatefulSet was scaled, ringkv-2 had not left: %s", calls[3])
	}
	if !strings.Contains(calls[4], `"settled":true`) || strings.Contains(calls[4], `"ownership":{"ringkv-2"`) || strings.Contains(calls[4], `,"ringkv-2":`) {
		t.Errorf("when the StatefulSet was scaled, ringkv-0 was not settled on a ring without ringkv-2: %s", calls[4])
	}

	// Interrupted after the leave (the scale failed, say), run again: the
	// node is not asked to leave again, and the scale goes on.
	cmd = exec.CommandContext(ctx, "bash", "kubernetes/scale-down.sh", "-n", "db", "-p", portOf(t, https[2]), "2")
	cmd.Env = cleanEnv("PATH="+fakeBin+":"+os.Getenv("PATH"), "RINGKV_SCHEME=http",
		"FAKE_LOG="+log, "FAKE_REPLICAS=3", "FAKE_STATUS_ADDR="+https[0], "FAKE_LEAVING_ADDR="+https[2])
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ringkv-2 has already left") {
		t.Errorf("scale-down.sh 2 again after the leave: %v, want exit 0 and 'ringkv-2 has already left':\n%s", err, out)
	}

	// The pod is gone: every key is still there, on the two others.
	if err := nodes[2].stop(t); err != nil {
		t.Errorf("ringkv-2 after its leave: %v", err)
	}
	for i := range keys {
		if code, _, err := get("http://" + https[0] + "/v1/kv/" + fmt.Sprint("k", i)); err != nil || code != 200 {
			t.Fatalf("GET k%d after ringkv-2 left and stopped: %d %v", i, code, err)
		}
	}

	// Scaled up again later, the StatefulSet makes ringkv-2 anew, on a
	// new, empty claim (the script deleted the old one): it joins as a
	// new member of the same id and holds its ranges again.
	h, g := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	again := exec.Command(bin, "serve", "--node-id", "ringkv-2", "--http-addr", h, "--gossip-addr", g,
		"--data-dir", filepath.Join(dir, "2-new"), "--replicas", "1", "--vnodes", "16", "--join", join)
	again.Dir, again.Env = dir, cleanEnv()
	waitOK(t, startProcess(t, again), "http://"+h+"/healthz")
	waitFor(t, 60*time.Second, "the new ringkv-2 in the ring", func() error {
		if err := membersAlive(https[0], 3); err != nil {
			return err
		}
		return ownsShare(https[0], "ringkv-2")
	})
	for i := range keys {
		if code, _, err := get("http://" + h + "/v1/kv/" + fmt.Sprint("k", i)); err != nil || code != 200 {
			t.Fatalf("GET k%d through the new ringkv-2: %d %v", i, code, err)
		}
	}

	// Run again at 2 replicas: nothing to do.
	cmd = exec.CommandContext(ctx, "bash", "kubernetes/scale-down.sh", "-n", "db", "2")
	cmd.Env = cleanEnv("PATH="+fakeBin+":"+os.Getenv("PATH"), "FAKE_LOG="+log, "FAKE_REPLICAS=2")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "has 2 replicas") {
		t.Errorf("scale-down.sh 2 at 2 replicas: %v\n%s", err, out)
	}
}

// TestScaleDownScriptUsage: bad arguments exit 2 with one line.
func TestScaleDownScriptUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"0"}, {"two"}, {"-p", "x", "1"}, {"1", "2"}} {
		cmd := exec.Command("bash", append([]string{"kubernetes/scale-down.sh"}, args...)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("scale-down.sh %q: %v %q, want exit 2 and one line", args, err, out)
		}
	}
}

// membersAlive returns nil once the node at addr sees n members alive.
func membersAlive(addr string, n int) error {
	code, body, err := get("http://" + addr + "/v1/cluster")
	if err != nil || code != 200 {
		return fmt.Errorf("GET /v1/cluster: %d %v", code, err)
	}
	var st struct {
		Members []struct{ State string }
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return err
	}
	alive := 0
	for _, m := range st.Members {
		if m.State == "alive" {
			alive++
		}
	}
	if alive != n {
		return fmt.Errorf("%d members alive: %s", alive, body)
	}
	return nil
}

// ownsShare returns nil once the node at addr gives id a share of the
// ring and has settled (no range moves left).
func ownsShare(addr, id string) error {
	_, body, err := get("http://" + addr + "/v1/cluster")
	if err != nil {
		return err
	}
	var st struct {
		Ownership map[string]float64
		Settled   bool
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return err
	}
	if st.Ownership[id] <= 0 || !st.Settled {
		return fmt.Errorf("%s: ownership %v, settled %v", id, st.Ownership, st.Settled)
	}
	return nil
}

// put writes value at url.
func put(url, value string) (int, error) {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(value))
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
