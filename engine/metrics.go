package engine

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ringkv/ringkv/compaction"
)

// LevelReport is one LSM level's shape and traffic.
type LevelReport struct {
	Level        int     `json:"level"`
	Sublevels    int32   `json:"sublevels"`
	Files        int64   `json:"files"`
	Bytes        int64   `json:"bytes"`
	Score        float64 `json:"score"`
	BytesIn      uint64  `json:"bytes_in"`
	BytesRead    uint64  `json:"bytes_read"`
	BytesFlushed uint64  `json:"bytes_flushed"`
	BytesCompact uint64  `json:"bytes_compacted"`
	BytesIngest  uint64  `json:"bytes_ingested"`
	WriteAmp     float64 `json:"write_amp"`
}

// LSMReport is the engine's state as served at GET /v1/lsm.
type LSMReport struct {
	Profile         compaction.Profile `json:"profile"`
	Knobs           []compaction.Knob  `json:"knobs"`
	Levels          []LevelReport      `json:"levels"`
	WriteAmp        float64            `json:"write_amp"`
	ReadAmp         int                `json:"read_amp"`
	L0Sublevels     int32              `json:"l0_sublevels"`
	CompactionDebt  uint64             `json:"compaction_debt_bytes"`
	Compactions     int64              `json:"compactions"`
	CompactionsNow  int64              `json:"compactions_in_progress"`
	Flushes         int64              `json:"flushes"`
	MemTableBytes   uint64             `json:"memtable_bytes"`
	MemTableCount   int64              `json:"memtable_count"`
	BlockCacheBytes int64              `json:"block_cache_bytes"`
	BlockCacheHits  int64              `json:"block_cache_hits"`
	BlockCacheMiss  int64              `json:"block_cache_misses"`
	WALBytesWritten uint64             `json:"wal_bytes_written"`
	DiskUsage       uint64             `json:"disk_usage_bytes"`
	Tombstones      uint64             `json:"pebble_tombstones"`
	RowCache        RowCacheStats      `json:"row_cache"`
	Stalls          StallStats         `json:"stalls"`
	BackgroundErrs  int64              `json:"background_errors"`
	Corruption      CorruptionStats    `json:"corruption"`
	Uptime          time.Duration      `json:"uptime_ns"`
	// PebbleOptions is the OPTIONS text Pebble was opened with: every
	// setting actually in force, defaults included.
	PebbleOptions string `json:"pebble_options"`
}

// LSM returns a snapshot of the LSM's shape, traffic and stalls.
func (e *Engine) LSM() LSMReport {
	m := e.db.Metrics()
	r := LSMReport{
		Profile:         e.opts.Tuning.Profile,
		Knobs:           e.opts.Tuning.Knobs(),
		ReadAmp:         m.ReadAmp(),
		L0Sublevels:     m.Levels[0].Sublevels,
		CompactionDebt:  m.Compact.EstimatedDebt,
		Compactions:     m.Compact.Count,
		CompactionsNow:  m.Compact.NumInProgress,
		MemTableBytes:   m.MemTable.Size,
		MemTableCount:   m.MemTable.Count,
		BlockCacheBytes: m.BlockCache.Size,
		BlockCacheHits:  m.BlockCache.Hits,
		BlockCacheMiss:  m.BlockCache.Misses,
		WALBytesWritten: m.WAL.BytesWritten,
		DiskUsage:       m.DiskSpaceUsage(),
		Tombstones:      m.Keys.TombstoneCount,
		Uptime:          m.Uptime,
		PebbleOptions:   e.popts.String(),
	}
	total := m.Total()
	r.WriteAmp = total.WriteAmp()
	for i := range m.Levels {
		l := &m.Levels[i]
		r.Levels = append(r.Levels, LevelReport{
			Level: i, Sublevels: l.Sublevels, Files: l.TablesCount, Bytes: l.TablesSize,
			Score: l.Score, BytesIn: l.TableBytesIn, BytesRead: l.TableBytesRead,
			BytesFlushed: l.TableBytesFlushed, BytesCompact: l.TableBytesCompacted,
			BytesIngest: l.TableBytesIngested, WriteAmp: l.WriteAmp(),
		})
	}
	r.RowCache = e.rowCacheStats()
	r.Stalls, r.BackgroundErrs = e.stalls.snapshot()
	r.Flushes = m.Flush.Count
	r.Corruption = CorruptionStats{Events: e.corrupt.events.Load(), Spans: e.corrupt.list()}
	return r
}

// Collector returns a Prometheus collector of the LSM's metrics, named
// ringkv_pebble_*. Each scrape reads Pebble's metrics once.
func (e *Engine) Collector() prometheus.Collector { return &collector{e: e} }

type collector struct{ e *Engine }

