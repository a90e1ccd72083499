package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
)

// TestParseBatchLine: every form of a batch file's line, and the lines
// refused with the reason.
func TestParseBatchLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want client.BatchOp
		err  string
	}{
		{line: "get k", want: client.BatchOp{Kind: client.BatchGet, Key: "k"}},
		{line: "get a%20b serial", want: client.BatchOp{Kind: client.BatchGet, Key: "a b", Consistency: client.Serial}},
		{line: "put k v", want: client.BatchOp{Kind: client.BatchPut, Key: "k", Value: []byte("v")}},
		{line: `put k ""`, want: client.BatchOp{Kind: client.BatchPut, Key: "k", Value: []byte{}}},
		{line: "put k %00%FF%25 ttl=1m if-absent", want: client.BatchOp{Kind: client.BatchPut, Key: "k", Value: []byte("\x00\xff%"), TTL: time.Minute, IfAbsent: true}},
		{line: "put k v if-version=0000000000000001-0000000000000002", want: client.BatchOp{Kind: client.BatchPut, Key: "k", Value: []byte("v"), IfVersion: "0000000000000001-0000000000000002"}},
		{line: "delete k if-present", want: client.BatchOp{Kind: client.BatchDelete, Key: "k", IfPresent: true}},
		{line: "cas k v", err: `unknown operation "cas"`},
		{line: "put k", err: "put wants 2 argument(s)"},
		{line: "get", err: "get wants 1 argument(s)"},
		{line: "get %zz", err: `bad key "%zz"`},
		{line: "put k %zz", err: `bad value "%zz"`},
		{line: "put k v ttl=-1s", err: `bad ttl "-1s"`},
		{line: "get k if-absent", err: `option "if-absent" does not go with get`},
		{line: "delete k ttl=1s", err: `option "ttl=1s" does not go with delete`},
		{line: "put k v if-absent if-present", err: "exclude each other"},
	} {
		got, err := parseBatchLine(tc.line)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
	if _, err := readBatch(strings.NewReader("# comment\n\nget k\nput k\n")); err == nil || !strings.HasPrefix(err.Error(), "line 4:") {
		t.Errorf("a bad line is not named: %v", err)
	}
}

// TestEscapeField: what batch prints reads back as the same bytes.
func TestEscapeField(t *testing.T) {
	for _, s := range []string{"plain/key", "a b", "100%", "\x00\xff", `"q"`, "é"} {
		op, err := parseBatchLine("put k " + escapeField(s))
		if err != nil || string(op.Value) != s {
			t.Errorf("%q escapes as %q, which reads back as %q (%v)", s, escapeField(s), op.Value, err)
		}
	}
	if op, _ := parseBatchLine("put k " + escapeField("")); op.Value == nil || len(op.Value) != 0 {
		t.Errorf("the empty value does not read back: %q", escapeField(""))
	}
}

// TestCLIBatch: ringkv batch against a real node: a line per operation in
// order, with versions, misses and failed conditions, exit 1 when an item
// failed, and a bad line refused before anything is sent. A batch's items
// run concurrently, so no batch here both writes a key and reads or
// conditions on it, but the failed condition, which writes nothing.
func TestCLIBatch(t *testing.T) {
	addr := newInProcessNode(t)
	batch := func(in string, wantCode, wantLines int) []string {
		t.Helper()
		out, errs, code := cli(t, in, "batch", "-", "--addr", addr)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != wantCode || len(lines) != wantLines {
			t.Fatalf("exit %d (want %d), %d lines (want %d):\n%s%s", code, wantCode, len(lines), wantLines, out, errs)
		}
		return lines
	}
	lines := batch("# a comment\nput a%20b one\n\nput k v2 if-absent\nget missing serial\n", 0, 3)
	v := strings.Fields(lines[0])
	switch {
	case v[0] != "204" || v[1] != "a%20b" || len(v[2]) != 33:
		t.Fatalf("put: %q", lines[0])
	case !strings.HasPrefix(lines[1], "204 k "):
		t.Fatalf("put if-absent of a new key: %q", lines[1])
	case lines[2] != "404 missing":
		t.Fatalf("serial get of a missing key: %q", lines[2])
	}
	lines = batch("get a%20b\nput a%20b x if-absent\ndelete k\n", 1, 3)
	switch {
	case lines[0] != "200 a%20b "+v[2]+" one":
		t.Fatalf("get: %q, want the put's version and value", lines[0])
	case lines[1] != "412 a%20b "+v[2]:
		t.Fatalf("a failed if-absent: %q", lines[1])
	case !strings.HasPrefix(lines[2], "204 k "):
		t.Fatalf("delete: %q", lines[2])
	}
	if lines := batch("get k\n", 0, 1); lines[0] != "404 k" {
		t.Fatalf("get of the deleted key: %q", lines[0])
	}
	// A bad line: exit 2, and nothing of the file was sent.
	if _, errs, code := cli(t, "put z 1\nfrob z\n", "batch", "-", "--addr", addr); code != 2 || !strings.Contains(errs, "line 2") {
		t.Fatalf("a bad line: exit %d, %q", code, errs)
	}
	if out, _, _ := cli(t, "get z\n", "batch", "-", "--addr", addr); out != "404 z\n" {
		t.Fatalf("a refused file wrote: %q", out)
	}
	if _, errs, code := cli(t, "", "batch", "/no/such/file", "--addr", addr); code != 2 || !strings.Contains(errs, "no such file") {
		t.Fatalf("a missing file: exit %d, %q", code, errs)
	}
}
