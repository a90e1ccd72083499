package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/httpd/tlstest"
)

// TestClientCertificateRoles: with --client-ca-file, the client port takes
// client certificates of that CA and --auth-file's cn: lines give them
// roles, on a node with mutual TLS between nodes too (a shared port): an
// operator's certificate reaches the admin plane (pprof, as `go tool
// pprof -tls_cert -tls_key -tls_ca` fetches it), a reader's reads but
// cannot write, a node's certificate of the cluster CA names no client,
// a certificate of another CA is refused at the handshake, and nothing
// else gets in without a token.
func TestClientCertificateRoles(t *testing.T) {
	ringkvBinary(t)
	p := newPKI(t)
	clients := tlstest.NewCA(t, "ringkv clients CA")
	clientCAFile := clients.WriteCA(t, p.dir, "clients")
	authFile := filepath.Join(p.dir, "auth")
	if err := os.WriteFile(authFile, []byte("admin cn:ops\nread cn:reader\nadmin cn:n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := newCluster(t, 1)
	n1 := nodes[0]
	n1.args = append(p.node("n1"), "--client-ca-file", clientCAFile, "--auth-file", authFile)
	p.startTLS(n1)
	base := "https://" + n1.http

	with := func(pair *tlstest.Pair) *http.Client {
		cfg := &tls.Config{RootCAs: p.ca.Pool()}
		if pair != nil {
			cfg.Certificates = []tls.Certificate{pair.TLS(t)}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Timeout: 15 * time.Second, Transport: tr}
	}
	do := func(c *http.Client, method, path, body string) (int, string, error) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("X-Ringkv-Request", "1")
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	ops, reader := clients.Issue(t, "ops"), clients.Issue(t, "reader")
	nodeCert := p.ca.Issue(t, "n1")
	rogue := tlstest.NewCA(t, "rogue").Issue(t, "ops")
	for _, tc := range []struct {
		name         string
		pair         *tlstest.Pair
		method, path string
		want         int
	}{
		{"operator writes", &ops, http.MethodPut, "/v1/kv/k", http.StatusNoContent},
		{"operator profiles", &ops, http.MethodGet, "/debug/pprof/cmdline", http.StatusOK},
		{"operator compacts", &ops, http.MethodPost, "/v1/admin/compact", http.StatusOK},
		{"reader reads", &reader, http.MethodGet, "/v1/kv/k", http.StatusOK},
		{"reader cannot write", &reader, http.MethodPut, "/v1/kv/k", http.StatusForbidden},
		{"reader cannot profile", &reader, http.MethodGet, "/debug/pprof/cmdline", http.StatusForbidden},
		{"a node's certificate names no client", &nodeCert, http.MethodGet, "/debug/pprof/cmdline", http.StatusUnauthorized},
		{"no certificate, no token", nil, http.MethodGet, "/v1/kv/k", http.StatusUnauthorized},
	} {
		code, b, err := do(with(tc.pair), tc.method, tc.path, "v")
		if err != nil || code != tc.want {
			t.Errorf("%s: %s %s = %d %.100q %v, want %d", tc.name, tc.method, tc.path, code, b, err, tc.want)
		}
	}
	if _, _, err := do(with(&rogue), http.MethodGet, "/v1/kv/k", ""); err == nil {
		t.Error("a certificate of another CA was taken")
	}
	if !strings.Contains(n1.p.logs.String(), "ops") {
		t.Errorf("no admin action logged with the certificate's name\n%s", n1.p.logs)
	}
	if _, errs, code := runRingkv(t, "serve", "--client-ca-file", clientCAFile); code != 2 || !strings.Contains(errs, "--client-ca-file needs --tls-cert-file") {
		t.Errorf("--client-ca-file without a certificate: exit %d %q", code, errs)
	}
}
