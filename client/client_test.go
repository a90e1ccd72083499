package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/httpd"
)

func newClient(t *testing.T, addrs ...string) *client.Client {
	t.Helper()
	c, err := client.New(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestKV: Put, Get and Delete of any bytes, with their versions and
// options, against a real node.
func TestKV(t *testing.T) {
	n := newNode(t, nil)
	c := newClient(t, n.addr)
	ctx := context.Background()
	key, val := "users/42?&= \x00\xff", []byte("bin\x00\xfe")
	v1, err := c.Put(ctx, key, val, client.WithConsistency(client.All), client.WithTTL(time.Hour))
	if err != nil || v1 == "" {
		t.Fatalf("Put = %q, %v", v1, err)
	}
	got, ver, err := c.Get(ctx, key, client.WithConsistency(client.One))
	if err != nil || !bytes.Equal(got, val) || ver != v1 {
		t.Fatalf("Get = %q %q %v; want %q %q", got, ver, err, val, v1)
	}
	if _, err := c.Put(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, _, err := c.Get(ctx, "empty"); err != nil || len(got) != 0 {
		t.Fatalf("empty value: %q %v", got, err)
	}
	v2, err := c.Delete(ctx, key)
	if err != nil || v2 == "" || v2 == v1 {
		t.Fatalf("Delete = %q, %v", v2, err)
	}
	if _, _, err := c.Get(ctx, key); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get of a deleted key: %v, want ErrNotFound", err)
	}
	if _, err := c.Delete(ctx, "never"); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
}

// TestErrors: each error answer of a node is a *StatusError that matches
// its sentinel, with the node's message.
func TestErrors(t *testing.T) {
	tok := "s3cret"
	sum := sha256.Sum256([]byte(tok))
	file := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(file, []byte("readwrite sha256:"+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := httpd.NewAuth(httpd.AuthConfig{File: file})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	n := newNode(t, func(c *httpd.Config) { c.MaxValueSize = 10; c.Auth = auth })
	c, err := client.Config{Addrs: []string{n.addr}, Token: tok}.New()
	if err != nil {
		t.Fatal(err)
	}
	anon := newClient(t, n.addr)
	ctx := context.Background()
	cases := []struct {
		name string
		err  error
		want error
		code int
		msg  string
	}{
		{"absent", second(c.Get(ctx, "nope")), client.ErrNotFound, 404, "key not found"},
		{"too large", errOf(c.Put(ctx, "k", make([]byte, 11))), client.ErrTooLarge, 413, "larger than 10 bytes"},
		{"empty key", second(c.Get(ctx, "")), client.ErrBadRequest, 400, ""},
		{"bad consistency", second(c.Get(ctx, "k", client.WithConsistency("most"))), client.ErrBadRequest, 400, "most"},
		{"bad ttl", errOf(c.Put(ctx, "k", nil, client.WithTTL(-time.Second))), client.ErrBadRequest, 400, "ttl"},
		{"no token", second(anon.Get(ctx, "k")), client.ErrUnauthorized, 401, ""},
		{"no role", errOf(c.RemoveNode(ctx, "x")), client.ErrForbidden, 403, ""},
	}
	for _, tc := range cases {
		var se *client.StatusError
		if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &se) || se.Code != tc.code || !strings.Contains(se.Message, tc.msg) || se.Addr != n.addr {
			t.Errorf("%s: %#v (%v); want %v, status %d, message with %q", tc.name, tc.err, tc.err, tc.want, tc.code, tc.msg)
		}
		if errors.Is(tc.err, client.ErrUnavailable) || errors.Is(tc.err, client.ErrUnreachable) {
			t.Errorf("%s: %v matches another sentinel", tc.name, tc.err)
		}
	}
	if _, err := c.Put(ctx, "k", []byte("ok")); err != nil {
		t.Errorf("with the token: %v", err)
	}
}

func second[A, B any](_ A, _ B, err error) error { return err }
func errOf[A any](_ A, err error) error          { return err }

// TestFailover: a request goes on to the next address when a node cannot
// be reached or answers 503 or 429, and not for an answer that holds for
// any node (404, 400), nor for Leave and Backup, which act on one node.
func TestFailover(t *testing.T) {
	n := newNode(t, nil)
	ctx := context.Background()
	dead := deadAddr(t)
	busy, busyCalls := answering(t, http.StatusServiceUnavailable)
	limited, limitedCalls := answering(t, http.StatusTooManyRequests)
	c := newClient(t, dead, busy, limited, n.addr)
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put through failover: %v", err)
	}
	if busyCalls.Load() != 1 || limitedCalls.Load() != 1 {
		t.Errorf("stand-ins asked %d and %d times, want once each", busyCalls.Load(), limitedCalls.Load())
	}
	// The node that answered is asked first from now on.
	if got, _, err := c.Get(ctx, "k"); err != nil || string(got) != "v" || busyCalls.Load() != 1 {
		t.Errorf("Get = %q %v after %d calls to the 503 stand-in", got, err, busyCalls.Load())
	}

	missing, missingCalls := answering(t, http.StatusNotFound)
	_, _, err := newClient(t, missing, n.addr).Get(ctx, "k")
	if !errors.Is(err, client.ErrNotFound) || missingCalls.Load() != 1 {
		t.Errorf("404 from the first node: %v after %d calls; want ErrNotFound from it alone", err, missingCalls.Load())
	}

	_, _, err = newClient(t, dead, busy).Get(ctx, "k")
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "1 other") {
		t.Errorf("every node failing: %v; want the last one's error, saying another failed", err)
	}
	_, _, err = newClient(t, dead).Get(ctx, "k")
	var ne *client.NodeError
	if !errors.Is(err, client.ErrUnreachable) || !errors.As(err, &ne) || ne.Addr != dead || !strings.Contains(err.Error(), "cannot reach "+dead) {
		t.Errorf("dead node: %v", err)
	}

	one := newClient(t, busy, n.addr)
	before := busyCalls.Load()
	if _, err := one.Leave(ctx); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Leave of a 503 node: %v; want its error, not another node's leave", err)
	}
	if _, err := one.Backup(ctx); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Backup of a 503 node: %v", err)
	}
	if busyCalls.Load() != before+2 {
		t.Errorf("Leave and Backup asked the 503 node %d times, want 2", busyCalls.Load()-before)
	}
}

