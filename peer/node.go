package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// MaxKeySize is the longest key ringkv stores.
const MaxKeySize = 4096

// ErrInvalidKey is matched by errors for keys that are empty or longer than MaxKeySize.
var ErrInvalidKey = errors.New("peer: invalid key")

// Config configures a Node. Every field documents its default.
type Config struct {
	// NodeID is this node's stable identity; required.
	NodeID string
	// HTTPAddr is the address clients and peers reach this node at.
	HTTPAddr string
	// Engine is the local store; required.
	Engine *engine.Engine
	// Clock stamps writes. The default is a Clock on time.Now.
	Clock *memtable.Clock
	// Sync makes a write wait for its WAL fsync before it is acknowledged.
	// The zero value is false; ringkv serve sets it from --sync (default true).
	Sync bool
	// RequestTimeout bounds a request's work: a scan, or (in a cluster) the
	// wait for replicas. The default value is 5s.
	RequestTimeout time.Duration
	// Now reads wall time for TTLs and expiry. The default is time.Now.
	Now func() time.Time
	// Logger is the node's logger. The default is slog.Default().
	Logger *slog.Logger
}

// Node coordinates client requests for the keys of a cluster. It is safe
// for concurrent use.
type Node struct {
	cfg Config
	tag uint64
}

// NewNode returns the coordinator for cfg.
func NewNode(cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("peer: node id is required")
	}
	if cfg.Engine == nil {
		return nil, errors.New("peer: engine is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = memtable.NewClock(cfg.Now)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	// Write above everything already stored, so writes take the engine's
	// fast path at once after a restart. A stored bound far ahead of the
	// wall clock (the clock stepped back) is refused; writes then stay
	// correct through the merge operator until wall time catches up.
	if err := cfg.Clock.Update(cfg.Engine.MaxTimestamp()); err != nil {
		cfg.Logger.Warn("stored timestamps are ahead of the wall clock", "err", err)
	}
	return &Node{cfg: cfg, tag: memtable.NodeTag(cfg.NodeID)}, nil
}

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeySize {
		return fmt.Errorf("%w: length %d, want 1 to %d bytes", ErrInvalidKey, len(key), MaxKeySize)
	}
	return nil
}

// Get appends the newest live value of key to dst. Tombstones and expired
// records read as ErrNotFound.
func (n *Node) Get(ctx context.Context, dst, key []byte, c Consistency) ([]byte, Version, error) {
	if err := checkKey(key); err != nil {
		return dst, Version{}, err
	}
	orig := len(dst)
	out, rec, err := n.cfg.Engine.Get(dst, key)
	if err != nil {
		return dst, Version{}, err
	}
	// Read the clock only for records that can expire.
	if rec.Tombstone || (rec.ExpiresAt != 0 && rec.Expired(n.cfg.Now().UnixMilli())) {
		return out[:orig], Version{}, ErrNotFound
	}
	return out, rec.Version, nil
}

// Put writes value under key, stamped with a new timestamp.
func (n *Node) Put(ctx context.Context, key, value []byte, o WriteOptions) (Version, error) {
	if err := checkKey(key); err != nil {
		return Version{}, err
	}
	rec := memtable.Record{Version: Version{TS: n.cfg.Clock.Now(), Node: n.tag}, Value: value}
	if o.TTL > 0 {
		rec.ExpiresAt = n.cfg.Now().Add(o.TTL).UnixMilli()
	}
	if err := n.cfg.Engine.Write(key, &rec, n.cfg.Sync); err != nil {
		return Version{}, err
	}
	return rec.Version, nil
}

// Delete writes a tombstone for key, so older writes that arrive later
// cannot bring it back.
func (n *Node) Delete(ctx context.Context, key []byte, o WriteOptions) (Version, error) {
	if err := checkKey(key); err != nil {
		return Version{}, err
	}
	rec := memtable.Record{Version: Version{TS: n.cfg.Clock.Now(), Node: n.tag}, Tombstone: true}
	if err := n.cfg.Engine.Write(key, &rec, n.cfg.Sync); err != nil {
		return Version{}, err
	}
	return rec.Version, nil
}

// MaxScanLimit is the largest page a scan returns.
const MaxScanLimit = 10000

// Scan returns up to q.Limit live keys with prefix q.Prefix in token order,
// after q.After. Keys are hash-ordered, so a scan reads every key after
// q.After to find the matches: a sparse prefix costs a full pass.
func (n *Node) Scan(ctx context.Context, q ScanQuery) (ScanPage, error) {
	if q.Limit <= 0 || q.Limit > MaxScanLimit {
		return ScanPage{}, fmt.Errorf("peer: scan limit %d out of range 1..%d", q.Limit, MaxScanLimit)
	}
	var after []byte
	if len(q.After) > 0 {
		after = q.After
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	now := n.cfg.Now().UnixMilli()
	var page ScanPage
	more := false
	err := n.cfg.Engine.Scan(ctx, after, func(key []byte, r memtable.Record) (bool, error) {
		if !bytes.HasPrefix(key, q.Prefix) || !r.Live(now) {
			return true, nil
		}
		if len(page.Items) == q.Limit {
			more = true
			return false, nil
		}
		page.Items = append(page.Items, KV{Key: bytes.Clone(key), Value: bytes.Clone(r.Value), Version: r.Version})
		return true, nil
	})
	if err != nil {
		return ScanPage{}, err
	}
	if more {
		page.Next = page.Items[len(page.Items)-1].Key
	}
	return page, nil
}

// LSM returns the local engine's LSM report (GET /v1/lsm).
func (n *Node) LSM() any { return n.cfg.Engine.LSM() }

// Compact runs a manual compaction of the local engine.
func (n *Node) Compact(ctx context.Context) error { return n.cfg.Engine.Compact(ctx) }

// Members returns the HTTP addresses of the cluster's members.
func (n *Node) Members() []string { return []string{n.cfg.HTTPAddr} }
