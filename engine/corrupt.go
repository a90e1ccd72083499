package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Corruption: Pebble checks every block it reads against its checksum and
// reports a mismatch through EventListener.DataCorruption, whose default
// (Logger.Fatalf) would end the process. The engine handles it instead:
// it records the damaged file and the token span of data it covers, counts
// the event and logs it (rate-limited). The read that met the damage
// fails with a *CorruptionError (ErrCorruption) naming the file, as does
// every later read that meets it (Pebble checks each block it reads, so
// reads of the file's other blocks are still right). In a cluster the
// peer layer then excises the span (ExciseCorrupt: the damaged file's
// data is dropped whole, with every other record of the span) and pulls
// it back from the other owners; from the excise until Repaired, every
// read of the span fails with ErrCorruption, since this replica lacks
// records it acknowledged. A single node has no one to pull from: it
// keeps the file, and only the reads that meet the damage fail.

// ErrCorruption is matched (errors.Is) by errors of reads that met damaged
// data, or keys of a span the engine holds out of service because a file
// covering it is damaged. The error is a *CorruptionError naming the file.
var ErrCorruption = errors.New("engine: corruption")

// Corruption states of a CorruptSpan.
const (
	// CorruptDamaged: the file is in the store; reads that meet the
	// damaged block fail.
	CorruptDamaged = "damaged"
	// CorruptExcised: the span was excised (the file's part of the store is
	// gone) and waits to be pulled back from other replicas; reads of it
	// still fail, since this replica's copy lacks the span's records.
	CorruptExcised = "excised"
	// CorruptRepaired: the span was pulled back from every other owner.
	CorruptRepaired = "repaired"
)

// CorruptSpan is one damaged file and the span of data it covers.
type CorruptSpan struct {
	// File is the file's name in the data directory (000123.sst); Path
	// the full path.
	File string `json:"file"`
	Path string `json:"path"`
	// Kind is "table" (an SSTable) or "blob" (a blob file).
	Kind string `json:"kind"`
	// Data says whether the file holds data records; if so, their tokens
	// lie in [Lo, Hi) (Hi == 0 meaning 2^64), the span held out of
	// service. Other names the other keyspaces it covers ("hints",
	// "metadata"), which cannot be repaired from other replicas.
	Data  bool     `json:"data"`
	Lo    uint64   `json:"lo"`
	Hi    uint64   `json:"hi"`
	Other []string `json:"other_keyspaces,omitempty"`
	// Smallest and Largest are the file's key bounds as Pebble reported
	// them (storage keys, %q-quoted).
	Smallest string `json:"smallest"`
	Largest  string `json:"largest"`
	// Error is Pebble's description of the first damage seen.
	Error string `json:"error"`
	// Unreadable: the file itself cannot be opened (its footer, metaindex
	// or properties are damaged), found when the store opened; its whole
	// data span is out of service from the start, not only the reads that
	// meet the damage.
	Unreadable bool `json:"unreadable,omitempty"`
	// State is CorruptDamaged, CorruptExcised or CorruptRepaired.
	State    string    `json:"state"`
	Detected time.Time `json:"detected"`
	// Events counts the corruption reports of the file (every failed read).
	Events  int64     `json:"events"`
	Changed time.Time `json:"changed"`

	// lo and hi are the file's storage-key bounds (both inclusive), nil
	// when Pebble named none.
	lo, hi []byte
}

// setBounds records the file's storage-key bounds [lo, hi] and the spans
// they cover.
func (s *CorruptSpan) setBounds(lo, hi []byte) {
	s.lo, s.hi = bytes.Clone(lo), bytes.Clone(hi)
	s.Smallest, s.Largest = fmt.Sprintf("%q", lo), fmt.Sprintf("%q", hi)
	s.Data, s.Lo, s.Hi, s.Other = keyBoundsSpan(lo, hi)
}

// exciseRange returns the storage-key span an excise of s removes: its
// data tokens, and the file's whole bounds when it also holds hints
// (which no replica gives back, and anti-entropy makes up for). ok is
// false when s holds metadata, or names no bounds but holds more than data.
func (s *CorruptSpan) exciseRange() (r pebble.KeyRange, ok bool) {
	if slices.Contains(s.Other, "metadata") {
		return r, false
	}
	if s.Data {
		r.Start, r.End = tokenSpan(s.Lo, s.Hi)
	}
	if slices.Contains(s.Other, "hints") {
		if s.hi == nil {
			return r, false
		}
		end := append(bytes.Clone(s.hi), 0)
		if !s.Data {
			r.Start = s.lo
		}
		if bytes.Compare(end, r.End) > 0 {
			r.End = end
		}
	}
	return r, len(r.Start) > 0 || len(r.End) > 0
}

