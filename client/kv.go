package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Consistency is how many replicas a request waits for.
type Consistency string

// The consistency levels; the zero value lets the node choose (quorum).
const (
	One    Consistency = "one"
	Quorum Consistency = "quorum"
	All    Consistency = "all"
	// Serial, for Get only, is a quorum read that first finishes any
	// conditional write in flight on the key: the value conditional
	// writes are linearizable against (GetVersioned).
	Serial Consistency = "serial"
)

// Version is the version a node reports for a record (its X-Ringkv-Version
// header, or a scan item's version): opaque, and equal for equal writes.
type Version string

// Option changes one request.
type Option func(*options)

type options struct {
	consistency Consistency
	ttl         time.Duration
}

// WithConsistency sets the request's consistency.
func WithConsistency(c Consistency) Option { return func(o *options) { o.consistency = c } }

// WithTTL makes a Put expire its key after d (the node refuses d <= 0).
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

func (o *options) query(ttl bool) url.Values {
	q := url.Values{}
	if o.consistency != "" {
		q.Set("consistency", string(o.consistency))
	}
	if ttl && o.ttl != 0 {
		q.Set("ttl", o.ttl.String())
	}
	return q
}

func kvPath(key string, q url.Values) string {
	p := "/v1/kv/" + url.PathEscape(key)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

func apply(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Get returns the value of key and its version; ErrNotFound (matched with
// errors.Is) when it is absent.
func (c *Client) Get(ctx context.Context, key string, opts ...Option) ([]byte, Version, error) {
	o := apply(opts)
	a, err := c.do(ctx, request{method: http.MethodGet, path: kvPath(key, o.query(false))})
	if err != nil {
		return nil, "", err
	}
	return a.body, Version(a.header.Get("X-Ringkv-Version")), nil
}

// Put stores value under key and returns the version it was written at.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...Option) (Version, error) {
	o := apply(opts)
	if value == nil {
		value = []byte{}
	}
	a, err := c.do(ctx, request{method: http.MethodPut, path: kvPath(key, o.query(true)), body: value})
	if err != nil {
		return "", err
	}
	return Version(a.header.Get("X-Ringkv-Version")), nil
}

// Delete deletes key (writes a tombstone; also when it is absent) and
// returns the tombstone's version.
func (c *Client) Delete(ctx context.Context, key string, opts ...Option) (Version, error) {
	o := apply(opts)
	a, err := c.do(ctx, request{method: http.MethodDelete, path: kvPath(key, o.query(false))})
	if err != nil {
		return "", err
	}
	return Version(a.header.Get("X-Ringkv-Version")), nil
}

// GetVersioned returns the linearizable value of key and its version (a
// read at Serial), for a CompareAndSwap to follow; ErrNotFound when the
// key is absent.
func (c *Client) GetVersioned(ctx context.Context, key string, opts ...Option) ([]byte, Version, error) {
	return c.Get(ctx, key, append(opts, WithConsistency(Serial))...)
}

// CompareAndSwap writes value under key only if the key's current version
// is old (If-Match), decided by a consensus round among its replicas, and
// returns the new version. A key at another version, or absent, gives a
// *ConditionError (errors.Is ErrConditionFailed) saying what it is at.
// ErrOutcomeUnknown means it may or may not have been written. It is not
// sent to another node once a node may have taken it.
func (c *Client) CompareAndSwap(ctx context.Context, key string, old Version, value []byte, opts ...Option) (Version, error) {
	if old == "" {
		return "", fmt.Errorf("ringkv: CompareAndSwap of %q without a version: use PutIfAbsent", key)
	}
	return c.putIf(ctx, key, value, request{ifMatch: `"` + string(old) + `"`}, opts)
}

// PutIfAbsent writes value under key only if the key is absent (never
// written, deleted or expired; If-None-Match: *), as CompareAndSwap.
func (c *Client) PutIfAbsent(ctx context.Context, key string, value []byte, opts ...Option) (Version, error) {
	return c.putIf(ctx, key, value, request{ifNoneMatch: "*"}, opts)
}

// DeleteIf deletes key only if its current version is old (If-Match), as
// CompareAndSwap, and returns the tombstone's version.
func (c *Client) DeleteIf(ctx context.Context, key string, old Version, opts ...Option) (Version, error) {
	if old == "" {
		return "", fmt.Errorf("ringkv: DeleteIf of %q without a version", key)
	}
	o := apply(opts)
	a, err := c.do(ctx, request{method: http.MethodDelete, path: kvPath(key, o.query(false)), ifMatch: `"` + string(old) + `"`})
	if err != nil {
		return "", err
	}
	return Version(a.header.Get("X-Ringkv-Version")), nil
}

func (c *Client) putIf(ctx context.Context, key string, value []byte, r request, opts []Option) (Version, error) {
	o := apply(opts)
	if value == nil {
		value = []byte{}
	}
	r.method, r.path, r.body = http.MethodPut, kvPath(key, o.query(true)), value
	a, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	return Version(a.header.Get("X-Ringkv-Version")), nil
}

// MaxScanLimit is the largest ScanRequest.Limit a node accepts.
const MaxScanLimit = 10000

// ScanRequest asks for one page of keys.
type ScanRequest struct {
	Prefix string // only keys with this prefix
	// After is the key the page starts after: "" for the first page, the
	// previous page's Next for the following ones.
	After       string
	Limit       int // keys in the page at most, 1 to MaxScanLimit (0: the node's default, 100)
	Consistency Consistency
}

// Item is one key of a scan.
type Item struct {
	Key     string
	Value   []byte
	Version Version
}

// ScanPage is one page of a scan, in token (hash) order across the cluster.
type ScanPage struct {
	Items []Item
	// Next is the After of the following page, "" when this page is the
	// last (keys are never empty).
	Next string
}

// Scan returns one page of the keys with q.Prefix. Keys and values are
// any bytes: they travel base64-encoded.
func (c *Client) Scan(ctx context.Context, q ScanRequest) (ScanPage, error) {
	v := url.Values{}
	v.Set("prefix", q.Prefix)
	v.Set("encoding", "base64")
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After != "" {
		v.Set("after", base64.StdEncoding.EncodeToString([]byte(q.After)))
	}
	if q.Consistency != "" {
		v.Set("consistency", string(q.Consistency))
	}
	a, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/kv?" + v.Encode()})
	if err != nil {
		return ScanPage{}, err
	}
	p, err := decodePage(a.body)
	if err != nil {
		return p, fmt.Errorf("malformed scan answer from %s: %w", a.addr, err)
	}
	return p, nil
}

func decodePage(body []byte) (ScanPage, error) {
	var raw struct {
		Items []struct {
			Key     []byte  `json:"key"` // base64, which encoding/json decodes
			Value   []byte  `json:"value"`
			Version Version `json:"version"`
		} `json:"items"`
		Next *[]byte `json:"next"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return ScanPage{}, err
	}
	p := ScanPage{Items: make([]Item, len(raw.Items))}
	for i, it := range raw.Items {
		if it.Value == nil {
			it.Value = []byte{}
		}
		p.Items[i] = Item{Key: string(it.Key), Value: it.Value, Version: it.Version}
	}
	if raw.Next != nil {
		p.Next = string(*raw.Next)
	}
	return p, nil
}

// ScanAll yields every key with q.Prefix after q.After, page by page
// (q.Limit keys a page), and then stops; an error is yielded once, last.
func (c *Client) ScanAll(ctx context.Context, q ScanRequest) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		for {
			p, err := c.Scan(ctx, q)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			if p.Next == "" || len(p.Items) == 0 {
				return
			}
			q.After = p.Next
		}
	}
}
