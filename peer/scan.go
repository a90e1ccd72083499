package peer

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// clusterScan scatters q to every member of the ring, merges their pages in
// token order, keeps the newest record of each key (replicas repeat keys)
// and drops deleted and expired ones. It answers as long as every key still
// has enough live owners for q's consistency: at most N - needed members
// may fail to answer.
func (c *coordinator) clusterScan(ctx context.Context, v *View, q ScanQuery) (ScanPage, error) {
	nodes := v.Ring.Nodes()
	replicas := v.Ring.Replicas()
	need := q.Consistency.Needed(replicas)
	allowed := replicas - need
	local := LocalScan{Prefix: q.Prefix, After: q.After, Limit: q.Limit, MaxBytes: q.MaxBytes}

	type answer struct {
		page LocalPage
		err  error
	}
	answers := make(chan answer, len(nodes))
	for _, id := range nodes {
		if id == c.cfg.NodeID {
			continue
		}
		mem, ok := v.reachable(id)
		if !ok || c.cfg.Transport == nil {
			answers <- answer{err: errDown}
			continue
		}
		go func() {
			p, err := c.cfg.Transport.Scan(ctx, mem.HTTPAddr, local)
			answers <- answer{page: p, err: err}
		}()
	}
	if v.Ring.Has(c.cfg.NodeID) {
		p, err := c.ScanLocal(ctx, local)
		answers <- answer{page: p, err: err}
	}
	var pages []LocalPage
	failed := 0
	for range len(nodes) {
		select {
		case a := <-answers:
			if a.err != nil {
				c.cfg.Logger.Debug("scan: a member did not answer", "err", a.err)
				failed++
				continue
			}
			pages = append(pages, a.page)
		case <-ctx.Done():
			return ScanPage{}, &UnavailableError{Op: "scan", Needed: len(nodes) - allowed, Answered: len(pages), TimedOut: true}
		}
	}
	if failed > allowed {
		return ScanPage{}, &UnavailableError{Op: "scan", Needed: len(nodes) - allowed, Answered: len(pages)}
	}
	return mergePages(pages, q.Limit, maxScanBytes(q.MaxBytes), c.cfg.Now().UnixMilli()), nil
}

// Scan is Node.Scan.
func (c *coordinator) Scan(ctx context.Context, q ScanQuery) (ScanPage, error) {
	if q.Limit <= 0 || q.Limit > MaxScanLimit {
		return ScanPage{}, fmt.Errorf("peer: scan limit %d out of range 1..%d", q.Limit, MaxScanLimit)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if v := c.view.Load(); !c.solo(v) {
		return c.clusterScan(ctx, v, q)
	}
	now := c.cfg.Now().UnixMilli()
	var page ScanPage
	more := false
	budget := maxScanBytes(q.MaxBytes)
	err := c.scanLocal(ctx, q.Prefix, q.After, func(key []byte, r memtable.Record) bool {
		if !r.Live(now) {
			return true
		}
		if len(page.Items) == q.Limit || budget <= 0 {
			more = true
			return false
		}
		budget -= len(key) + len(r.Value)
		page.Items = append(page.Items, KV{Key: bytes.Clone(key), Value: bytes.Clone(r.Value), Version: Version(r.Version)})
		return true
	})
	if err != nil {
		return ScanPage{}, err
	}
	if more {
		page.Next = page.Items[len(page.Items)-1].Key
	}
	return page, nil
}

// scanLocal visits this node's records with prefix after the key after, in
// token order, tombstones and expired records included.
func (c *coordinator) scanLocal(ctx context.Context, prefix, after []byte, fn func([]byte, memtable.Record) bool) error {
	if len(after) == 0 {
		after = nil
	}
	return c.cfg.Engine.Scan(ctx, after, func(key []byte, r memtable.Record) (bool, error) {
		if !bytes.HasPrefix(key, prefix) {
			return true, nil
		}
		return fn(key, r), nil
	})
}

// ScanLocal is Replica.ScanLocal.
func (c *coordinator) ScanLocal(ctx context.Context, q LocalScan) (LocalPage, error) {
	if q.Limit <= 0 || q.Limit > MaxScanLimit {
		return LocalPage{}, fmt.Errorf("peer: scan limit %d out of range 1..%d", q.Limit, MaxScanLimit)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var p LocalPage
	budget := maxScanBytes(q.MaxBytes)
	err := c.scanLocal(ctx, q.Prefix, q.After, func(key []byte, r memtable.Record) bool {
		if len(p.Items) == q.Limit || budget <= 0 {
			p.More = true
			return false
		}
		buf := append([]byte(nil), key...)
		buf = r.Append(buf)
		budget -= len(buf)
		p.Items = append(p.Items, Mutation{Key: buf[:len(key):len(key)], Record: buf[len(key):]})
		return true
	})
	return p, err
}

// scanItem is one record in a merge, with its token for ordering.
type scanItem struct {
	tok uint64
	Mutation
}

func compareItems(a, b scanItem) int {
	if c := cmp.Compare(a.tok, b.tok); c != 0 {
		return c
	}
	return bytes.Compare(a.Key, b.Key)
}

// mergePages merges members' pages into one page of at most limit live
// keys, which ends once its keys and values reach maxBytes. A member that
// had more records than it sent bounds the merge: past its last key,
// another member's records may not be the whole story, so the page ends
// there and Next resumes from it.
func mergePages(pages []LocalPage, limit, maxBytes int, nowMillis int64) ScanPage {
	var items []scanItem
	var bound *scanItem
	for _, p := range pages {
		for _, m := range p.Items {
			items = append(items, scanItem{tok: engine.Token(m.Key), Mutation: m})
		}
		if p.More && len(p.Items) > 0 {
			last := scanItem{tok: engine.Token(p.Items[len(p.Items)-1].Key), Mutation: p.Items[len(p.Items)-1]}
			if bound == nil || compareItems(last, *bound) < 0 {
				bound = &last
			}
		}
	}
	slices.SortFunc(items, compareItems)
	var page ScanPage
	budget := maxBytes
	for i := 0; i < len(items); {
		j := i + 1
		newest := items[i]
		for ; j < len(items) && compareItems(items[j], items[i]) == 0; j++ {
			if newer, err := memtable.Newer(items[j].Record, newest.Record); err == nil && newer {
				newest = items[j]
			}
		}
		i = j
		if bound != nil && compareItems(newest, *bound) > 0 {
			break
		}
		rec, err := memtable.Decode(newest.Record)
		if err != nil || !rec.Live(nowMillis) {
			continue
		}
		if len(page.Items) == limit || budget <= 0 {
			page.Next = page.Items[len(page.Items)-1].Key
			return page
		}
		budget -= len(newest.Key) + len(rec.Value)
		page.Items = append(page.Items, KV{Key: newest.Key, Value: rec.Value, Version: Version(rec.Version)})
	}
	if bound != nil {
		page.Next = bound.Key
	}
	return page
}
