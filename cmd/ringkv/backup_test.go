package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/sstable"
)

// fakeMembers serves, for each of ids, the endpoints 'ringkv backup'
// calls: GET /v1/cluster listing every one of them, and a real backup
// stream of one store (the same for all: which directories appear is what
// counts). It returns the address of the first.
func fakeMembers(t *testing.T, ids ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	eng, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	backup := sstable.BackupStream(eng, dir)
	st := peer.ClusterStatus{Self: ids[0], Replicas: 3, VNodes: 8}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /v1/admin/backup", func(w http.ResponseWriter, r *http.Request) {
		stream, err := backup(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		stream(w)
	})
	for _, id := range ids {
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		st.Members = append(st.Members, peer.Member{ID: id, HTTPAddr: srv.Listener.Addr().String(), State: peer.Alive})
	}
	return st.Members[0].HTTPAddr
}

// TestBackupNodes: --nodes backs up exactly the nodes it names, one or
// several in any order, and an id that is no member is refused.
func TestBackupNodes(t *testing.T) {
	ids := []string{"vm-8081", "vm-8082", "vm-8083"}
	addr := fakeMembers(t, ids...)
	for _, tc := range []struct{ nodes, want string }{
		{"vm-8081", "vm-8081"},
		{"vm-8082", "vm-8082"},
		{"vm-8083,vm-8081", "vm-8081 vm-8083"},
		{"vm-8082, vm-8081", "vm-8081 vm-8082"},
		{"", "vm-8081 vm-8082 vm-8083"},
	} {
		to := filepath.Join(t.TempDir(), "b")
		var out, errb bytes.Buffer
		if code := run([]string{"backup", "--addr", addr, "--to", to, "--nodes", tc.nodes}, nil, &out, &errb); code != exitOK {
			t.Fatalf("backup --nodes %q: exit %d\n%s%s", tc.nodes, code, out.String(), errb.String())
		}
		var got []string
		ents, _ := os.ReadDir(to)
		for _, e := range ents {
			if e.IsDir() {
				got = append(got, e.Name())
			}
		}
		var m backupManifest
		b, _ := os.ReadFile(filepath.Join(to, "backup.json"))
		json.Unmarshal(b, &m)
		if strings.Join(got, " ") != tc.want || len(m.Nodes) != len(got) {
			t.Errorf("backup --nodes %q copied %q (backup.json lists %d), want %q", tc.nodes, got, len(m.Nodes), tc.want)
		}
	}
	var out, errb bytes.Buffer
	code := run([]string{"backup", "--addr", addr, "--to", filepath.Join(t.TempDir(), "b"), "--nodes", "vm-8081,n2"}, nil, &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "n2 is not a member") {
		t.Errorf("--nodes with an unknown id: exit %d %q", code, errb.String())
	}
}
