package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// clientConfig holds the flags of get, put, delete and scan.
type clientConfig struct {
	addr        string
	consistency string
	timeout     time.Duration
	ttl         time.Duration
	prefix      string
	after       string
	limit       int
	pageSize    int
	json        bool
	token       string
}

func clientUsage(cmd string) string {
	switch cmd {
	case "get":
		return "usage: ringkv get KEY [--addr HOST:PORT] [--consistency one|quorum|all]\nPrints the value to stdout. Exit 0 found, 1 not found, 2 error."
	case "put":
		return "usage: ringkv put KEY VALUE [--ttl DURATION] [--addr HOST:PORT] [--consistency ...]\nVALUE '-' reads the value from stdin."
	case "delete":
		return "usage: ringkv delete KEY [--addr HOST:PORT] [--consistency ...]"
	}
	return "usage: ringkv scan [--prefix P] [--limit N] [--after K] [--json] [--addr HOST:PORT]\nPrints KEY<TAB>VALUE lines in token (hash) order."
}

// client runs one client command against a node's HTTP API.
func client(cmd string, args []string, env *environ, stdin io.Reader, stdout, stderr io.Writer) int {
	c := clientConfig{addr: "127.0.0.1:8080", timeout: 10 * time.Second, limit: 100}
	if v, _, ok := env.lookup("RINGKV_ADDR"); ok {
		c.addr = v
	} else if v, _, ok := env.lookup("NODE_ADDRESS"); ok {
		c.addr = normalizeNodeAddress(v)
	}
	fs := flag.NewFlagSet("ringkv "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", c.addr, "node HTTP address (also RINGKV_ADDR)")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "request timeout")
	addTokenFlag(fs, env, &c.token)
	var tf tlsFlags
	tf.add(fs, env)
	if cmd != "scan" {
		fs.StringVar(&c.consistency, "consistency", "", "one, quorum or all (default quorum)")
	}
	if cmd == "put" {
		fs.DurationVar(&c.ttl, "ttl", 0, "expire the key after this long")
	}
	if cmd == "scan" {
		fs.StringVar(&c.prefix, "prefix", "", "only keys with this prefix")
		fs.StringVar(&c.after, "after", "", "start after this key")
		fs.IntVar(&c.limit, "limit", c.limit, "most keys to list")
		fs.IntVar(&c.pageSize, "page-size", 1000, "keys asked for per request (1 to 10000)")
		fs.BoolVar(&c.json, "json", false, "print one JSON object per key")
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ringkv %s: %s\n", cmd, fmt.Sprintf(format, a...))
		return exitUsage
	}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, clientUsage(cmd))
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		return fail("%v", err)
	}
	want := map[string]int{"get": 1, "put": 2, "delete": 1, "scan": 0}[cmd]
	if len(pos) != want {
		u, _, _ := strings.Cut(clientUsage(cmd), "\n")
		return fail("want %d argument(s), got %d (%s)", want, len(pos), u)
	}
	if cmd == "scan" && c.limit < 1 {
		return fail("--limit (%d) must be positive", c.limit)
	}
	if cmd == "scan" && (c.pageSize < 1 || c.pageSize > 10000) {
		return fail("--page-size (%d) must be 1 to 10000", c.pageSize)
	}
	if c.consistency != "" && c.consistency != "one" && c.consistency != "quorum" && c.consistency != "all" {
		return fail("--consistency %q: want one, quorum or all", c.consistency)
	}
	base := baseURL(c.addr)
	tr, err := tf.transport()
	if err != nil {
		return fail("%v", err)
	}
	hc := withToken(&http.Client{Timeout: c.timeout, Transport: tr}, c.token)

	if cmd == "scan" {
		return scanCmd(hc, base, c, stdout, stderr)
	}
	key := pos[0]
	if key == "" {
		return fail("KEY must not be empty")
	}
	q := url.Values{}
	if c.consistency != "" {
		q.Set("consistency", c.consistency)
	}
	if c.ttl > 0 {
		q.Set("ttl", c.ttl.String())
	}
	u := base + "/v1/kv/" + url.PathEscape(key)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var method string
	var body io.Reader
	switch cmd {
	case "get":
		method = http.MethodGet
	case "delete":
		method = http.MethodDelete
	case "put":
		method = http.MethodPut
		if pos[1] == "-" {
			v, err := io.ReadAll(stdin)
			if err != nil {
				return fail("cannot read the value from stdin: %v", err)
			}
			body = bytes.NewReader(v)
		} else {
			body = strings.NewReader(pos[1])
		}
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return fail("%v", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fail("cannot reach %s: %v", c.addr, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fail("cannot read the answer from %s: %v", c.addr, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && cmd == "get":
		fmt.Fprintf(stderr, "ringkv get: %q not found\n", key)
		return exitNotFound
	case resp.StatusCode/100 != 2:
		return fail("%s: %s", resp.Status, errorText(data))
	}
	if cmd == "get" {
		stdout.Write(data)
	}
	return exitOK
}

// errorText extracts the message of a JSON error body.
func errorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

type scanItem struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version string `json:"version,omitempty"`
}

func scanCmd(hc *http.Client, base string, c clientConfig, stdout, stderr io.Writer) int {
	// With encoding=base64 the node reads after= as base64 and answers next
	// in base64, so next passes back unchanged.
	after := base64.StdEncoding.EncodeToString([]byte(c.after))
	left := c.limit
	enc := json.NewEncoder(stdout)
	for left > 0 {
		q := url.Values{}
		q.Set("prefix", c.prefix)
		q.Set("limit", strconv.Itoa(min(left, c.pageSize)))
		q.Set("encoding", "base64")
		if after != "" {
			q.Set("after", after)
		}
		resp, err := hc.Get(base + "/v1/kv?" + q.Encode())
		if err != nil {
			fmt.Fprintf(stderr, "ringkv scan: cannot reach %s: %v\n", c.addr, errors.Unwrap(err))
			return exitUsage
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintf(stderr, "ringkv scan: %s: %s\n", resp.Status, errorText(data))
			return exitUsage
		}
		var page struct {
			Items []scanItem `json:"items"`
			Next  *string    `json:"next"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			fmt.Fprintf(stderr, "ringkv scan: malformed answer: %v\n", err)
			return exitUsage
		}
		for _, it := range page.Items {
			k, err1 := base64.StdEncoding.DecodeString(it.Key)
			v, err2 := base64.StdEncoding.DecodeString(it.Value)
			if err1 != nil || err2 != nil {
				fmt.Fprintf(stderr, "ringkv scan: malformed item in answer\n")
				return exitUsage
			}
			if c.json {
				enc.Encode(scanItem{Key: string(k), Value: string(v), Version: it.Version})
			} else {
				fmt.Fprintf(stdout, "%s\t%s\n", k, v)
			}
			left--
		}
		if page.Next == nil || len(page.Items) == 0 {
			break
		}
		after = *page.Next
	}
	return exitOK
}

// addTokenFlag binds --token, whose default is RINGKV_TOKEN.
func addTokenFlag(fs *flag.FlagSet, env *environ, token *string) {
	if v, _, ok := env.lookup("RINGKV_TOKEN"); ok {
		*token = v
	}
	fs.StringVar(token, "token", *token, "bearer token, for a node with --auth-file (also RINGKV_TOKEN, which ps does not show)")
}

// withToken makes hc send "Authorization: Bearer token" (when token is
// set) and the X-Ringkv-Request header that admin POSTs need, on every
// request. It follows no redirect: a node never sends one, and a
// redirect must not carry the token to another host.
func withToken(hc *http.Client, token string) *http.Client {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = tokenTransport{base: base, token: token}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

type tokenTransport struct {
	base  http.RoundTripper
	token string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the request
	r.Header.Set("X-Ringkv-Request", "1")
	if t.token != "" {
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.base.RoundTrip(r)
}

// baseURL turns an --addr (HOST:PORT, or a URL) into the URL requests are
// made under, without a trailing slash.
func baseURL(addr string) string {
	if !strings.HasPrefix(addr, "http://") && !strings.HasPrefix(addr, "https://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/")
}
