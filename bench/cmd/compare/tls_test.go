package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/httpd"
)

// codeBlock returns the lines of md's first ``` block.
func codeBlock(t *testing.T, md string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(md, "```\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("no code block in:\n%s", md)
	}
	return strings.Split(strings.TrimSuffix(block, "\n"), "\n")
}

var numbers = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// TestTLSReportShape: the page holds tls.sh's lines, as
// results/tls-20261202.md has them, with medians of the rounds.
func TestTLSReportShape(t *testing.T) {
	res := map[string][]tlsRun{}
	for i, run := range tlsRuns() {
		for r := range 3 {
			res[run] = append(res[run], tlsRun{RPS: float64(1000*(i+1) + 100*r), P99US: int64(1000 * (r + 1)), CPU: float64(10*(i+1) + r)})
		}
	}
	rep := tlsReport{Date: "x", Commit: "abc", Config: wrkConfig{Duration: 8 * time.Second, Rounds: 3, Keys: 1, Conns: 64, Threads: 1}, CPUs: 2, Results: res}
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile("../../results/tls-20261202.md")
	if err != nil {
		t.Fatal(err)
	}
	want, got := codeBlock(t, string(old)), codeBlock(t, md)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if w, g := numbers.ReplaceAllString(want[i], "N"), numbers.ReplaceAllString(got[i], "N"); w != g {
			t.Errorf("line %d: %q, want the shape of %q", i, got[i], want[i])
		}
	}
	// Medians: the middle round of each figure; ratios of the medians.
	for _, line := range []string{"get plain: 1100.00 req/s, p99 2.00ms, server CPU 11.0 us/req", "get TLS/plain: 1.91, TLS+token/plain: 2.82"} {
		if !strings.Contains(md, line) {
			t.Errorf("no %q in:\n%s", line, md)
		}
	}
	if !strings.Contains(string(js), `"tls_vs_plain": 1.909`) {
		t.Errorf("json:\n%s", js)
	}
}

// TestBenchCertsAndToken: the node's certificate verifies for 127.0.0.1
// (the address wrk and the driver dial) and for its node id against the
// CA, its key pair loads, and the token's line is one ringkv's auth file
// parser takes.
func TestBenchCertsAndToken(t *testing.T) {
	dir := t.TempDir()
	pool, certFile, keyFile, err := benchCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "n1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		t.Error(err)
	}
	token, line, err := benchToken()
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 64 || strings.Contains(line, token) {
		t.Errorf("token %q, line %q: want 64 hex digits, and only its hash in the file", token, line)
	}
	if _, err := httpd.NewStaticAuth([]byte(line)); err != nil {
		t.Errorf("auth line %q: %v", line, err)
	}
}
