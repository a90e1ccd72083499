package engine

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/compaction"
)

// Stall is one write stall: Pebble held writes back for Duration because of
// Reason. Advice names the flag that would have helped.
type Stall struct {
	Reason   string        `json:"reason"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	Ongoing  bool          `json:"ongoing,omitempty"`
	Flag     string        `json:"flag,omitempty"`
	Advice   string        `json:"advice,omitempty"`
}

// maxRecentStalls bounds the stall history kept for /v1/lsm.
const maxRecentStalls = 32

// stallTracker counts write stalls by reason from Pebble's EventListener.
// Pebble calls WriteStallBegin and WriteStallEnd in pairs from the commit
// path, so at most one stall is open at a time.
type stallTracker struct {
	log     *slog.Logger
	tuning  compaction.Tuning
	onStall func(Stall)
	e       *Engine // for the disk guard, the log limiter and lastSlow
	// stalled is set from WriteStallBegin to WriteStallEnd.
	stalled atomic.Bool

	mu struct {
		sync.Mutex
		open     *Stall
		count    map[string]int64
		total    map[string]time.Duration
		recent   []Stall // ring, newest last
		bgErrors int64
	}
}

func newStallTracker(lg *slog.Logger, t compaction.Tuning, onStall func(Stall), e *Engine) *stallTracker {
	s := &stallTracker{log: lg, tuning: t, onStall: onStall, e: e}
	s.mu.count = map[string]int64{}
	s.mu.total = map[string]time.Duration{}
	return s
}

func (s *stallTracker) listener() pebble.EventListener {
	return pebble.EventListener{
		WriteStallBegin: s.begin,
		WriteStallEnd:   s.end,
		// A flush or compaction that fails is retried at once, so on a
		// full disk this fires hundreds of times a second: each is
		// counted, and logged at most every logInterval.
		BackgroundError: func(err error) {
			s.mu.Lock()
			s.mu.bgErrors++
			s.mu.Unlock()
			if isENOSPC(err) {
				s.e.disk.onENOSPC()
			}
			if msg, ok := s.e.every.allow("background error", "pebble background error"); ok {
				s.log.Error(msg, "err", oneLine(err.Error())) // Pebble formats errors with stack traces
			}
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			s.e.lastSlow.Store(time.Now().UnixNano())
			if msg, ok := s.e.every.allow("disk slow", "disk slow"); ok {
				s.log.Warn(msg, "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			}
		},
	}
}

func (s *stallTracker) begin(info pebble.WriteStallBeginInfo) {
	adv := compaction.AdviseStall(info.Reason, s.tuning)
	st := Stall{Reason: info.Reason, Start: time.Now(), Ongoing: true, Flag: adv.Flag, Advice: adv.Message}
	s.mu.Lock()
	s.mu.open = &st
	s.mu.count[info.Reason]++
	s.mu.Unlock()
	s.stalled.Store(true)
	s.log.Warn("write stall", "reason", info.Reason, "flag", adv.Flag, "advice", adv.Message)
	if s.onStall != nil {
		s.onStall(st)
	}
}

func (s *stallTracker) end() {
	s.stalled.Store(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.open == nil {
		return
	}
	st := *s.mu.open
	s.mu.open = nil
	st.Ongoing = false
	st.Duration = time.Since(st.Start)
	s.mu.total[st.Reason] += st.Duration
	if len(s.mu.recent) == maxRecentStalls {
		copy(s.mu.recent, s.mu.recent[1:])
		s.mu.recent = s.mu.recent[:maxRecentStalls-1]
	}
	s.mu.recent = append(s.mu.recent, st)
	s.log.Info("write stall ended", "reason", st.Reason, "duration", st.Duration)
}

// StallStats summarizes the write stalls since the engine opened.
type StallStats struct {
	Count    int64                  `json:"count"`
	Duration time.Duration          `json:"duration_ns"`
	ByReason map[string]ReasonStats `json:"by_reason"`
	Recent   []Stall                `json:"recent"`
}

// ReasonStats counts the stalls of one reason.
type ReasonStats struct {
	Count    int64         `json:"count"`
	Duration time.Duration `json:"duration_ns"`
}

func (s *stallTracker) snapshot() (st StallStats, bgErrors int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.ByReason = make(map[string]ReasonStats, len(s.mu.count))
	for r, n := range s.mu.count {
		d := s.mu.total[r]
		st.ByReason[r] = ReasonStats{Count: n, Duration: d}
		st.Count += n
		st.Duration += d
	}
	st.Recent = append([]Stall{}, s.mu.recent...)
	if s.mu.open != nil {
		o := *s.mu.open
		o.Duration = time.Since(o.Start)
		st.Recent = append(st.Recent, o)
	}
	return st, s.mu.bgErrors
}

// pebbleLogger sends Pebble's own log lines to slog. Errors of one format
// are logged at most every logInterval (with a count of the others), and
// Fatalf goes to fatal (Engine.onFatal), which does not return: a panic
// here would unwind through request goroutines holding Pebble's commit
// pipeline and the engine's locks, for a recover() to hide.
type pebbleLogger struct {
	log   *slog.Logger
	every *logEvery
	fatal func(msg string)
	// With fs set it also looks behind the end of each WAL replay (see
	// waltail.go), reporting a tail that did not read to onTail (and
	// logging it when onTail is nil).
	fs     vfs.FS
	onTail func(WALTail)
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	if t, ok := walTailOf(l.fs, format, args); ok {
		if l.onTail != nil {
			l.onTail(t)
		} else {
			warnWALTail(l.log, t)
		}
	}
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	if msg, ok := l.every.allow("pebble: "+format, fmt.Sprintf(format, args...)); ok {
		l.log.Error(msg, "component", "pebble")
	}
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.fatal(fmt.Sprintf(format, args...))
}