var (
	lvl             = []string{"level"}
	dLevelFiles     = prometheus.NewDesc("ringkv_pebble_level_files", "SSTables per LSM level.", lvl, nil)
	dLevelBytes     = prometheus.NewDesc("ringkv_pebble_level_bytes", "Bytes of SSTables per LSM level.", lvl, nil)
	dLevelScore     = prometheus.NewDesc("ringkv_pebble_level_score", "Compaction score per LSM level (>1 means compaction is due).", lvl, nil)
	dLevelCompacted = prometheus.NewDesc("ringkv_pebble_level_compacted_bytes_total", "Bytes written by compactions into each level.", lvl, nil)
	dLevelFlushed   = prometheus.NewDesc("ringkv_pebble_level_flushed_bytes_total", "Bytes written by flushes into each level.", lvl, nil)
	dL0Sublevels    = prometheus.NewDesc("ringkv_pebble_l0_sublevels", "L0 sublevels: the read amplification of L0, and what stops writes when too high.", nil, nil)
	dL0Stop         = prometheus.NewDesc("ringkv_pebble_l0_stop_writes_threshold", "L0 read amplification at which Pebble stops writes (--l0-stop-writes-threshold or the profile's), for alerts on ringkv_pebble_l0_sublevels.", nil, nil)
	dCompactions    = prometheus.NewDesc("ringkv_pebble_compactions_total", "Compactions completed.", nil, nil)
	dCompactionsNow = prometheus.NewDesc("ringkv_pebble_compactions_in_progress", "Compactions running now.", nil, nil)
	dDebt           = prometheus.NewDesc("ringkv_pebble_compaction_debt_bytes", "Estimated bytes compactions must still write to settle the LSM.", nil, nil)
	dFlushes        = prometheus.NewDesc("ringkv_pebble_flushes_total", "Memtable flushes completed.", nil, nil)
	dStalls         = prometheus.NewDesc("ringkv_pebble_write_stalls_total", "Write stalls begun, by reason.", []string{"reason"}, nil)
	dStallSeconds   = prometheus.NewDesc("ringkv_pebble_write_stall_seconds_total", "Time writes spent stalled, by reason.", []string{"reason"}, nil)
	dWriteAmp       = prometheus.NewDesc("ringkv_pebble_write_amplification", "Bytes written to disk by flushes and compactions per byte written to the WAL.", nil, nil)
	dReadAmp        = prometheus.NewDesc("ringkv_pebble_read_amplification", "L0 sublevels plus non-empty lower levels.", nil, nil)
	dMemBytes       = prometheus.NewDesc("ringkv_pebble_memtable_bytes", "Bytes held by memtables.", nil, nil)
	dMemCount       = prometheus.NewDesc("ringkv_pebble_memtables", "Memtables, the one being written and those queued to flush.", nil, nil)
	dCacheBytes     = prometheus.NewDesc("ringkv_pebble_block_cache_bytes", "Bytes in the block cache.", nil, nil)
	dCacheHits      = prometheus.NewDesc("ringkv_pebble_block_cache_hits_total", "Block cache hits.", nil, nil)
	dCacheMisses    = prometheus.NewDesc("ringkv_pebble_block_cache_misses_total", "Block cache misses.", nil, nil)
	dWALBytes       = prometheus.NewDesc("ringkv_pebble_wal_bytes_written_total", "Bytes written to the WAL.", nil, nil)
	dDiskBytes      = prometheus.NewDesc("ringkv_pebble_disk_usage_bytes", "Bytes of disk the store uses (tables, WAL, manifest).", nil, nil)
	dTombstones     = prometheus.NewDesc("ringkv_pebble_tombstones", "Pebble point and range tombstones in tables (ringkv deletes are records, counted as keys).", nil, nil)
	dBGErrors       = prometheus.NewDesc("ringkv_pebble_background_errors_total", "Errors in flushes and compactions.", nil, nil)
	dCorruption     = prometheus.NewDesc("ringkv_corruption_errors_total", "Damaged blocks or files Pebble reported (each failed read counts); GET /v1/lsm names the files.", nil, nil)
	dCorruptSpans   = prometheus.NewDesc("ringkv_corrupt_spans", "Damaged files whose token span is out of service (reads go to other replicas) until repaired.", nil, nil)
	dRowBytes       = prometheus.NewDesc("ringkv_row_cache_bytes", "Bytes held by the row cache.", nil, nil)
	dRowHits        = prometheus.NewDesc("ringkv_row_cache_hits_total", "Point reads answered by the row cache.", nil, nil)
	dRowMisses      = prometheus.NewDesc("ringkv_row_cache_misses_total", "Point reads that missed the row cache and read the LSM.", nil, nil)
	dRowWarming     = prometheus.NewDesc("ringkv_row_cache_warming", "1 while a warm of the row cache from the store is pending or running (at start, or after the cache was emptied whole), else 0.", nil, nil)
	dDiskFree       = prometheus.NewDesc("ringkv_disk_free_bytes", "Free bytes of the data directory's filesystem at the last measure (the ballast not counted).", nil, nil)
	dDiskFloor      = prometheus.NewDesc("ringkv_disk_min_free_bytes", "--min-free-space on this filesystem: below it writes are refused (507).", nil, nil)
	dDiskFull       = prometheus.NewDesc("ringkv_disk_full", "1 while writes are refused for want of free space, else 0.", nil, nil)
	dDiskRefused    = prometheus.NewDesc("ringkv_disk_full_writes_refused_total", "Writes (client, replica, hint) refused for want of free space.", nil, nil)
	dRowWarmed      = prometheus.NewDesc("ringkv_row_cache_warmed_records", "Records the last row cache warm cached.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dLevelFiles, dLevelBytes, dLevelScore, dLevelCompacted, dLevelFlushed,
		dL0Sublevels, dL0Stop, dCompactions, dCompactionsNow, dDebt, dFlushes, dStalls, dStallSeconds, dWriteAmp, dReadAmp,
		dMemBytes, dMemCount, dCacheBytes, dCacheHits, dCacheMisses, dWALBytes, dDiskBytes, dTombstones, dBGErrors,
		dCorruption, dCorruptSpans, dRowBytes, dRowHits, dRowMisses, dRowWarming, dRowWarmed, dDiskFree, dDiskFloor, dDiskFull, dDiskRefused} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.e.closed.Load() {
		return
	}
	m := c.e.db.Metrics()
	g := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	cnt := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	for i := range m.Levels {
		l := &m.Levels[i]
		name := levelNames[i]
		g(dLevelFiles, float64(l.TablesCount), name)
		g(dLevelBytes, float64(l.TablesSize), name)
		g(dLevelScore, l.Score, name)
		cnt(dLevelCompacted, float64(l.TableBytesCompacted), name)
		cnt(dLevelFlushed, float64(l.TableBytesFlushed), name)
	}
	g(dL0Sublevels, float64(m.Levels[0].Sublevels))
	g(dL0Stop, float64(c.e.popts.L0StopWritesThreshold))
	cnt(dCompactions, float64(m.Compact.Count))
	g(dCompactionsNow, float64(m.Compact.NumInProgress))
	g(dDebt, float64(m.Compact.EstimatedDebt))
	total := m.Total()
	g(dWriteAmp, total.WriteAmp())
	g(dReadAmp, float64(m.ReadAmp()))
	g(dMemBytes, float64(m.MemTable.Size))
	g(dMemCount, float64(m.MemTable.Count))
	g(dCacheBytes, float64(m.BlockCache.Size))
	cnt(dCacheHits, float64(m.BlockCache.Hits))
	cnt(dCacheMisses, float64(m.BlockCache.Misses))
	cnt(dWALBytes, float64(m.WAL.BytesWritten))
	g(dDiskBytes, float64(m.DiskSpaceUsage()))
	g(dTombstones, float64(m.Keys.TombstoneCount))
	rs := c.e.rowCacheStats()
	g(dRowBytes, float64(rs.Bytes))
	cnt(dRowHits, float64(rs.Hits))
	cnt(dRowMisses, float64(rs.Misses))
	warming := 0.0
	if rs.Warming {
		warming = 1
	}
	g(dRowWarming, warming)
	g(dRowWarmed, float64(rs.Warmed))
	if d := c.e.disk.last.Load(); d != nil {
		g(dDiskFree, float64(d.Free))
		g(dDiskFloor, float64(d.FloorBytes))
	}
	full := 0.0
	if c.e.disk.full.Load() {
		full = 1
	}
	g(dDiskFull, full)
	cnt(dDiskRefused, float64(c.e.disk.refusedTotal.Load()))
	st, bgErrs := c.e.stalls.snapshot()
	cnt(dFlushes, float64(m.Flush.Count))
	cnt(dBGErrors, float64(bgErrs))
	cnt(dCorruption, float64(c.e.corrupt.events.Load()))
	out := 0
	if o := c.e.corrupt.out.Load(); o != nil {
		out = len(*o)
	}
	g(dCorruptSpans, float64(out))
	for _, reason := range stallReasons(st) {
		rs := st.ByReason[reason]
		cnt(dStalls, float64(rs.Count), reason)
		cnt(dStallSeconds, rs.Duration.Seconds(), reason)
	}
}

var levelNames = [...]string{"0", "1", "2", "3", "4", "5", "6"}

// levelNames must cover every Pebble level.
var _ [len(levelNames)]struct{} = [len(pebble.Metrics{}.Levels)]struct{}{}

// stallReasons returns the reasons Pebble is known to stall for, plus any
// others seen, so the counters exist (at zero) before the first stall.
func stallReasons(st StallStats) []string {
	out := []string{"memtable count limit reached", "L0 file count limit exceeded"}
	for r := range st.ByReason {
		if r != out[0] && r != out[1] {
			out = append(out, r)
		}
	}
	return out
}
