package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	// DefaultPort is the port of an address given without one: ringkv
	// serve's default --http-addr port.
	DefaultPort = 8080
	// DefaultTimeout bounds each attempt of a request.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxIdleConnsPerHost is how many idle connections to each
	// node are kept for reuse: enough for a bench or a preloader's
	// concurrent requests not to dial anew (net/http's own default is 2).
	DefaultMaxIdleConnsPerHost = 64
)

// Config configures a Client. The zero value of every field but Addrs
// means its default.
type Config struct {
	// Addrs are the nodes, each HOST, HOST:PORT, or http(s)://HOST[:PORT];
	// an address without a port means DefaultPort, whatever the scheme.
	Addrs []string
	// Token is sent as "Authorization: Bearer TOKEN", for a node with
	// --auth-file.
	Token string
	// TLS verifies https:// nodes and may carry a client certificate;
	// nil means the system roots. CAFile, CertFile and KeyFile, when
	// set, are loaded into a copy of it.
	TLS                       *tls.Config
	CAFile, CertFile, KeyFile string
	// Timeout bounds each attempt of a request (default DefaultTimeout).
	// For Backup it bounds the connection, the wait for the answer to
	// start and each pause in the stream, not the whole stream.
	Timeout time.Duration
	// MaxIdleConnsPerHost (default DefaultMaxIdleConnsPerHost).
	MaxIdleConnsPerHost int
	// Transport, when set, carries the requests instead of one the
	// client builds from the fields above (TLS, CAFile... are then unused).
	Transport http.RoundTripper
}

// EnsureDefaults fills in the zero fields.
func (c *Config) EnsureDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
}

// Validate returns the first bad field, naming it.
func (c *Config) Validate() error {
	if len(c.Addrs) == 0 {
		return errors.New("client: Addrs: want at least one address")
	}
	for _, a := range c.Addrs {
		if _, err := BaseURL(a); err != nil {
			return err
		}
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("client: Timeout (%s) must be positive", c.Timeout)
	case c.MaxIdleConnsPerHost < 0:
		return fmt.Errorf("client: MaxIdleConnsPerHost (%d) must be positive", c.MaxIdleConnsPerHost)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("client: CertFile and KeyFile go together")
	}
	return nil
}

// Client calls ringkv nodes. Make one with New or Config.New.
type Client struct {
	cfg   Config
	bases []string // base URLs, in Addrs' order
	hc    *http.Client
	last  atomic.Uint32 // index in bases of the node that answered last
}

// New returns a client of the nodes at addrs, with the defaults of Config.
func New(addrs ...string) (*Client, error) {
	return Config{Addrs: addrs}.New()
}

