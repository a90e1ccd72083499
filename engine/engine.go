package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// Engine is one node's durable store. It is safe for concurrent use.
type Engine struct {
	db      *pebble.DB
	opts    Options
	horizon atomic.Pointer[func() uint64] // SetGCHorizon
	tsBound atomic.Pointer[func() uint64] // SetTimestampBound
	popts   *pebble.Options
	stalls  *stallTracker
	corrupt *corruptTracker
	closed  atomic.Bool
	keyPool sync.Pool // *[]byte scratch for storage keys and records
	now     func() time.Time
	stop    chan struct{}
	wg      sync.WaitGroup
	// stripes order the writes of each key (see write.go).
	stripes [numStripes]stripe
	// ceiling is a durable upper bound on every timestamp in the store
	// (see write.go); ceilMu serializes raising it.
	ceiling atomic.Uint64
	ceilMu  sync.Mutex
	// rows is the row cache, nil when disabled.
	rows *rowCache
	// rewarm asks the warm loop for another pass (see rowwarm.go); nil
	// when the row cache is not warmed. warmAsked counts the passes asked
	// for, warmDone the last one finished, and rowsWarmed is how many
	// records the last pass cached.
	rewarm      chan struct{}
	rewarmDelay time.Duration
	warmAsked   atomic.Uint64
	warmDone    atomic.Uint64
	rowsWarmed  atomic.Int64
	// hints counts the hinted-handoff queue per target.
	hints hintCounts
	// disk keeps the free-space floor (disk.go).
	disk *diskGuard
	// every holds back log lines that repeat on every retry.
	every *logEvery
	// fatal is Pebble's fatal message, once it sent one (see OnFatal).
	fatal atomic.Pointer[string]
	// lastSlow is when Pebble last reported a slow disk (unix nanos).
	lastSlow atomic.Int64

	profiling       atomic.Bool  // a stall capture is running
	lastProfile     atomic.Int64 // unix nanos of the last stall capture
	stallCPUProfile time.Duration

	// testHook, when set, adjusts Pebble's options after the tuning is
	// applied, so tests can reach sizes the tuning rightly refuses.
	testHook func(*pebble.Options)
	// warmHook, when set, runs between reading a warm chunk and caching it.
	warmHook func()
	// warmEndHook, when set, runs after each warm pass has ended, so tests
	// wait for the pass itself rather than poll Warming.
	warmEndHook func()
}

// hooks are tests' ways into an engine being opened.
type hooks struct {
	pebble func(*pebble.Options) // see Engine.testHook
	warm   func()                // see Engine.warmHook
	// warmEnd: see Engine.warmEndHook.
	warmEnd func()
	// rewarmDelay replaces rewarmDelay when set.
	rewarmDelay time.Duration
	// usage replaces the disk guard's measure of the free space.
	usage func() (vfs.DiskUsage, error)
	// diskTicks, when set, replaces the disk guard's ticker: the loop
	// measures once per value, so tests drive it instead of waiting for a
	// period to pass.
	diskTicks <-chan time.Time
	// diskMeasured, when set, runs after each of the loop's measures.
	diskMeasured func()
}

// Open opens (creating if needed) the store in o.Dir.
func Open(o Options) (*Engine, error) { return open(o, hooks{}) }

