package engine

import (
	"fmt"
	"log/slog"
	"sync"
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

	mu struct {
		sync.Mutex
		open     *Stall
		count    map[string]int64
		total    map[string]time.Duration
		recent   []Stall // ring, newest last
		bgErrors int64
		// bgLogged is when a background error was last logged, and
		// bgQuiet how many were not logged since.
		bgLogged time.Time
		bgQuiet  int64
	}
}

func newStallTracker(lg *slog.Logger, t compaction.Tuning, onStall func(Stall)) *stallTracker {
	s := &stallTracker{log: lg, tuning: t, onStall: onStall}
	s.mu.count = map[string]int64{}
	s.mu.total = map[string]time.Duration{}
	return s
}

func (s *stallTracker) listener() pebble.EventListener {
	return pebble.EventListener{
		WriteStallBegin: s.begin,
		WriteStallEnd:   s.end,
		BackgroundError: s.backgroundError,
		DiskSlow: func(info pebble.DiskSlowInfo) {
			s.log.Warn("disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
	}
}

// bgLogEvery bounds how often background errors are logged: a compaction
// that keeps meeting a damaged file fails again each time it is retried.
const bgLogEvery = 10 * time.Second

func (s *stallTracker) backgroundError(err error) {
	now := time.Now()
	s.mu.Lock()
	s.mu.bgErrors++
	quiet := s.mu.bgQuiet
	logIt := now.Sub(s.mu.bgLogged) >= bgLogEvery
	if logIt {
		s.mu.bgLogged, s.mu.bgQuiet = now, 0
	} else {
		s.mu.bgQuiet++
	}
	s.mu.Unlock()
	if logIt {
		// err.Error(), not err: Pebble's errors format with stack traces.
		s.log.Error("pebble background error", "err", oneLine(err.Error()), "not_logged_since_last", quiet)
	}
}

func (s *stallTracker) begin(info pebble.WriteStallBeginInfo) {
	adv := compaction.AdviseStall(info.Reason, s.tuning)
	st := Stall{Reason: info.Reason, Start: time.Now(), Ongoing: true, Flag: adv.Flag, Advice: adv.Message}
	s.mu.Lock()
	s.mu.open = &st
	s.mu.count[info.Reason]++
	s.mu.Unlock()
	s.log.Warn("write stall", "reason", info.Reason, "flag", adv.Flag, "advice", adv.Message)
	if s.onStall != nil {
		s.onStall(st)
	}
}

func (s *stallTracker) end() {
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

// pebbleLogger sends Pebble's own log lines to slog. With fs set it also
// looks behind the end of each WAL replay (see waltail.go), reporting a
// tail that did not read to onTail (and logging it when onTail is nil).
type pebbleLogger struct {
	log    *slog.Logger
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
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
	panic(fmt.Sprintf("pebble: "+format, args...))
}