// New returns a client configured by c.
func (c Config) New() (*Client, error) {
	c.Addrs = append([]string(nil), c.Addrs...)
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rt := c.Transport
	if rt == nil {
		t, err := c.transport()
		if err != nil {
			return nil, err
		}
		rt = t
	}
	cl := &Client{cfg: c}
	for _, a := range c.Addrs {
		b, _ := BaseURL(a) // checked by Validate
		cl.bases = append(cl.bases, b)
	}
	cl.hc = &http.Client{
		Transport: headerTransport{base: rt, token: c.Token},
		// A node never redirects, and a redirect must not carry the
		// token to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return cl, nil
}

// transport builds the HTTP transport of c: net/http's defaults (proxy
// from the environment, keep-alive) with c's TLS and limits.
func (c *Config) transport() (*http.Transport, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = c.MaxIdleConnsPerHost
	tr.DialContext = (&net.Dialer{Timeout: c.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = c.Timeout
	return tr, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS != nil {
		tc = c.TLS.Clone()
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client: CAFile: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("client: CAFile %s: no PEM certificate in it", c.CAFile)
		}
	}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client: CertFile, KeyFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Node returns a client of the one node at addr, sharing c's connections
// and settings. An addr without a scheme takes that of c's first address,
// so that an https:// cluster is reached over TLS at the HOST:PORT its
// members list.
func (c *Client) Node(addr string) (*Client, error) {
	if !strings.Contains(addr, "://") && strings.HasPrefix(c.bases[0], "https://") {
		addr = "https://" + addr
	}
	b, err := BaseURL(addr)
	if err != nil {
		return nil, err
	}
	n := &Client{cfg: c.cfg, bases: []string{b}, hc: c.hc}
	n.cfg.Addrs = []string{addr}
	return n, nil
}

// Addrs returns the addresses the client was given.
func (c *Client) Addrs() []string { return append([]string(nil), c.cfg.Addrs...) }

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// BaseURL returns the URL under which requests to addr are made, without
// a trailing slash: HOST, HOST:PORT, [IPv6]:PORT or http(s)://HOST[:PORT],
// with DefaultPort when no port is given.
func BaseURL(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	scheme := "http"
	if s, rest, ok := strings.Cut(a, "://"); ok {
		scheme, a = s, rest
	}
	a = strings.TrimSuffix(a, "/")
	bad := fmt.Errorf("client: address %q: want HOST[:PORT] or http(s)://HOST[:PORT]", addr)
	if scheme != "http" && scheme != "https" || a == "" || strings.ContainsAny(a, "/?#@ ") {
		return "", bad
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// No port: HOST, [V6] or a bare V6 address.
		host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), strconv.Itoa(DefaultPort)
		if strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", bad
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// headerTransport marks every request X-Ringkv-Request (which admin POSTs
// need: a browser cannot send it cross-origin) and adds the token.
type headerTransport struct {
	base  http.RoundTripper
	token string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the request
	r.Header.Set("X-Ringkv-Request", "1")
	if t.token != "" {
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.base.RoundTrip(r)
}

// request is one call to make against a node.
type request struct {
	method string
	path   string // with its query
	body   []byte
	// one: do not fail over (the call acts on the node asked).
	one bool
	// ifMatch, ifNoneMatch: the validators of a conditional write, which
	// fails over only as failoverConditional allows.
	ifMatch, ifNoneMatch string
	// conditional: the request holds conditional writes (a batch's), so
	// it fails over as failoverConditional allows.
	conditional bool
	contentType string
}

// answer is a node's 2xx answer, its body read.
type answer struct {
	addr   string // the node that answered, as given
	code   int
	header http.Header
	body   []byte
}

// do sends r to the node that answered last, then to the others in turn
// while the error means the node could not answer.
func (c *Client) do(ctx context.Context, r request) (answer, error) {
	first := int(c.last.Load()) % len(c.bases)
	var err error
	for i := range c.bases {
		n := (first + i) % len(c.bases)
		var a answer
		a, err = c.attempt(ctx, n, r)
		retry := failover
		if r.ifMatch != "" || r.ifNoneMatch != "" || r.conditional {
			retry = failoverConditional
		}
		if err == nil || !retry(err) || r.one {
			if err == nil {
				c.last.Store(uint32(n))
			}
			return a, err
		}
		if ctx.Err() != nil {
			return a, err
		}
	}
	if len(c.bases) > 1 {
		err = fmt.Errorf("%w (and %d other nodes could not answer)", err, len(c.bases)-1)
	}
	return answer{}, err
}

// attempt sends r to node n once.
func (c *Client) attempt(ctx context.Context, n int, r request) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.send(ctx, n, r)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, c.nodeError(n, err)
	}
	if resp.StatusCode == http.StatusPreconditionFailed {
		return answer{}, conditionError(c.cfg.Addrs[n], resp.Status, body)
	}
	if resp.StatusCode/100 != 2 {
		return answer{}, statusError(c.cfg.Addrs[n], resp.StatusCode, resp.Status, body)
	}
	return answer{addr: c.cfg.Addrs[n], code: resp.StatusCode, header: resp.Header, body: body}, nil
}

// send makes the request; the caller closes the body.
func (c *Client) send(ctx context.Context, n int, r request) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.bases[n]+r.path, body)
	if err != nil {
		return nil, err
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	if r.ifNoneMatch != "" {
		req.Header.Set("If-None-Match", r.ifNoneMatch)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.nodeError(n, err)
	}
	return resp, nil
}

// nodeError wraps a transport error. A request stopped by the caller's
// context is one too, and still matches context.Canceled or
// DeadlineExceeded through Unwrap.
func (c *Client) nodeError(n int, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &NodeError{Addr: c.cfg.Addrs[n], Err: err}
}