func open(o Options, h hooks) (*Engine, error) {
	if err := o.EnsureDefaults(); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{opts: o, now: o.GC.Now, stop: make(chan struct{}), testHook: h.pebble, warmHook: h.warm, warmEndHook: h.warmEnd, rows: newRowCache(o.RowCacheSize)}
	if e.now == nil {
		e.now = time.Now
	}
	e.keyPool.New = func() any { b := make([]byte, 0, 256); return &b }
	onStall := func(st Stall) {
		e.maybeProfileStall(st)
		if o.OnStall != nil {
			o.OnStall(st)
		}
	}
	e.every = newLogEvery(logInterval)
	e.stalls = newStallTracker(o.Logger, o.Tuning, onStall, e)
	e.disk = newDiskGuard(o.FS, o.Dir, o.MinFreeSpace, o.BallastSize, o.Logger, e.every)
	if h.usage != nil {
		e.disk.usage = h.usage
	}
	e.corrupt = newCorruptTracker(o.Logger)

	po, err := e.pebbleOptions()
	if err != nil {
		return nil, err
	}
	db, damaged, err := e.openPebble(po, o.KeepDamaged)
	if err != nil {
		return nil, err
	}
	e.db = db
	e.popts = po
	for _, sp := range damaged {
		e.corrupt.addUnreadable(sp)
	}
	err = e.loadCeiling()
	if err == nil {
		err = e.countHints()
		if err != nil && len(damaged) > 0 && pebble.IsCorruptionError(err) {
			// A damaged hints table: the counts are what could be read,
			// and are taken again once it is excised.
			err = nil
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot open engine at %q: %w", o.Dir, err)
	}
	e.startLoops(h)
	return e, nil
}

// formatMajorVersion is the on-disk format the engine opens a store at: a
// store at an older one is ratcheted up to it on open (Pebble cannot go
// back down, so a binary with an older Pebble may refuse it).
const formatMajorVersion = pebble.FormatNewest

// FormatMajorVersion is the number of the Pebble format major version the
// engine writes, for 'ringkv version' and release notes: a downgrade is
// possible only to a binary whose engine knows this format.
const FormatMajorVersion = uint64(formatMajorVersion)

// pebbleOptions returns the Pebble options of e's store: the tuning, the
// merge operator, and the engine's listeners and hooks.
func (e *Engine) pebbleOptions() (*pebble.Options, error) {
	o := &e.opts
	po := &pebble.Options{
		// Pebble's writes that meet ENOSPC free the ballast and are
		// retried once (see disk.go).
		FS:                 vfs.OnDiskFull(o.FS, e.disk.onENOSPC),
		Merger:             memtable.NewMerger(),
		FormatMajorVersion: formatMajorVersion,
		Logger:             pebbleLogger{log: o.Logger, every: e.every, fatal: e.onFatal, fs: o.FS},
	}
	o.Tuning.Apply(po)
	// Flushes and compactions cut their output at each keyspace's edge,
	// so a damaged data table never takes hints or metadata with it.
	po.Experimental.SpanPolicyFunc = keyspacePolicy
	el := e.stalls.listener()
	// Damage found in a file is handled, never fatal (Pebble's default).
	el.DataCorruption = e.corrupt.report
	po.EventListener = &el
	// Dropped ranges (rebalancing) and GC compactions should give disk back
	// promptly rather than wait for the memtable to fill.
	po.FlushDelayDeleteRange = 10 * time.Second
	if e.testHook != nil {
		e.testHook(po)
	}
	po.EnsureDefaults()
	if err := po.Validate(); err != nil {
		return nil, fmt.Errorf("cannot open engine at %q: %w", o.Dir, err)
	}
	return po, nil
}

// startLoops starts the engine's background work: the disk guard, GC and
// the row cache's warm.
func (e *Engine) startLoops(h hooks) {
	o := &e.opts
	e.disk.refresh()
	e.wg.Go(func() { e.disk.loop(diskRefresh, h.diskTicks, h.diskMeasured, e.stop) })
	if o.GCInterval > 0 {
		e.wg.Go(func() { e.gcLoop(o.GCInterval, e.stop) })
	}
	if e.rows != nil && !o.SkipRowCacheWarm {
		e.rewarm = make(chan struct{}, 1)
		e.rewarmDelay = rewarmDelay
		if h.rewarmDelay > 0 {
			e.rewarmDelay = h.rewarmDelay
		}
		e.warmAsked.Store(1)
		e.wg.Go(e.warmLoop)
	}
}

// Dir returns the engine's directory (Options.Dir).
func (e *Engine) Dir() string { return e.opts.Dir }

// Close flushes nothing extra (the WAL already holds every acknowledged
// write) and closes Pebble. Calls after Close return ErrClosed.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(e.stop)
	e.wg.Wait()
	if e.rows != nil {
		e.rows.c.Reset() // hand its chunks back for reuse
	}
	if err := e.failure(); err != nil {
		// Pebble's commit pipeline may be stuck: closing it could hang.
		return err
	}
	return e.db.Close()
}

