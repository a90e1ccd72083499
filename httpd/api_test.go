package httpd

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cockroachdb/datadriven"
	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
)

// TestAPI replays the HTTP transcripts under testdata/ against a Server on
// an in-memory listener, serving a fake store. Rewrite them with
// `go test ./httpd -run TestAPI -rewrite` and review the diff.
//
// Commands:
//
//	server [pprof] [max-value-size=N] [max-key-size=N] [cluster] [secret=S] [addnode-get]
//	    start a new server with an empty store (each file starts with one);
//	    with cluster, its Ops also implements Cluster (a fakeCluster)
//	request [body-repeat=C:N] [repeat=C:N] [grep=S] [brief] [header=(H: V,...)] [from=IP]
//	METHOD TARGET
//	body...
//	    send one request on a new connection (from IP, else from 0.0.0.0,
//	    which is not loopback); $REPEAT in the target and
//	    body is replaced by C repeated N times, body-repeat makes the body
//	    C repeated N times. Prints the status, the Content-Type,
//	    X-Ringkv-Version and Allow headers, Content-Length for a HEAD, and
//	    the body (only its lines containing S with grep, none with brief).
//	store-len | store-dump
//	    print the fake store's size or content
//	fail err=notfound|unavailable|deadline|canceled|internal|panic|none
//	    make every store call fail so (or not)
//	fail-key key=K err=NAME
//	    make every store call on key K fail so (none: not), as fail
//	compact-fail err=internal|none
//	health
//	REASON: DETAIL
//	...
//	    the reasons Ops.Health gives, one a line (none: healthy)
//	cluster-log
//	    print the nodes the fakeCluster was asked to add and remove
func TestAPI(t *testing.T) {
	datadriven.Walk(t, "testdata/api", func(t *testing.T, path string) {
		ts := newTestServer(t, Config{})
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "server":
				cfg := Config{Pprof: d.HasArg("pprof"), KVStoreAddNodeGet: d.HasArg("addnode-get")}
				d.MaybeScanArgs(t, "max-value-size", &cfg.MaxValueSize)
				d.MaybeScanArgs(t, "max-key-size", &cfg.MaxKeySize)
				if d.HasArg("secret") {
					var secret string
					d.ScanArgs(t, "secret", &secret)
					cfg.Secrets = keyring.New("", []byte(secret))
				}
				ts.stop(t)
				if d.HasArg("cluster") {
					ts = newClusterTestServer(t, cfg)
				} else {
					ts = newTestServer(t, cfg)
				}
				return "ok\n"
			case "cluster-log":
				if ts.cl == nil {
					d.Fatalf(t, "cluster-log needs a server started with cluster")
				}
				return ts.cl.log()
			case "request":
				return runRequest(t, ts, d)
			case "store-len":
				return strconv.Itoa(ts.st.len()) + "\n"
			case "store-dump":
				return ts.st.dump()
			case "fail":
				var name string
				d.ScanArgs(t, "err", &name)
				ts.st.setErr(namedError(t, name))
				return "ok\n"
			case "health":
				var h []kv.Degraded
				for _, l := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					if reason, detail, _ := strings.Cut(l, ": "); reason != "" {
						h = append(h, kv.Degraded{Reason: reason, Detail: detail, RefusesWrites: d.HasArg("refuses-writes")})
					}
				}
				ts.ops.setHealth(h...)
				return "ok\n"
			case "fail-key":
				var key, name string
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "err", &name)
				ts.st.setKeyErr(key, namedError(t, name))
				return "ok\n"
			case "compact-fail":
				var name string
				d.ScanArgs(t, "err", &name)
				ts.ops.setCompactErr(namedError(t, name))
				return "ok\n"
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func namedError(t *testing.T, name string) error {
	switch name {
	case "none":
		return nil
	case "notfound":
		return fmt.Errorf("wrapped: %w", kv.ErrNotFound)
	case "unknown":
		return fmt.Errorf("conditional write of \"k\": %w", kv.ErrOutcomeUnknown)
	case "unavailable":
		return fmt.Errorf("cannot put: %w", &kv.UnavailableError{Op: "put", Needed: 2, Answered: 1})
	case "deadline":
		return fmt.Errorf("cannot get: %w", context.DeadlineExceeded)
	case "canceled":
		return context.Canceled
	case "internal":
		return errors.New("disk on fire")
	case "diskfull":
		return fmt.Errorf("cannot put: %w", diskFullError{})
	case "panic":
		return errPanic
	}
	t.Fatalf("unknown error %q", name)
	return nil
}

// diskFullError is an engine.DiskFullError as peer passes it on.
type diskFullError struct{}

func (diskFullError) Error() string {
	return "disk full: /data has 3.1MiB free, below --min-free-space 512MiB; writes are refused until space is freed"
}
func (diskFullError) Is(target error) bool { return target == kv.ErrDiskFull }

var durationRE = regexp.MustCompile(`"duration":"[^"]*"`)

func runRequest(t *testing.T, ts *testServer, d *datadriven.TestData) string {
	line, body, _ := strings.Cut(d.Input, "\n")
	method, target, ok := strings.Cut(line, " ")
	if !ok {
		d.Fatalf(t, "want METHOD TARGET, got %q", line)
	}
	if arg, ok := d.Arg("repeat"); ok {
		r := repeatArg(t, arg.SingleVal(t))
		target = strings.ReplaceAll(target, "$REPEAT", r)
		body = strings.ReplaceAll(body, "$REPEAT", r)
	}
	if arg, ok := d.Arg("body-repeat"); ok {
		body = repeatArg(t, arg.SingleVal(t))
	}
	var headers []string
	if arg, ok := d.Arg("header"); ok {
		headers = arg.Vals
	}
	head := method == fasthttp.MethodHead
	raw := rawRequest(method, target, []byte(body), headers...)
	var resp *fasthttp.Response
	if arg, ok := d.Arg("from"); ok {
		resp = ts.roundTripFrom(t, arg.SingleVal(t), raw, head)
	} else {
		resp = ts.roundTrip(t, raw, head)
	}

	var out strings.Builder
	fmt.Fprintf(&out, "%d\n", resp.StatusCode())
	for _, h := range []string{fasthttp.HeaderContentType, "X-Ringkv-Version", fasthttp.HeaderETag, fasthttp.HeaderAllow, fasthttp.HeaderWWWAuthenticate} {
		if v := resp.Header.Peek(h); len(v) > 0 {
			fmt.Fprintf(&out, "%s: %s\n", h, v)
		}
	}
	if head {
		fmt.Fprintf(&out, "Content-Length: %d\n", resp.Header.ContentLength())
	}
	if d.HasArg("brief") {
		return out.String()
	}
	b := string(resp.Body())
	b = durationRE.ReplaceAllString(b, `"duration":"<d>"`)
	if arg, ok := d.Arg("grep"); ok {
		var kept []string
		for l := range strings.Lines(b) {
			if strings.Contains(l, arg.SingleVal(t)) {
				kept = append(kept, strings.TrimSuffix(l, "\n"))
			}
		}
		b = strings.Join(kept, "\n")
	}
	switch {
	case b == "":
	case len(b) > 1000 || !utf8.ValidString(b):
		fmt.Fprintf(&out, "<%d bytes>\n", len(b))
	default:
		out.WriteString(b)
		if !strings.HasSuffix(b, "\n") {
			out.WriteString("\n")
		}
	}
	return out.String()
}

// repeatArg turns "C:N" into C repeated N times; C may hold colons.
func repeatArg(t *testing.T, s string) string {
	i := strings.LastIndexByte(s, ':')
	c, n, ok := s[:max(i, 0)], s[i+1:], i >= 0
	count, err := strconv.Atoi(n)
	if !ok || err != nil {
		t.Fatalf("want C:N, got %q", s)
	}
	return strings.Repeat(c, count)
}
