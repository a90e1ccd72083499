package httpd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/cockroachdb/datadriven"
	"github.com/valyala/fasthttp"
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
//	server [auth] [metrics-open] [status-open] [pprof] [cluster] [addnode-get]
//	    start a server (with auth: the credentials of testTokens)
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
			if col != "anonymous" {
				hdrs = append(hdrs, "Authorization: Bearer "+tokenOf(t, col))
			}
			head := f[0] == fasthttp.MethodHead
			resp := ts.roundTripFrom(t, "127.0.0.1", rawRequest(f[0], f[1], body, hdrs...), head)
			code := resp.StatusCode()
			if code == fasthttp.StatusUnauthorized && len(resp.Header.Peek("WWW-Authenticate")) == 0 {
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