// Flush writes the memtable to an SSTable, so a restart replays no WAL.
// On a full disk it writes nothing and returns the *DiskFullError: a
// flush that cannot find room would be retried for as long as it waited,
// and the WAL holds every write anyway.
func (e *Engine) Flush() error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := e.failure(); err != nil {
		return err
	}
	if d := e.disk.state(); d != nil {
		return d
	}
	return e.db.Flush()
}

// ErrFailed is matched (errors.Is) by the errors of every write after
// Pebble reported a fatal error (see Options.OnFatal).
var ErrFailed = errors.New("engine: storage failed")

// failure returns the error that refuses every write once Pebble failed,
// or nil.
func (e *Engine) failure() error {
	if m := e.fatal.Load(); m != nil {
		return fmt.Errorf("%w: pebble cannot continue: %s", ErrFailed, *m)
	}
	return nil
}

// onFatal is the pebbleLogger's Fatalf: see Options.OnFatal.
func (e *Engine) onFatal(msg string) {
	e.fatal.CompareAndSwap(nil, &msg)
	e.opts.Logger.Error("pebble cannot continue: "+msg, "component", "pebble")
	e.opts.OnFatal(msg)
	runtime.Goexit()
}

// admit returns nil if a write of about n bytes may go ahead, else the
// error that refuses it: the engine is closed or failed, or the disk is
// below the free-space floor (a *DiskFullError).
func (e *Engine) admit(n int) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if e.fatal.Load() != nil {
		return e.failure()
	}
	if err := e.disk.admit(n); err != nil {
		return err
	}
	return nil
}

// AdmitBytes reports whether n more bytes may be written to the data
// directory's filesystem outside the write path (a range being staged
// for ingest): nil, or the *DiskFullError that refuses them.
func (e *Engine) AdmitBytes(n int) error { return e.admit(n) }

// diskFull turns a write error that is ENOSPC into the *DiskFullError
// that refuses the writes after it.
func (e *Engine) diskFull(err error) error {
	if err == nil || !isENOSPC(err) {
		return err
	}
	e.disk.onENOSPC()
	if d := e.disk.state(); d != nil {
		return fmt.Errorf("%w (%v)", d, err)
	}
	return err
}

// Degraded is one reason the node serves less than it should: it still
// answers, but refuses some requests. Reason is short and stable ("disk
// full"); Detail says what to do, for people.
type Degraded struct {
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
	// RefusesWrites: because of it the node takes no writes (/healthz
	// then answers 503, so load balancers route writes elsewhere).
	RefusesWrites bool `json:"refuses_writes,omitempty"`
}

// Health returns the engine's reasons to be degraded; none when healthy.
// It is cheap (no I/O): load balancers may poll it.
func (e *Engine) Health() []Degraded {
	var out []Degraded
	if err := e.failure(); err != nil {
		out = append(out, Degraded{Reason: "storage failed", Detail: err.Error(), RefusesWrites: true})
	}
	if d := e.disk.state(); d != nil {
		out = append(out, Degraded{Reason: "disk full", Detail: d.Error(), RefusesWrites: true})
	}
	return out
}

// WriteMayBlock reports whether a write could now wait on Pebble for long:
// a write stall is under way, or the disk was slow in the last 10s.
// Callers that must answer in time run such writes apart (peer does).
func (e *Engine) WriteMayBlock() bool {
	if e.stalls.stalled.Load() {
		return true
	}
	t := e.lastSlow.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < 10*time.Second
}