// TokenSpan renders the data span as "[lo, hi)" in hex, hi 2^64 as such.
func (s CorruptSpan) TokenSpan() string {
	if !s.Data {
		return "no data tokens"
	}
	hi := fmt.Sprintf("%016x", s.Hi)
	if s.Hi == 0 {
		hi = "2^64"
	}
	return fmt.Sprintf("tokens [%016x, %s)", s.Lo, hi)
}

// covers reports whether token t is in s's data span.
func (s *CorruptSpan) covers(t uint64) bool {
	return s.Data && t >= s.Lo && (s.Hi == 0 || t < s.Hi)
}

// CorruptionError is the error of a read that met damaged data, or of a
// key whose span is out of service (see ErrCorruption).
type CorruptionError struct {
	Span CorruptSpan
	// Err is Pebble's error, when the read itself met the damage.
	Err error
}

func (e *CorruptionError) Error() string {
	msg := fmt.Sprintf("engine: corruption in file %s covering %s", e.Span.File, e.Span.TokenSpan())
	switch {
	case e.Span.State == CorruptExcised:
		msg += "; the span is being repaired from other replicas"
	case e.Span.Error != "":
		msg += ": " + e.Span.Error
	}
	return msg
}

// Is makes errors.Is(err, ErrCorruption) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorruption }

// Unwrap returns Pebble's error, if any.
func (e *CorruptionError) Unwrap() error { return e.Err }

// CorruptionStats is the corruption part of the LSM report.
type CorruptionStats struct {
	// Events counts every corruption Pebble reported since the engine
	// opened (ringkv_corruption_errors_total).
	Events int64 `json:"events"`
	// Spans lists the damaged files, newest first: those still out of
	// service and the last repaired ones.
	Spans []CorruptSpan `json:"spans"`
}

// corruptLogEvery bounds how often one file's corruption is logged again.
const corruptLogEvery = 30 * time.Second

// maxRepairedKept bounds the repaired spans kept for the report.
const maxRepairedKept = 16

// corruptTracker records what Pebble's DataCorruption reports.
type corruptTracker struct {
	log    *slog.Logger
	events atomic.Int64
	// out is the spans out of service (excised, not yet repaired), read by
	// every point read; nil when there are none.
	out    atomic.Pointer[[]CorruptSpan]
	notify chan struct{} // a new damaged file; capacity 1

	mu struct {
		sync.Mutex
		byPath   map[string]*CorruptSpan
		lastLog  map[string]time.Time
		repaired []CorruptSpan // newest last
	}
}

func newCorruptTracker(lg *slog.Logger) *corruptTracker {
	c := &corruptTracker{log: lg, notify: make(chan struct{}, 1)}
	c.mu.byPath = map[string]*CorruptSpan{}
	c.mu.lastLog = map[string]time.Time{}
	return c
}

