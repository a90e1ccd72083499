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
)

// TestBackupRestoreCluster: 'ringkv backup' copies every member of a
// 3-node cluster (N=2, so no node holds everything); after all three are
// killed, 'ringkv restore' of each copy into new data directories brings
// the cluster back with every write acknowledged before the backup, and
// none of those made after it.
func TestBackupRestoreCluster(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 3, "--replicas", "2")
	startJoined(t, nodes)
	put := func(key, val string) {
		t.Helper()
		code, b, err := call(http.MethodPut, kvURL(nodes[len(key)%3].http, key, "all"), val)
		if err != nil || code/100 != 2 {
			t.Fatalf("PUT %s: %d %s %v", key, code, b, err)
		}
	}
	const n = 300
	for i := range n {
		put(fmt.Sprintf("bk/%03d", i), fmt.Sprintf("v%d", i))
	}
	for i := 0; i < n; i += 10 { // deletes are backed up too
		code, _, err := call(http.MethodDelete, kvURL(nodes[0].http, fmt.Sprintf("bk/%03d", i), "all"), "")
		if err != nil || code/100 != 2 {
			t.Fatalf("DELETE: %d %v", code, err)
		}
	}

	dir := t.TempDir()
	to := filepath.Join(dir, "backup")
	out, errs, code := runRingkv(t, "backup", "--addr", nodes[1].http, "--to", to)
	if code != 0 {
		t.Fatalf("ringkv backup: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range nodes {
		if !strings.Contains(out, c.id+" ("+c.http+"): ") {
			t.Errorf("backup output lacks %s:\n%s", c.id, out)
		}
	}
	var m backupManifest
	b, err := os.ReadFile(filepath.Join(to, "backup.json"))
	if err != nil || json.Unmarshal(b, &m) != nil || len(m.Nodes) != 3 || m.Replicas != 2 {
		t.Fatalf("backup.json: %s %v", b, err)
	}
	// Written after the backup: must not come back.
	put("bk/after", "x")

	// Bad usage and damaged input are one-line errors with exit codes.
	if _, errs, code := runRingkv(t, "backup", "--addr", nodes[0].http, "--to", to); code != 2 || !strings.Contains(errs, "already exists") {
		t.Errorf("backup to an existing dir: exit %d %s", code, errs)
	}
	if _, errs, code := runRingkv(t, "backup", "--addr", nodes[0].http, "--to", filepath.Join(dir, "x"), "--nodes", "nope"); code != 2 || !strings.Contains(errs, "not a member") {
		t.Errorf("backup of an unknown node: exit %d %s", code, errs)
	}
	if _, errs, code := runRingkv(t, "restore", "--from", to, "--data-dir", filepath.Join(dir, "x")); code != 2 || !strings.Contains(errs, "one node's directory") {
		t.Errorf("restore from the cluster dir: exit %d %s", code, errs)
	}

	for _, c := range nodes {
		c.kill9()
	}
	for _, c := range nodes {
		c.dir = filepath.Join(dir, "restored-"+c.id)
		out, errs, code := runRingkv(t, "restore", "--from", filepath.Join(to, c.id), "--data-dir", c.dir)
		if code != 0 || !strings.Contains(out, "restored") {
			t.Fatalf("ringkv restore %s: exit %d %s%s", c.id, code, out, errs)
		}
		if _, errs, code := runRingkv(t, "restore", "--from", filepath.Join(to, c.id), "--data-dir", c.dir); code != 1 || !strings.Contains(errs, "not empty") {
			t.Errorf("restore over a restored dir: exit %d %s", code, errs)
		}
	}
	// Restarted with no --join: the member list came back with the data.
	for _, c := range nodes {
		c.start()
	}
	waitAllAlive(t, 30*time.Second, nodes)
	for i := range n {
		key := fmt.Sprintf("bk/%03d", i)
		code, b, err := call(http.MethodGet, kvURL(nodes[i%3].http, key, "all"), "")
		want, wantCode := fmt.Sprintf("v%d", i), http.StatusOK
		if i%10 == 0 {
			want, wantCode = "", http.StatusNotFound
		}
		if err != nil || code != wantCode || (wantCode == 200 && string(b) != want) {
			t.Fatalf("GET %s after restore: %d %q %v; want %d %q", key, code, b, err, wantCode, want)
		}
	}
	if code, b, _ := call(http.MethodGet, kvURL(nodes[0].http, "bk/after", "all"), ""); code != http.StatusNotFound {
		t.Errorf("a write made after the backup came back: %d %s", code, b)
	}
}
