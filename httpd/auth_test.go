package httpd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// The test credentials: one token per role, and one readwrite token
// restricted to the prefix users/.
var testTokens = []struct {
	col, token, line string
}{
	{"read", "tok-read", "read"},
	{"readwrite", "tok-readwrite", "readwrite"},
	{"users/", "tok-users", "readwrite %s users/"},
	{"admin", "tok-admin", "admin"},
	{"metrics", "tok-metrics", "metrics"},
}

func testAuthFile() string {
	var b strings.Builder
	b.WriteString("# test credentials\n\n")
	for _, tt := range testTokens {
		h := sha256.Sum256([]byte(tt.token))
		cred := "sha256:" + hex.EncodeToString(h[:])
		if strings.Contains(tt.line, "%s") {
			fmt.Fprintf(&b, tt.line+"\n", cred)
		} else {
			fmt.Fprintf(&b, "%s %s\n", tt.line, cred)
		}
	}
	return b.String()
}

// TestAuth replays the transcripts under testdata/auth: every endpoint as
// every kind of caller, on a node with auth on and with it off. Rewrite
// them with `go test ./httpd -run TestAuth$ -rewrite` and review the diff.
//
// Commands:
//
//	server [auth] [metrics-open] [status-open] [pprof] [cluster] [addnode-get] [secret]
//	    start a server (with auth: the credentials of testTokens; with
//	    secret: a cluster secret, so that internode calls are signed)
//	matrix
//	METHOD TARGET [BODY]
//	...
//	    send each request as anonymous, with a token no file holds
//	    ("bad"), and with each test token, from 127.0.0.1 with
//	    X-Ringkv-Request: 1; print the status codes, one row a request
//	request [token=COL] ... (as TestAPI's request)
//	    one request, with the named test token's Authorization header
//	store-dump, cluster-log (as TestAPI's)
func TestAuth(t *testing.T) {
	datadriven.Walk(t, "testdata/auth", func(t *testing.T, path string) {
		var ts *testServer
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "server":
				if ts != nil {
					ts.stop(t)
				}
				cfg := Config{
					Pprof:             d.HasArg("pprof"),
					MetricsOpen:       d.HasArg("metrics-open"),
					StatusOpen:        d.HasArg("status-open"),
					KVStoreAddNodeGet: d.HasArg("addnode-get"),
					Cmdline:           []string{"ringkv", "serve", "--cluster-secret", "hunter2"},
				}
				if d.HasArg("secret") {
					cfg.Secrets = keyring.New("test", []byte("hunter2"))
				}
				if d.HasArg("auth") {
					a, err := NewStaticAuth([]byte(testAuthFile()))
					if err != nil {
						t.Fatal(err)
					}
					cfg.Auth = a
				}
				if d.HasArg("cluster") {
					ts = newClusterTestServer(t, cfg)
				} else {
					ts = newTestServer(t, cfg)
				}
				return "ok\n"
			case "matrix":
				return authMatrix(t, ts, d)
			case "request":
				if arg, ok := d.Arg("token"); ok {
					auth := "Authorization: Bearer " + tokenOf(t, arg.SingleVal(t))
					found := false
					for i := range d.CmdArgs {
						if d.CmdArgs[i].Key == "header" {
							d.CmdArgs[i].Vals = append(d.CmdArgs[i].Vals, auth)
							found = true
						}
					}
					if !found {
						d.CmdArgs = append(d.CmdArgs, datadriven.CmdArg{Key: "header", Vals: []string{auth}})
					}
				}
				// pprof's cmdline separates arguments with NULs.
				return strings.ReplaceAll(runRequest(t, ts, d), "\x00", " ")
			case "store-dump":
				return ts.st.dump()
			case "cluster-log":
				return ts.cl.log()
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func tokenOf(t *testing.T, col string) string {
	for _, tt := range testTokens {
		if tt.col == col {
			return tt.token
		}
	}
	if col == "bad" {
		return "tok-nobody"
	}
	t.Fatalf("no test token %q", col)
	return ""
}

func authMatrix(t *testing.T, ts *testServer, d *datadriven.TestData) string {
	cols := []string{"anonymous", "bad"}
	for _, tt := range testTokens {
		cols = append(cols, tt.col)
	}
	// peer: a call signed with the cluster secret, as another node makes
	// it, and no client credential.
	peerSecrets := keyring.New("test", []byte("hunter2"))
	cols = append(cols, "peer")
	var out strings.Builder
	w := tabwriter.NewWriter(&out, 0, 0, 1, ' ', 0)
	fmt.Fprintf(w, "request\t%s\n", strings.Join(cols, "\t"))
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 {
			d.Fatalf(t, "want METHOD TARGET [BODY], got %q", line)
		}
		var body []byte
		if len(f) == 3 {
			body = []byte(f[2])
		}
		codes := make([]string, 0, len(cols))
		for _, col := range cols {
			hdrs := []string{RequestHeader + ": 1"}
			switch col {
			case "anonymous":
			case "peer":
				sg, _ := sign(peerSecrets, "node-2", f[0], f[1], body, time.Now())
				hdrs = append(hdrs, NodeHeader+": "+sg.node, TimeHeader+": "+sg.time, SignatureHeader+": "+sg.sig)
			default:
				hdrs = append(hdrs, "Authorization: Bearer "+tokenOf(t, col))
			}
			head := f[0] == fasthttp.MethodHead
			resp := ts.roundTripFrom(t, "127.0.0.1", rawRequest(f[0], f[1], body, hdrs...), head)
			code := resp.StatusCode()
			// (/internal/'s 401 is the internode credential's, no bearer challenge.)
			if code == fasthttp.StatusUnauthorized && len(resp.Header.Peek("WWW-Authenticate")) == 0 && !strings.HasPrefix(f[1], internalPrefix) {
				t.Errorf("%s as %s: 401 without WWW-Authenticate", line, col)
			}
			if code >= 400 && !head {
				checkJSONError(t, resp.Header.ContentType(), resp.Body())
			}
			codes = append(codes, fmt.Sprint(code))
		}
		fmt.Fprintf(w, "%s\t%s\n", clipString(line, 50), strings.Join(codes, "\t"))
	}
	w.Flush()
	return out.String()
}

func TestParseAuthFile(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		in, err string
		grants  int
	}{
		{in: "", grants: 0},
		{in: "# only a comment\n\n   \n", grants: 0},
		{in: "read sha256:" + h, grants: 1},
		{in: "read sha256:" + strings.ToUpper(h) + " users/ # trailing comment\r\n", grants: 1},
		{in: "admin cn:ops-1\nmetrics cn:prometheus\nreadwrite cn:app app/", grants: 3},
		{in: "read sha256:" + h + "\nreadwrite sha256:" + h + " a/", grants: 2},
		{in: "\n\nwrite sha256:" + h, err: "line 3: unknown role \"write\""},
		{in: "read", err: "line 1: want ROLE sha256:HEX [PREFIX] or ROLE cn:NAME [PREFIX], got 1 fields"},
		{in: "read sha256:" + h + " a b", err: "line 1: want ROLE"},
		{in: "read sha256:abc", err: "line 1: sha256: wants 64 hex digits"},
		{in: "read sha256:" + strings.Repeat("zz", 32), err: "line 1: sha256: not hex"},
		{in: "read md5:" + h, err: "line 1: credential \"md5:" + h[:35]},
		{in: "read " + h, err: "line 1: credential"},
		{in: "read cn:", err: "line 1: cn: wants a certificate CommonName"},
		{in: "admin sha256:" + h + " users/", err: "line 1: a key prefix applies only to read and readwrite, not admin"},
		{in: "metrics cn:x y", err: "line 1: a key prefix applies only to read and readwrite, not metrics"},
		{in: "none sha256:" + h, err: "line 1: unknown role \"none\""},
	}
	for _, tt := range tests {
		set, err := parseAuthFile([]byte(tt.in))
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseAuthFile(%q) = %v, want an error with %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("parseAuthFile(%q): %v", tt.in, err)
		case len(set.grants) != tt.grants:
			t.Errorf("parseAuthFile(%q): %d grants, want %d", tt.in, len(set.grants), tt.grants)
		}
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		in, tok string
		ok      bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  a-b.c_d~e+f/g==", "a-b.c_d~e+f/g==", true},
		{"Bearer abc \t", "abc", true},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"Bearer =", "", false},
		{"Bearer a=b", "", false},
		{"Bearer a b", "", false},
		{"Bearer a\x00", "", false},
		{"Basic YWJj", "", false},
		{"Bearerabc", "", false},
		{"Bearer\tabc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		tok, ok := ParseBearer([]byte(tt.in))
		if ok != tt.ok || string(tok) != tt.tok {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", tt.in, tok, ok, tt.tok, tt.ok)
		}
	}
}