func (e *Engine) scratch() *[]byte { return e.keyPool.Get().(*[]byte) }
func (e *Engine) release(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		e.keyPool.Put(b)
	}
}

// Get reads the newest record of key. It returns dst with the record's
// value appended, and the record, whose Value is that appended part: the
// result never aliases engine memory. Tombstones and expired records are
// returned as they are; ErrNotFound means no record at all.
func (e *Engine) Get(dst, key []byte) ([]byte, memtable.Record, error) {
	return e.get(e.db, dst, key, appendValue)
}

// GetStored reads the newest record of key as it is stored: it returns dst
// with the encoded record appended (tombstones and expired records
// included), and the record decoded from those bytes, its Value aliasing
// them. A coordinator that passes records on to others (a replica's read
// answer, its own copy in a cluster read) then never re-encodes one, and
// the record is decoded once. ErrNotFound means no record at all.
func (e *Engine) GetStored(dst, key []byte) ([]byte, memtable.Record, error) {
	return e.get(e.db, dst, key, appendStored)
}

// ScanFunc receives one record during a scan. key and r.Value alias engine
// memory valid only until it returns. Returning false stops the scan.
type ScanFunc func(key []byte, r memtable.Record) (more bool, err error)

// Scan visits every data record in token order, starting just after the
// user key after (from the beginning when after is nil), including
// tombstones and expired records.
func (e *Engine) Scan(ctx context.Context, after []byte, fn ScanFunc) error {
	lo, hi := spanOf(spaceData)
	if after != nil {
		lo = appendDataKey(nil, after)
		lo = append(lo, 0) // the smallest key greater than after's
	}
	return e.scan(ctx, e.db, lo, hi, fn)
}

// ScanTokens visits the data records whose token t is in [start, end), in
// token order; end == 0 means through the largest token.
func (e *Engine) ScanTokens(ctx context.Context, start, end uint64, fn ScanFunc) error {
	lo, hi := tokenSpan(start, end)
	return e.scan(ctx, e.db, lo, hi, fn)
}

// tokenSpan returns the storage-key span of tokens [start, end), end == 0
// meaning through the largest token.
func tokenSpan(start, end uint64) (lo, hi []byte) {
	lo = dataKeyAt(start)
	_, hi = spanOf(spaceData)
	if end != 0 {
		hi = dataKeyAt(end)
	}
	return lo, hi
}

func (e *Engine) scan(ctx context.Context, r pebble.Reader, lo, hi []byte, fn ScanFunc) error {
	if e.closed.Load() {
		return ErrClosed
	}
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return e.corruptionOf(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				it.Close()
				return err
			}
		}
		k, ok := userKey(it.Key())
		if !ok {
			it.Close()
			return fmt.Errorf("cannot scan: malformed storage key %x", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return e.corruptionOf(err)
		}
		rec, err := memtable.Decode(v)
		if err != nil {
			it.Close()
			return fmt.Errorf("cannot decode record of %q: %w", k, err)
		}
		more, err := fn(k, rec)
		if err != nil || !more {
			it.Close()
			return err
		}
	}
	return e.corruptionOf(it.Close())
}

// GetMeta reads a metadata value, or ErrNotFound.
func (e *Engine) GetMeta(name string) ([]byte, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := e.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// SetMeta durably stores a metadata value.
func (e *Engine) SetMeta(name string, value []byte) error {
	if e.closed.Load() {
		return ErrClosed
	}
	return e.db.Set(metaKey(name), value, pebble.Sync)
}

// Compact collects garbage (see CollectGarbage), then compacts the whole
// store into the bottom level, which drops overwritten versions and
// reclaims the space of deleted keys.
func (e *Engine) Compact(ctx context.Context) error {
	if _, err := e.CollectGarbage(ctx); err != nil {
		return err
	}
	lo, _ := spanOf(spaceData)
	_, hi := spanOf(spacePaxos)
	return e.compactSpan(ctx, lo, hi)
}
