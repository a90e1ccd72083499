package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSecretFileRotation: three processes with --cluster-secret-file
// rotate the cluster secret in the documented three rounds (add the new
// secret second, make it first, drop the old) by editing their files,
// with no restart: no node ever sees another dead, and writes that need
// every replica keep succeeding. (That a node holding only the old secret
// cannot join afterwards is peer/membership's TestGossipKeyRotation.)
func TestSecretFileRotation(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 3, "--replicas", "3")
	files := make([]string, len(nodes))
	for i, c := range nodes {
		files[i] = filepath.Join(t.TempDir(), "secrets")
		if err := os.WriteFile(files[i], []byte("# cluster secret\nold-secret-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.args = append(c.args, "--cluster-secret-file", files[i], "--cluster-name", "rotation-test")
	}
	real := nodes
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

	close(stop)
	<-stopped
	if len(dead) > 0 {
		t.Fatalf("members seen dead during the rotation: %v", dead[:min(5, len(dead))])
	}
}