func TestScrubCmdline(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ringkv serve --cluster-secret s3cret --http-addr :1", "ringkv serve --cluster-secret REDACTED --http-addr :1"},
		{"ringkv serve --cluster-secret=s3cret", "ringkv serve --cluster-secret=REDACTED"},
		{"ringkv serve -cluster-secret=a=b", "ringkv serve -cluster-secret=REDACTED"},
		{"ringkv get k --token t0k", "ringkv get k --token REDACTED"},
		{"ringkv x --API_TOKEN=t0k --my-secret-key v", "ringkv x --API_TOKEN=REDACTED --my-secret-key REDACTED"},
		{"ringkv serve --cluster-secret-file /etc/s --auth-file /etc/a", "ringkv serve --cluster-secret-file /etc/s --auth-file /etc/a"},
		{"ringkv serve --cluster-secret", "ringkv serve --cluster-secret"},
		{"ringkv serve -- --cluster-secret x", "ringkv serve -- --cluster-secret x"},
		{"--cluster-secret x", "--cluster-secret x"}, // argv[0] is the program
	}
	for _, tt := range tests {
		got := strings.Join(ScrubCmdline(strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("ScrubCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		origin, host string
		want         bool
	}{
		{"http://a.example", "a.example", true},
		{"http://a.example:80", "a.example", true},
		{"http://a.example", "a.example:80", true},
		{"https://a.example", "a.example:443", true},
		{"http://A.Example:8080", "a.example:8080", true},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"http://a.example:8080", "a.example:8081", false},
		{"https://a.example", "a.example:80", false},
		{"http://a.example.evil", "a.example", false},
		{"http://a.example/", "a.example", false},
		{"http://user@a.example", "a.example", false},
		{"null", "a.example", false},
		{"file://", "a.example", false},
		{"http://", "", false},
		{"a.example", "a.example", false},
	}
	for _, tt := range tests {
		if got := sameOrigin([]byte(tt.origin), []byte(tt.host)); got != tt.want {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", tt.origin, tt.host, got, tt.want)
		}
	}
}

// TestAuthCertName: a certificate's CommonName matches cn: lines only,
// never a token's, and names itself in the log's who.
func TestAuthCertName(t *testing.T) {
	set, err := parseAuthFile([]byte("admin cn:ops\nreadwrite cn:app app/\nread sha256:" + strings.Repeat("00", 32)))
	if err != nil {
		t.Fatal(err)
	}
	id := set.match(nil, "app")
	if id == nil || !id.permits(RoleReadWrite, []byte("app/x"), true) || id.permits(RoleReadWrite, []byte("other"), true) || id.permits(RoleAdmin, nil, false) {
		t.Errorf("cn app: wrong grants %+v", id.grants)
	}
	if id.who != `cn="app" line 2 (readwrite "app/")` {
		t.Errorf("who = %q", id.who)
	}
	if id := set.match(nil, "op"); id != nil {
		t.Errorf("cn op (a prefix of ops) matched %+v", id.grants)
	}
	if id := set.match(nil, ""); id != nil {
		t.Errorf("an empty cn matched %+v", id.grants)
	}
	// A token whose hash is all zeros does not exist, but a cn: line's
	// zero hash must not match a token either.
	if id := set.match([]byte("ops"), ""); id != nil {
		t.Errorf("token \"ops\" matched %+v", id.grants)
	}
}

// TestAuthReload: a change to the file is picked up by the poller; a
// change that does not parse keeps the credentials in force.
func TestAuthReload(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/auth"
	line := func(role, tok string) string {
		h := sha256.Sum256([]byte(tok))
		return role + " sha256:" + hex.EncodeToString(h[:]) + "\n"
	}
	write := func(s string) {
		t.Helper()
		// Write aside and rename, as editors and config managers do, so
		// that the poller never reads half a file.
		if err := os.WriteFile(file+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	write(line("read", "one"))
	if _, err := NewAuth(AuthConfig{File: dir + "/absent"}); err == nil {
		t.Fatal("NewAuth of a missing file succeeded")
	}
	write("bogus line\n" + line("read", "one"))
	if _, err := NewAuth(AuthConfig{File: file}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("NewAuth of a bad file: %v, want an error naming line 1", err)
	}
	write(line("read", "one"))
	a, err := NewAuth(AuthConfig{File: file, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	has := func(tok string) bool { return a.set.Load().match([]byte(tok), "") != nil }
	if !has("one") || has("two") {
		t.Fatal("initial credentials wrong")
	}
	write(line("read", "two"))
	wait.For(t, time.Minute, func() bool { return has("two") && !has("one") }, "the poller to pick up token two")

	write("read sha256:nothex\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if !has("two") {
		t.Fatal("a bad file replaced the credentials in force")
	}
	write(line("admin", "three"))
	wait.For(t, time.Minute, func() bool { return has("three") }, "the poller to pick up token three after a bad file")
	a.Close()
	a.Close() // twice is fine
}

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a==", "Basic x", "Bearer  a b", "Bearer \x00", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		tok, ok := ParseBearer(h)
		if !ok {
			if tok != nil {
				t.Fatalf("ParseBearer(%q) refused but returned %q", h, tok)
			}
			return
		}
		if len(tok) == 0 || !bytes.Contains(h, tok) {
			t.Fatalf("ParseBearer(%q) = %q", h, tok)
		}
		for _, c := range tok {
			if !isToken68(c) && c != '=' {
				t.Fatalf("ParseBearer(%q) = %q, with byte %q", h, tok, c)
			}
		}
		// Canonical form round-trips.
		if again, ok := ParseBearer(append([]byte("Bearer "), tok...)); !ok || !bytes.Equal(again, tok) {
			t.Fatalf("round trip of %q: %q %v", tok, again, ok)
		}
	})
}

func FuzzAuthFile(f *testing.F) {
	h := strings.Repeat("0f", 32)
	for _, s := range []string{"read sha256:" + h, "readwrite sha256:" + h + " p/\n# c\n", "admin cn:x", "read cn:a b", "metrics sha256:" + h, "bad", "\r\n\r\n#"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := parseAuthFile(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q does not name a line", err)
			}
			return
		}
		for _, g := range set.grants {
			if g.role == RoleNone || (g.prefix != "" && g.role != RoleRead && g.role != RoleReadWrite) {
				t.Fatalf("grant %+v from %q", g, b)
			}
		}
		// Matching never panics, whatever the file.
		set.match([]byte("tok"), "")
		set.match(nil, "cn")
	})
}