// TestContext: a cancelled context stops a request at once, and its error
// says so.
func TestContext(t *testing.T) {
	n := newNode(t, nil)
	c := newClient(t, deadAddr(t), n.addr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v", err)
	}
}

// TestScan: pages in token order cover every key with the prefix once,
// binary keys included; ScanAll pages through.
func TestScan(t *testing.T) {
	n := newNode(t, nil)
	c := newClient(t, n.addr)
	ctx := context.Background()
	var want []string
	for i := range 23 {
		k := fmt.Sprintf("p/%02d", i)
		if i == 7 {
			k = "p/\xff\x00bin"
		}
		want = append(want, k)
		if _, err := c.Put(ctx, k, []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "q/other", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	q := client.ScanRequest{Prefix: "p/", Limit: 5}
	for pages := 0; ; pages++ {
		p, err := c.Scan(ctx, q)
		if err != nil || pages > 10 {
			t.Fatalf("Scan: %v after %d pages", err, pages)
		}
		for _, it := range p.Items {
			if string(it.Value) != "v"+it.Key || it.Version == "" {
				t.Errorf("item %+v", it)
			}
			got = append(got, it.Key)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("paged scan got %q, want %q", got, want)
	}
	got = got[:0]
	for it, err := range c.ScanAll(ctx, client.ScanRequest{Prefix: "p/", Limit: 4}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Key)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("ScanAll got %q, want %q", got, want)
	}
	if _, err := c.Scan(ctx, client.ScanRequest{Limit: client.MaxScanLimit + 1}); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("limit too large: %v", err)
	}
}

// TestCluster: the cluster endpoints of a node that runs alone.
func TestCluster(t *testing.T) {
	n := newNode(t, func(c *httpd.Config) {
		c.Backup = func(context.Context) (func(io.Writer) error, error) {
			return func(w io.Writer) error { _, err := io.WriteString(w, "an archive"); return err }, nil
		}
	})
	c := newClient(t, n.addr)
	ctx := context.Background()
	st, err := c.ClusterStatus(ctx)
	if err != nil || st.Self != "n1" || !bytes.Contains(st.Raw, []byte(`"self":"n1"`)) {
		t.Fatalf("ClusterStatus = %+v, %v", st, err)
	}
	o, err := c.Owners(ctx, "k")
	if err != nil || o.Key != "k" || len(o.Owners) == 0 || o.Owners[0] != "n1" {
		t.Fatalf("Owners = %+v, %v", o, err)
	}
	if _, err := c.RemoveNode(ctx, "nobody"); !errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("RemoveNode of an unknown node: %v", err)
	}
	rc, err := c.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "an archive" {
		t.Errorf("Backup stream %q, %v", b, err)
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"localhost":              "http://localhost:8080",
		"localhost:9000":         "http://localhost:9000",
		"http://localhost":       "http://localhost:8080",
		"https://kv.example/":    "https://kv.example:8080",
		"https://kv.example:443": "https://kv.example:443",
		"10.0.0.1":               "http://10.0.0.1:8080",
		"[::1]":                  "http://[::1]:8080",
		"::1":                    "http://[::1]:8080",
		"[::1]:81":               "http://[::1]:81",
		":8081":                  "http://127.0.0.1:8081",
		"ftp://x":                "",
		"host:0":                 "",
		"host:http":              "",
		"http://host/path":       "",
		"":                       "",
	} {
		got, err := client.BaseURL(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("BaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestStatusSentinels: every status the API answers matches its sentinel,
// and only the ones that mean "this node could not answer" fail over.
func TestStatusSentinels(t *testing.T) {
	n := newNode(t, nil)
	ctx := context.Background()
	for code, want := range map[int]error{
		400: client.ErrBadRequest, 401: client.ErrUnauthorized, 403: client.ErrForbidden,
		404: client.ErrNotFound, 409: client.ErrConflict, 413: client.ErrTooLarge,
		429: client.ErrTooManyRequests, 501: client.ErrNotImplemented, 503: client.ErrUnavailable,
		504: client.ErrTimeout, 507: client.ErrInsufficientStorage, 500: nil,
	} {
		addr, _ := answering(t, code)
		_, err := newClient(t, addr).Put(ctx, "k", nil)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Code != code || (want != nil && !errors.Is(err, want)) || se.Message != "from the stand-in" {
			t.Errorf("%d: %v, want %v", code, err, want)
		}
		_, err = newClient(t, addr, n.addr).Put(ctx, "k", nil)
		if failsOver := err == nil; failsOver != (code == 503 || code == 429) {
			t.Errorf("%d before a good node: %v", code, err)
		}
	}
}
