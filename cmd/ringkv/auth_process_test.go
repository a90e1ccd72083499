package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func authLine(role, token, prefix string) string {
	h := sha256.Sum256([]byte(token))
	return strings.TrimSpace(role+" sha256:"+hex.EncodeToString(h[:])+" "+prefix) + "\n"
}

// TestAuthProcess: a node with --auth-file serves tokens their roles,
// reloads the file when it changes, logs who asked for admin actions
// without the token, and never shows the cluster secret in pprof.
func TestAuthProcess(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth")
	writeAuth := func(s string) {
		t.Helper()
		if err := os.WriteFile(authFile+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(authFile+".tmp", authFile); err != nil {
			t.Fatal(err)
		}
	}
	const adminTok, appTok, newTok, secret = "admin-0123456789", "app-0123456789", "new-0123456789", "cluster-s3cret-value"
	writeAuth("# test\n" + authLine("admin", adminTok, "") + authLine("readwrite", appTok, "app/"))
	p := startNode(t, filepath.Join(dir, "data"), "--auth-file", authFile, "--cluster-secret", secret)
	p.waitHealthy()

	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("X-Ringkv-Request", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, path, token string
		code                int
	}{
		{"PUT", "/v1/kv/app/1", "", 401},
		{"PUT", "/v1/kv/app/1", "wrong", 401},
		{"PUT", "/v1/kv/app/1", appTok, 204},
		{"PUT", "/v1/kv/other", appTok, 403},
		{"GET", "/v1/kv/app/1", appTok, 200},
		{"GET", "/metrics", appTok, 403},
		{"GET", "/metrics", adminTok, 200},
		{"POST", "/v1/admin/compact", appTok, 403},
		{"POST", "/v1/admin/compact", adminTok, 200},
		{"GET", "/healthz", "", 200},
	} {
		if code, body := do(c.method, c.path, c.token, "v"); code != c.code {
			t.Errorf("%s %s with %q: %d %q, want %d", c.method, c.path, c.token, code, body, c.code)
		}
	}
	if code, body := do("GET", "/debug/pprof/cmdline", adminTok, ""); code != 200 || strings.Contains(body, secret) || !strings.Contains(body, "REDACTED") {
		t.Errorf("pprof cmdline: %d %q", code, body)
	}

	// The CLI with --token.
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(ringkvBinary(t), append(args, "--addr", p.addr)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return errb.String(), ee.ExitCode()
		}
		return out.String(), 0
	}
	if out, code := cli("get", "app/1", "--token", appTok); code != 0 || out != "v" {
		t.Errorf("ringkv get --token: %d %q", code, out)
	}
	if out, code := cli("get", "app/1"); code != exitUsage || !strings.Contains(out, "401") {
		t.Errorf("ringkv get without a token: %d %q", code, out)
	}

	// A new file takes effect without a restart; a broken one is ignored.
	writeAuth(authLine("admin", newTok, ""))
	poll(t, 20*time.Second, "the new token works", func() (bool, string) {
		code, body := do("GET", "/v1/kv/app/1", newTok, "")
		return code == 200, body
	})
	if code, _ := do("GET", "/v1/kv/app/1", appTok, ""); code != 401 {
		t.Errorf("a token removed from the file still answers %d", code)
	}
	writeAuth("garbage\n")
	poll(t, 20*time.Second, "the broken file is logged", func() (bool, string) {
		return strings.Contains(p.logs.String(), "auth file not reloaded"), ""
	})
	if code, _ := do("GET", "/v1/kv/app/1", newTok, ""); code != 200 {
		t.Errorf("after a broken file, the token in force answers %d", code)
	}

	logs := p.logs.String()
	for _, tok := range []string{adminTok, appTok, newTok, secret} {
		if strings.Contains(logs, tok) {
			t.Errorf("the log holds %q", tok)
		}
	}
	if !strings.Contains(logs, `msg="admin request"`) || !strings.Contains(logs, `op=compact method=POST uri=/v1/admin/compact who="line 2 (admin)" remote=127.0.0.1`) {
		t.Errorf("no admin request logged with who asked:\n%s", logs)
	}
	if !strings.Contains(logs, "--cluster-secret is on the command line") {
		t.Errorf("no warning for --cluster-secret on the command line")
	}
}

// TestAuthClusterLeave: a 2-node cluster with --auth-file and a cluster
// secret works as one: writes at consistency=all reach both, and a leave
// (whose handover reads the peers' GET /v1/cluster, signed) completes,
// after which the other node serves every key.
func TestAuthClusterLeave(t *testing.T) {
	ringkvBinary(t)
	dir := t.TempDir()
	const adminTok, appTok = "admin-cluster-0123456789", "app-cluster-0123456789"
	authFile, secretFile := filepath.Join(dir, "auth"), filepath.Join(dir, "secret")
	if err := os.WriteFile(authFile, []byte(authLine("admin", adminTok, "")+authLine("readwrite", appTok, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte("a-cluster-secret-of-32-bytes-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := newCluster(t, 2, "--replicas", "2", "--auth-file", authFile, "--cluster-secret-file", secretFile)
	n1, n2 := nodes[0], nodes[1]
	n1.start()
	n2.start("--join", n1.gossip)
	do := func(method, u, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := chc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	poll(t, 30*time.Second, "both nodes see both alive", func() (bool, string) {
		for _, c := range nodes {
			code, body := do("GET", "http://"+c.http+"/v1/cluster", appTok, "")
			if code != 200 || strings.Count(body, `"state":"alive"`) != 2 {
				return false, fmt.Sprintf("%s: %d %s", c.id, code, body)
			}
		}
		return true, ""
	})
	const keys = 200
	for i := range keys {
		if code, body := do("PUT", kvURL(nodes[i%2].http, fmt.Sprintf("au/%03d", i), "all"), appTok, fmt.Sprint("v", i)); code != 204 {
			t.Fatalf("PUT at all: %d %s", code, body)
		}
	}
	if code, _ := do("PUT", kvURL(n1.http, "au/x", "all"), "", "v"); code != 401 {
		t.Fatalf("anonymous PUT: %d", code)
	}
	t.Setenv("RINGKV_TOKEN", adminTok)
	out, errs, code := runRingkv(t, "cluster", "leave", "--addr", n2.http, "--wait", "60s")
	if code != 0 || !strings.Contains(out, "has left") {
		t.Fatalf("ringkv cluster leave: exit %d\n%s%s", code, out, errs)
	}
	for i := range keys {
		k := fmt.Sprintf("au/%03d", i)
		if code, body := do("GET", kvURL(n1.http, k, "one"), appTok, ""); code != 200 || body != fmt.Sprint("v", i) {
			t.Fatalf("GET %s from n1 after n2 left: %d %q", k, code, body)
		}
	}
}