// report is Pebble's EventListener.DataCorruption. It is called
// synchronously on read paths: it must not block (it takes one short lock).
func (c *corruptTracker) report(info pebble.DataCorruptionInfo) {
	c.events.Add(1)
	now := time.Now()
	c.mu.Lock()
	sp, known := c.mu.byPath[info.Path]
	if !known || sp.State == CorruptRepaired {
		s := spanOfCorruption(info, now)
		sp = &s
		c.mu.byPath[info.Path] = sp
	}
	sp.Events++
	events := sp.Events
	logIt := now.Sub(c.mu.lastLog[info.Path]) >= corruptLogEvery
	if logIt {
		c.mu.lastLog[info.Path] = now
	}
	s := *sp
	c.mu.Unlock()
	if logIt {
		c.log.Error("on-disk corruption: reads that meet the damaged block fail on this node",
			"file", s.File, "path", s.Path, "kind", s.Kind, "span", s.TokenSpan(), "other_keyspaces", s.Other,
			"smallest", s.Smallest, "largest", s.Largest, "events", events, "err", s.Error)
	}
	if !known {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// addUnreadable records a file found unreadable when the store opened,
// and holds its data span out of service.
func (c *corruptTracker) addUnreadable(sp CorruptSpan) {
	sp.Unreadable, sp.Events = true, 1
	c.events.Add(1)
	kept := sp // the tracker's own copy: reports change it under c.mu
	c.mu.Lock()
	c.mu.byPath[sp.Path] = &kept
	c.mu.lastLog[sp.Path] = sp.Detected
	c.publishLocked()
	c.mu.Unlock()
	c.log.Error("on-disk corruption: a table cannot be read; its span is out of service on this node until it is repaired",
		"file", sp.File, "path", sp.Path, "span", sp.TokenSpan(), "other_keyspaces", sp.Other,
		"smallest", sp.Smallest, "largest", sp.Largest, "err", sp.Error)
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// spanOfCorruption decodes Pebble's report into a CorruptSpan.
func spanOfCorruption(info pebble.DataCorruptionInfo, now time.Time) CorruptSpan {
	s := CorruptSpan{
		File: filepath.Base(info.Path), Path: info.Path, Kind: "table",
		State: CorruptDamaged, Detected: now, Changed: now,
	}
	if info.Details != nil {
		s.Error = info.Details.Error()
	}
	start, end := info.Bounds.Start, info.Bounds.End.Key
	if start == nil && end == nil {
		// Pebble names no bounds (blob files): assume the worst.
		s.Kind = "blob"
		s.Data, s.Lo, s.Hi = true, 0, 0
		s.Other = []string{"hints", "metadata"}
		return s
	}
	s.setBounds(start, end)
	return s
}

// keyBoundsSpan returns the token span [lo, hi) of the data keys in the
// storage-key bounds [start, end] (both inclusive: conservative), and the
// other keyspaces they reach into.
func keyBoundsSpan(start, end []byte) (data bool, lo, hi uint64, other []string) {
	lessThan := func(k []byte, space byte) bool { return len(k) == 0 || k[0] < space }
	if lessThan(start, spaceData+1) && !lessThan(end, spaceData) {
		data = true
		if !lessThan(start, spaceData) && len(start) >= dataPrefixLen {
			lo = dataKeyToken(start)
		}
		if len(end) >= dataPrefixLen && end[0] == spaceData {
			if t := dataKeyToken(end); t < math.MaxUint64 {
				hi = t + 1
			}
		}
	}
	if lessThan(start, spaceHint+1) && !lessThan(end, spaceHint) {
		other = append(other, "hints")
	}
	if lessThan(start, spaceMeta+1) && !lessThan(end, spaceMeta) {
		other = append(other, "metadata")
	}
	if lessThan(start, spacePaxos+1) && !lessThan(end, spacePaxos) {
		other = append(other, "paxos")
	}
	return data, lo, hi, other
}

// publishLocked republishes the spans out of service.
// REQUIRES: c.mu.
func (c *corruptTracker) publishLocked() {
	var out []CorruptSpan
	for _, sp := range c.mu.byPath {
		if (sp.State == CorruptExcised || sp.Unreadable && sp.State == CorruptDamaged) && sp.Data {
			out = append(out, *sp)
		}
	}
	if len(out) == 0 {
		c.out.Store(nil)
		return
	}
	c.out.Store(&out)
}

// check returns the error for a read of token t when t's span is out of
// service, else nil. It is on every point read: one atomic load when no
// file is damaged.
func (c *corruptTracker) check(t uint64) error {
	out := c.out.Load()
	if out == nil {
		return nil
	}
	for i := range *out {
		if sp := &(*out)[i]; sp.covers(t) {
			return &CorruptionError{Span: *sp}
		}
	}
	return nil
}

// list returns every recorded span, out of service first (newest first),
// then the repaired ones (newest first).
func (c *corruptTracker) list() []CorruptSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []CorruptSpan
	for _, sp := range c.mu.byPath {
		if sp.State != CorruptRepaired {
			out = append(out, *sp)
		}
	}
	slices.SortFunc(out, func(a, b CorruptSpan) int { return b.Detected.Compare(a.Detected) })
	for i := len(c.mu.repaired) - 1; i >= 0; i-- {
		out = append(out, c.mu.repaired[i])
	}
	return out
}

// setState moves the span of path to state; false if it is not recorded.
func (c *corruptTracker) setState(path, state string) (CorruptSpan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sp, ok := c.mu.byPath[path]
	if !ok {
		return CorruptSpan{}, false
	}
	sp.State, sp.Changed = state, time.Now()
	s := *sp
	if state == CorruptRepaired {
		delete(c.mu.byPath, path)
		delete(c.mu.lastLog, path)
		if len(c.mu.repaired) == maxRepairedKept {
			c.mu.repaired = slices.Delete(c.mu.repaired, 0, 1)
		}
		c.mu.repaired = append(c.mu.repaired, s)
	}
	c.publishLocked()
	return s, true
}

// Corruption returns the damaged files the engine knows of: those whose
// span is out of service (damaged, or excised and awaiting repair), newest
// first, then the last repaired ones. It is empty on a healthy store.
func (e *Engine) Corruption() []CorruptSpan { return e.corrupt.list() }

// CorruptionNotify returns a channel that receives a value when a file
// not seen damaged before is reported (at most one value is queued).
func (e *Engine) CorruptionNotify() <-chan struct{} { return e.corrupt.notify }

// ExciseCorrupt takes the data of a damaged span out of the store, for a
// node that will pull it back from other replicas: every record whose
// token is in the span, in every level and memtable, goes in one atomic
// step (Pebble's excise), and with it the damaged file's data, so
// compactions stop meeting the damage. The hints a file holds go with it
// (a hint is a redundant copy, never counted toward a write's quorum;
// anti-entropy makes up for it); a file that holds metadata is not
// excised (an error): no replica can give it back. Reads of the span keep
// failing with ErrCorruption until Repaired: this replica now lacks the
// span's records, acknowledged writes included, until it has pulled them
// back.
//
// A single node must not call it for a file holding data: no replica
// holds what it removes.
func (e *Engine) ExciseCorrupt(ctx context.Context, path string) (CorruptSpan, error) {
	if e.closed.Load() {
		return CorruptSpan{}, ErrClosed
	}
	var sp CorruptSpan
	e.corrupt.mu.Lock()
	p, ok := e.corrupt.mu.byPath[path]
	if ok {
		sp = *p
	}
	e.corrupt.mu.Unlock()
	if !ok || sp.State != CorruptDamaged {
		return sp, fmt.Errorf("cannot excise %s: no damaged file of that name", path)
	}
	r, ok := sp.exciseRange()
	if !ok {
		return sp, fmt.Errorf("cannot excise %s: it holds %v, which no replica can give back", sp.File, sp.Other)
	}
	err := e.db.Excise(ctx, r)
	e.invalidateRows()
	if err != nil {
		return sp, fmt.Errorf("cannot excise %s (%s): %w", sp.File, sp.TokenSpan(), err)
	}
	// An excise over a memtable holding keys of the span waits, queued
	// behind it, for its flush: flush now, so the file leaves the LSM (and
	// compactions stop meeting it) at once.
	if err := e.Flush(); err != nil {
		e.opts.Logger.Warn("cannot flush after the excise; the damaged file leaves the store at the next flush", "file", sp.File, "err", err)
	}
	if slices.Contains(sp.Other, "hints") {
		e.opts.Logger.Warn("the damaged file held hints: those are gone, and anti-entropy brings their replicas up to date", "file", sp.File)
		e.hints.mu.Lock()
		if err := e.countHints(); err != nil {
			e.opts.Logger.Error("cannot count the hints left", "err", err)
		}
		e.hints.mu.Unlock()
	}
	sp, _ = e.corrupt.setState(path, CorruptExcised)
	e.opts.Logger.Warn("excised the damaged file's span; it is pulled back from other replicas",
		"file", sp.File, "span", sp.TokenSpan(), "other_keyspaces", sp.Other)
	return sp, nil
}

// Repaired puts the span of the damaged file at path back in service: the
// caller has pulled it back from every other owner since it was excised.
func (e *Engine) Repaired(path string) {
	sp, ok := e.corrupt.setState(path, CorruptRepaired)
	if ok {
		e.opts.Logger.Info("damaged span repaired from other replicas", "file", sp.File, "span", sp.TokenSpan())
	}
}

// corruptionOf turns a Pebble error that reports damage into a
// *CorruptionError naming the file, and returns other errors as they are.
func (e *Engine) corruptionOf(err error) error {
	if err == nil || !pebble.IsCorruptionError(err) {
		return err
	}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		e.corrupt.mu.Lock()
		p, ok := e.corrupt.mu.byPath[info.Path]
		var sp CorruptSpan
		if ok {
			sp = *p
		} else {
			sp = spanOfCorruption(*info, time.Now())
		}
		e.corrupt.mu.Unlock()
		return &CorruptionError{Span: sp, Err: err}
	}
	return &CorruptionError{Span: CorruptSpan{File: "unknown", Error: err.Error()}, Err: err}
}
