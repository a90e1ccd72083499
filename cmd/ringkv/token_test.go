package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestClientToken: every client command sends --token (or RINGKV_TOKEN)
// as a bearer token and marks its requests X-Ringkv-Request, and follows
// no redirect (which would carry the token to another host).
func TestClientToken(t *testing.T) {
	var mu sync.Mutex
	var got []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, "ELSEWHERE "+r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("X-Ringkv-Request"))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/kv":
			w.Write([]byte(`{"items":[],"next":null}`))
		case "/v1/kv/moved":
			http.Redirect(w, r, elsewhere.URL+"/v1/kv/moved", http.StatusTemporaryRedirect)
		case "/v1/cluster":
			w.Write([]byte(`{"self":"a","replicas":1,"members":[]}`))
		case "/v1/cluster/leave":
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"status":"leaving","node":"a"}`))
		case "/v1/ring":
			w.Write([]byte(`{"key":"k","token":"00","owners":["a"],"addrs":["x"]}`))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	cmds := [][]string{
		{"put", "k", "v"},
		{"get", "k"},
		{"delete", "k"},
		{"scan"},
		{"cluster", "ring", "k"},
		{"cluster", "leave", "--wait", "0", "--json"},
	}
	for _, args := range cmds {
		for _, how := range []string{"flag", "env"} {
			mu.Lock()
			got = nil
			mu.Unlock()
			a := append(append([]string{}, args...), "--addr", addr)
			if how == "flag" {
				a = append(a, "--token", "s3cret")
			} else {
				t.Setenv("RINGKV_TOKEN", "s3cret")
			}
			var out, errb bytes.Buffer
			run(a, strings.NewReader(""), &out, &errb)
			t.Setenv("RINGKV_TOKEN", "")
			mu.Lock()
			if len(got) == 0 {
				t.Errorf("%v (%s): no request; stderr %q", args, how, errb.String())
			}
			for _, g := range got {
				if !strings.HasSuffix(g, " Bearer s3cret 1") {
					t.Errorf("%v (%s): request %q, want the bearer token and X-Ringkv-Request: 1", args, how, g)
				}
			}
			mu.Unlock()
		}
	}
	var out, errb bytes.Buffer
	run([]string{"get", "moved", "--addr", addr, "--token", "s3cret"}, nil, &out, &errb)
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		if strings.HasPrefix(g, "ELSEWHERE") {
			t.Errorf("a redirect was followed: %q", g)
		}
	}
}
