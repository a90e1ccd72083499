package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/httpd"
	"github.com/ringkv/ringkv/peer"
)

// inProcessNode serves a real node (engine in memory, coordinator, HTTP
// front end) on ln until the test ends.
func inProcessNode(t *testing.T, ln net.Listener) {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	pn, err := peer.NewNode(peer.Config{NodeID: "n1", HTTPAddr: ln.Addr().String(), Engine: eng, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpd.New(httpd.Config{Registry: prometheus.NewRegistry(), NodeID: "n1", Logger: lg}, pn, pn)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
		pn.Close()
		eng.Close()
	})
}

func newInProcessNode(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inProcessNode(t, ln)
	return ln.Addr().String()
}

// cli runs one ringkv command line in-process.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// TestAddrDefaultPort: an --addr without a port means port 8080, for
// every command that calls a node. The node listens on 8080 of a random
// loopback address, so that no other node on the machine answers.
func TestAddrDefaultPort(t *testing.T) {
	var ln net.Listener
	var host string
	for i := 0; ln == nil; i++ {
		host = fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(250), 1+rand.IntN(250))
		var err error
		if ln, err = net.Listen("tcp", host+":8080"); err != nil && i > 20 {
			t.Skipf("no free loopback address with port 8080: %v", err)
		}
	}
	inProcessNode(t, ln)
	for _, addr := range []string{host, "http://" + host} {
		for _, args := range [][]string{
			{"put", "k", "v"},
			{"get", "k"},
			{"scan"},
			{"cluster", "status"},
			{"cluster", "ring", "k"},
			{"delete", "k"},
		} {
			out, errs, code := cli(t, "", append(args, "--addr", addr, "--timeout", "5s")...)
			if code != exitOK {
				t.Errorf("%v --addr %s: exit %d %q %q", args, addr, code, out, errs)
			}
		}
	}
}

// TestScanPaging: scan says on stderr when more keys follow and how to
// list them; following that hint lists the rest, and --all lists every
// key at once.
func TestScanPaging(t *testing.T) {
	addr := newInProcessNode(t)
	var want []string
	for i := range 12 {
		k := fmt.Sprintf("pg/%02d", i)
		want = append(want, k)
		if _, errs, code := cli(t, "", "put", k, "v", "--addr", addr); code != exitOK {
			t.Fatal(errs)
		}
	}
	var got []string
	args := []string{"scan", "--prefix", "pg/", "--limit", "5", "--page-size", "2"}
	for pages := 0; ; pages++ {
		out, errs, code := cli(t, "", append(args, "--addr", addr)...)
		if code != exitOK || pages > 3 {
			t.Fatalf("scan %v: exit %d %q after %d pages", args, code, errs, pages)
		}
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			k, _, _ := strings.Cut(l, "\t")
			got = append(got, k)
		}
		if errs == "" {
			break
		}
		// ringkv scan: more keys follow; to list them: ringkv scan --prefix 'pg/' --after 'pg/07' (or --all ...)
		_, hint, ok := strings.Cut(errs, "to list them: ringkv scan ")
		hint, _, _ = strings.Cut(hint, " (or --all")
		if !ok || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "--all") {
			t.Fatalf("scan stderr %q: want one line with the flags that continue and --all", errs)
		}
		args = append(shellWords(t, hint), "--limit", "5")
		args = append([]string{"scan"}, args...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("following the hints listed %q, want %q", got, want)
	}
	out, errs, code := cli(t, "", "scan", "--prefix", "pg/", "--all", "--page-size", "5", "--addr", addr)
	if n := strings.Count(out, "\n"); code != exitOK || n != 12 || errs != "" {
		t.Fatalf("scan --all: exit %d, %d lines, stderr %q", code, n, errs)
	}
	// Exactly --limit keys left: no hint (a full page sets next anyway).
	if _, errs, code := cli(t, "", "scan", "--prefix", "pg/", "--limit", "12", "--addr", addr); code != exitOK || errs != "" {
		t.Fatalf("scan of exactly the keys there: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := cli(t, "", "scan", "--all", "--limit", "3", "--addr", addr); code != exitUsage || !strings.Contains(errs, "--all") {
		t.Fatalf("--all with --limit: exit %d %q", code, errs)
	}
}

// shellWords splits the hint's flags, undoing shellQuote.
func shellWords(t *testing.T, s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] != '\'' {
			w, rest, _ := strings.Cut(s, " ")
			out, s = append(out, w), rest
			continue
		}
		end := strings.Index(s[1:], "'")
		if end < 0 {
			t.Fatalf("unbalanced quote in %q", s)
		}
		out, s = append(out, s[1:1+end]), s[2+end:]
	}
	return out
}

