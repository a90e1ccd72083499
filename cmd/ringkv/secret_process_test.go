package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSecretFileRotation: three processes with --cluster-secret-file
// rotate the cluster secret in the documented three rounds (add the new
// secret second, make it first, drop the old) by editing their files,
// with no restart: no node ever sees another dead, writes that need every
// replica keep succeeding, and afterwards a node holding only the old
// secret cannot join.
func TestSecretFileRotation(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 4, "--replicas", "3")
	files := make([]string, len(nodes))
	for i, c := range nodes {
		files[i] = filepath.Join(t.TempDir(), "secrets")
		if err := os.WriteFile(files[i], []byte("# cluster secret\nold-secret-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.args = append(c.args, "--cluster-secret-file", files[i], "--cluster-name", "rotation-test")
	}
	real := nodes[:3]
	startJoined(t, real)

	var mu sync.Mutex
	var dead []string
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, c := range real {
				st, err := status(c.http)
				if err != nil {
					continue // the test's own checks report a node that stops answering
				}
				for _, m := range st.Members {
					if m.State == "dead" {
						mu.Lock()
						dead = append(dead, c.id+" saw "+m.ID+" dead")
						mu.Unlock()
					}
				}
			}
		}
	}()
	steps := []string{
		"old-secret-0123456789\nnew-secret-9876543210\n",
		"new-secret-9876543210\nold-secret-0123456789\n",
		"new-secret-9876543210\n",
	}
	write := 0
	for _, body := range steps {
		for i, c := range real {
			before := strings.Count(c.p.logs.String(), "cluster secrets reloaded")
			if err := os.WriteFile(files[i], []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			poll(t, 30*time.Second, c.id+" reloads its secrets", func() (bool, string) {
				return strings.Count(c.p.logs.String(), "cluster secrets reloaded") > before, ""
			})
		}
		// Every replica takes part: gossip and internode calls work.
		write++
		if code, b, err := call(http.MethodPut, kvURL(real[write%3].http, "rotation", "all"), body); err != nil || code != http.StatusNoContent {
			t.Fatalf("PUT at all after a rotation round: %d %s %v", code, b, err)
		}
		waitAllAlive(t, 30*time.Second, real)
	}

	stale := nodes[3]
	if err := os.WriteFile(files[3], []byte("old-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stale.start("--join", real[0].gossip)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range real {
			st, err := status(c.http)
			if err != nil {
				t.Fatal(err)
			}
			if !allAlive(st, "n1", "n2", "n3") {
				t.Fatalf("%s lets a node with the dropped secret in: %s", c.id, memberStates(st))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	<-stopped
	if len(dead) > 0 {
		t.Fatalf("members seen dead during the rotation: %v", dead[:min(5, len(dead))])
	}
}

// TestProvenRemovalSpreads: with a cluster secret, a removal taken by one
// node (ringkv cluster remove) carries its proof to the others, which
// take it, and the removed node, started again on its old directory,
// refuses to rejoin.
func TestProvenRemovalSpreads(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 3, "--replicas", "2", "--cluster-secret", "removal-secret-0123456789")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	startJoined(t, nodes)
	n3.kill9()
	poll(t, 30*time.Second, "n1 sees n3 dead", func() (bool, string) {
		st, err := status(n1.http)
		if err != nil {
			return false, err.Error()
		}
		return len(st.Members) == 3 && st.Members[2].State == "dead", memberStates(st)
	})
	if out, errs, code := runRingkv(t, "cluster", "remove", "n3", "--addr", n1.http); code != 0 {
		t.Fatalf("ringkv cluster remove n3: exit %d\n%s%s", code, out, errs)
	}
	poll(t, 30*time.Second, "n2 takes n1's removal of n3", func() (bool, string) {
		st, err := status(n2.http)
		if err != nil {
			return false, err.Error()
		}
		return len(st.Members) == 3 && st.Members[2].State == "left", memberStates(st)
	})
	// n3, back on its old directory, hears of its removal (it had not:
	// it was down) and takes it, proof checked; started again after
	// that, it refuses to rejoin with its stale data.
	args := []string{"serve", "--node-id", "n3", "--data-dir", n3.dir, "--http-addr", n3.http, "--gossip-addr", n3.gossip,
		"--join", n1.gossip, "--cluster-secret", "removal-secret-0123456789"}
	p := startProc(t, "", nil, args...)
	p.waitHealthy()
	poll(t, 30*time.Second, "n3 hears of its removal", func() (bool, string) {
		st, err := status(n3.http)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range st.Members {
			if m.ID == "n3" {
				return m.State == "left", memberStates(st)
			}
		}
		return false, memberStates(st)
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.exitCode(30 * time.Second)
	p = startProc(t, "", nil, args...)
	if code := p.exitCode(30 * time.Second); code != 1 || !strings.Contains(p.logs.String(), "was removed from it") {
		t.Fatalf("n3 restarted after its removal: exit %d\n%s", code, p.logs.String())
	}
}
