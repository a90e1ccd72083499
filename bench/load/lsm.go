package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// lsmJSON mirrors the fields of GET /v1/lsm (engine.LSMReport) that the
// report plots; the rest of the answer is ignored.
type lsmJSON struct {
	Profile        string  `json:"profile"`
	WriteAmp       float64 `json:"write_amp"`
	ReadAmp        int     `json:"read_amp"`
	L0Sublevels    int32   `json:"l0_sublevels"`
	CompactionDebt uint64  `json:"compaction_debt_bytes"`
	Compactions    int64   `json:"compactions"`
	CompactionsNow int64   `json:"compactions_in_progress"`
	Flushes        int64   `json:"flushes"`
	MemTableBytes  uint64  `json:"memtable_bytes"`
	MemTableCount  int64   `json:"memtable_count"`
	DiskUsage      uint64  `json:"disk_usage_bytes"`
	Stalls         struct {
		Count    int64         `json:"count"`
		Duration time.Duration `json:"duration_ns"`
	} `json:"stalls"`
}

// LSMSample is one reading of a node's /v1/lsm. Counters (compactions,
// flushes, stalls, stall_seconds) are cumulative since the node started.
type LSMSample struct {
	T              float64 `json:"t"` // seconds since the run began
	L0Sublevels    int32   `json:"l0_sublevels"`
	ReadAmp        int     `json:"read_amp"`
	CompactionDebt uint64  `json:"compaction_debt_bytes"`
	Compactions    int64   `json:"compactions"`
	CompactionsNow int64   `json:"compactions_in_progress"`
	Flushes        int64   `json:"flushes"`
	MemTableCount  int64   `json:"memtable_count"`
	MemTableBytes  uint64  `json:"memtable_bytes"`
	Stalls         int64   `json:"stalls"`
	StallSeconds   float64 `json:"stall_seconds"`
	WriteAmp       float64 `json:"write_amp"`
	DiskUsage      uint64  `json:"disk_usage_bytes"`
}

// sampler reads one node's /v1/lsm on every tick.
type sampler struct {
	addr    string
	url     string
	client  *http.Client
	start   time.Time
	profile string
	samples []LSMSample
	err     string // the last failure, if any
	fails   int
	off     bool // the node has no /v1/lsm: stop asking
}

func newSampler(addr, base string, start time.Time, timeout time.Duration, token string) *sampler {
	return &sampler{addr: addr, url: base + "/v1/lsm", start: start,
		client: &http.Client{Timeout: timeout, Transport: tokenTransport{base: http.DefaultTransport, token: token},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// run samples at once, then every interval, then once more when ctx ends.
func (s *sampler) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	s.sample()
	for {
		select {
		case <-ctx.Done():
			s.sample()
			return
		case <-tick.C:
			s.sample()
		}
	}
}

func (s *sampler) sample() {
	if s.off {
		return
	}
	resp, err := s.client.Get(s.url)
	if err != nil {
		s.fail(err.Error())
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		s.fail(err.Error())
		return
	}
	if resp.StatusCode != http.StatusOK {
		s.fail(fmt.Sprintf("GET /v1/lsm: %s", resp.Status))
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			s.off = true // not a ringkv node (e.g. bench/baseline)
		}
		return
	}
	var m lsmJSON
	if err := json.Unmarshal(body, &m); err != nil {
		s.fail(fmt.Sprintf("GET /v1/lsm: %v", err))
		return
	}
	s.profile = m.Profile
	s.samples = append(s.samples, LSMSample{
		T:              time.Since(s.start).Seconds(),
		L0Sublevels:    m.L0Sublevels,
		ReadAmp:        m.ReadAmp,
		CompactionDebt: m.CompactionDebt,
		Compactions:    m.Compactions,
		CompactionsNow: m.CompactionsNow,
		Flushes:        m.Flushes,
		MemTableCount:  m.MemTableCount,
		MemTableBytes:  m.MemTableBytes,
		Stalls:         m.Stalls.Count,
		StallSeconds:   m.Stalls.Duration.Seconds(),
		WriteAmp:       m.WriteAmp,
		DiskUsage:      m.DiskUsage,
	})
}

func (s *sampler) fail(msg string) {
	s.fails++
	s.err = msg
}

// NodeLSM is one node's LSM over the run.
type NodeLSM struct {
	Addr     string      `json:"addr"`
	Profile  string      `json:"profile,omitempty"`
	Error    string      `json:"error,omitempty"` // the last failed sample, if any
	Failures int         `json:"failed_samples"`
	Summary  LSMSummary  `json:"summary"`
	Samples  []LSMSample `json:"samples"`
}

// LSMSummary condenses a node's samples: the worst values seen and what
// the counters grew by over the run.
type LSMSummary struct {
	MaxL0Sublevels    int32   `json:"max_l0_sublevels"`
	MaxReadAmp        int     `json:"max_read_amp"`
	MaxCompactionDebt uint64  `json:"max_compaction_debt_bytes"`
	MaxMemTables      int64   `json:"max_memtable_count"`
	Stalls            int64   `json:"stalls"`
	StallSeconds      float64 `json:"stall_seconds"`
	Flushes           int64   `json:"flushes"`
	Compactions       int64   `json:"compactions"`
	WriteAmp          float64 `json:"write_amp"` // at the last sample (cumulative since the node started)
}

func (s *sampler) report() NodeLSM {
	n := NodeLSM{Addr: s.addr, Profile: s.profile, Error: s.err, Failures: s.fails, Samples: s.samples}
	if n.Samples == nil {
		n.Samples = []LSMSample{}
	}
	if len(s.samples) == 0 {
		return n
	}
	first, last := s.samples[0], s.samples[len(s.samples)-1]
	sm := &n.Summary
	for _, x := range s.samples {
		sm.MaxL0Sublevels = max(sm.MaxL0Sublevels, x.L0Sublevels)
		sm.MaxReadAmp = max(sm.MaxReadAmp, x.ReadAmp)
		sm.MaxCompactionDebt = max(sm.MaxCompactionDebt, x.CompactionDebt)
		sm.MaxMemTables = max(sm.MaxMemTables, x.MemTableCount)
	}
	sm.Stalls = last.Stalls - first.Stalls
	sm.StallSeconds = last.StallSeconds - first.StallSeconds
	sm.Flushes = last.Flushes - first.Flushes
	sm.Compactions = last.Compactions - first.Compactions
	sm.WriteAmp = last.WriteAmp
	return n
}