// TestScanJSONBinary: scan --json writes keys and values that are not
// valid UTF-8 in base64, and says so; text stays text. A binary key's
// continuation hint uses --after-base64.
func TestScanJSONBinary(t *testing.T) {
	addr := newInProcessNode(t)
	items := map[string]string{"b/text": "plain", "b/\xff\xfe": "v", "b/val": "\x00\xc3\x28"}
	for k, v := range items {
		if _, errs, code := cli(t, v, "put", k, "-", "--addr", addr); code != exitOK {
			t.Fatal(errs)
		}
	}
	out, errs, code := cli(t, "", "scan", "--prefix", "b/", "--json", "--addr", addr)
	if code != exitOK || errs != "" {
		t.Fatalf("scan --json: exit %d %q", code, errs)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var o map[string]string
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		k, v := o["key"], o["value"]
		if o["key_encoding"] == "base64" {
			b, _ := base64.StdEncoding.DecodeString(k)
			k = string(b)
		}
		if o["value_encoding"] == "base64" {
			b, _ := base64.StdEncoding.DecodeString(v)
			v = string(b)
		}
		if (k == "b/text") != (o["key_encoding"] == "" && o["value_encoding"] == "") {
			t.Errorf("encodings of %q: %q", k, l)
		}
		got[k] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(items) {
		t.Fatalf("scan --json decoded to %q, want %q", got, items)
	}
	// Following the hints one key at a time lists every key, binary ones
	// included (their hint is --after-base64).
	seen := map[string]bool{}
	args := []string{"scan", "--prefix", "b/"}
	for range len(items) + 1 {
		out, errs, code := cli(t, "", append(args, "--limit", "1", "--addr", addr)...)
		k, _, _ := strings.Cut(out, "\t")
		if code != exitOK || seen[k] {
			t.Fatalf("scan %v: exit %d %q %q", args, code, out, errs)
		}
		seen[k] = true
		if errs == "" {
			break
		}
		_, hint, _ := strings.Cut(errs, "to list them: ringkv scan ")
		hint, _, _ = strings.Cut(hint, " (or --all")
		args = append([]string{"scan"}, shellWords(t, hint)...)
	}
	if len(seen) != len(items) {
		t.Fatalf("following the hints listed %v", seen)
	}
	if got := continueArgs(scanConfig{prefix: "b/"}, "b/\xff\xfe"); got != "--prefix 'b/' --after-base64 "+base64.StdEncoding.EncodeToString([]byte("b/\xff\xfe")) {
		t.Errorf("hint after a binary key: %q", got)
	}
}

// TestCLICompareAndSet: put --if-absent and --if-version print the new
// version and exit 1 naming the current one when the condition fails;
// get --show-version prints the version a compare-and-set takes; delete
// --if-version; get --consistency serial.
func TestCLICompareAndSet(t *testing.T) {
	addr := newInProcessNode(t)
	out, errs, code := cli(t, "", "put", "k", "v1", "--if-absent", "--addr", addr)
	v1 := strings.TrimSpace(out)
	if code != 0 || len(v1) != 33 {
		t.Fatalf("put --if-absent: exit %d, %q %q", code, out, errs)
	}
	if _, errs, code := cli(t, "", "put", "k", "v2", "--if-absent", "--addr", addr); code != 1 || !strings.Contains(errs, "condition failed: the key is at version "+v1) {
		t.Fatalf("a second put --if-absent: exit %d, %q", code, errs)
	}
	out, _, code = cli(t, "", "get", "k", "--show-version", "--consistency", "serial", "--addr", addr)
	if code != 0 || out != v1+"\nv1" {
		t.Fatalf("get --show-version: exit %d, %q", code, out)
	}
	out, errs, code = cli(t, "", "put", "k", "v2", "--if-version", v1, "--addr", addr)
	v2 := strings.TrimSpace(out)
	if code != 0 || v2 == v1 || len(v2) != 33 {
		t.Fatalf("put --if-version: exit %d, %q %q", code, out, errs)
	}
	if _, errs, code := cli(t, "", "delete", "k", "--if-version", v1, "--addr", addr); code != 1 || !strings.Contains(errs, v2) {
		t.Fatalf("delete --if-version of a stale version: exit %d, %q", code, errs)
	}
	if _, errs, code := cli(t, "", "delete", "k", "--if-version", v2, "--addr", addr); code != 0 {
		t.Fatalf("delete --if-version: exit %d, %q", code, errs)
	}
	if _, errs, code := cli(t, "", "put", "k", "x", "--if-version", v2, "--addr", addr); code != 1 || !strings.Contains(errs, "the key is absent") {
		t.Fatalf("put --if-version of a deleted key: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{
		{"put", "k", "x", "--if-version", v2, "--if-absent"},
		{"put", "k", "x", "--consistency", "serial"},
		{"put", "k", "x", "--if-version", "not-a-version"},
	} {
		if _, errs, code := cli(t, "", append(args, "--addr", addr)...); code != 2 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want one line and exit 2", args, code, errs)
		}
	}
}