// FuzzAuthRequest serves arbitrary requests on a node with auth on, as
// anonymous, as read, as admin-less readwrite restricted to users/, or
// with a bad token (sel picks; any Authorization of the input is
// replaced). Whatever the input, only the users/ token changes the store,
// only keys under users/, and no admin action runs.
func FuzzAuthRequest(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(byte(i), []byte(s))
	}
	for _, s := range []string{
		"PUT /v1/kv/users%2F..%2Fx HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
		"PUT /v1/kv/users/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
		"POST /kvstore HTTP/1.1\r\nHost: x\r\nContent-Length: 49\r\n\r\n{\"key\":\"users/a\",\"key\":\"other\",\"value\":\"v\"}",
		"DELETE /kvstore?key=users/a&key=other HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/admin/compact HTTP/1.1\r\nHost: x\r\nX-Ringkv-Request: 1\r\n\r\n",
	} {
		f.Add(byte(2), []byte(s))
	}
	a, err := NewStaticAuth([]byte(testAuthFile()))
	if err != nil {
		f.Fatal(err)
	}
	st, ops := newFakeStore(), &fakeOps{}
	srv, err := New(Config{
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxValueSize: 64,
		MaxKeySize:   16,
		Auth:         a,
		Pprof:        true,
	}, st, ops)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	tokens := []string{"", "tok-read", "tok-users", "tok-nobody"}
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		var req fasthttp.Request
		if err := req.ReadLimitBody(bufio.NewReader(bytes.NewReader(data)), 1<<16); err != nil {
			return
		}
		req.Header.Del(fasthttp.HeaderAuthorization)
		tok := tokens[int(sel)%len(tokens)]
		if tok != "" {
			req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+tok)
		}
		st.mu.Lock()
		st.mu.m = map[string]fakeRec{
			"users/a": {val: []byte("1"), ver: kv.Version{TS: 1, Node: 1}},
			"other":   {val: []byte("v"), ver: kv.Version{TS: 2, Node: 1}},
		}
		st.mu.Unlock()
		before := st.snapshot()
		ops.mu.Lock()
		compacts := ops.compacts
		ops.mu.Unlock()

		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		h(&ctx)

		after := st.snapshot()
		for k := range merged(before, after) {
			b, inB := before[k]
			a, inA := after[k]
			if inB == inA && (!inB || bytes.Equal(a.val, b.val) && a.ver == b.ver) {
				continue
			}
			if tok != "tok-users" || !strings.HasPrefix(k, "users/") {
				t.Fatalf("request %q with token %q changed key %q (answer %d %q)", data, tok, k, ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
		ops.mu.Lock()
		defer ops.mu.Unlock()
		if ops.compacts != compacts {
			t.Fatalf("request %q with token %q compacted", data, tok)
		}
		if code := ctx.Response.StatusCode(); code < 400 && bytes.HasPrefix(ctx.URI().PathOriginal(), []byte(pprofPrefix)) {
			t.Fatalf("request %q with token %q was served pprof (%d)", data, tok, code)
		}
	})
}

func merged(a, b map[string]fakeRec) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}
