package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/compaction"
)

// A full disk is an answer, not a hang. Pebble cannot take a write that
// fails with ENOSPC back (its WAL writer keeps the error and every later
// commit is fatal), and a flush that fails for room retries at once,
// forever, holding writes back. So the engine refuses new writes while the
// free space of its filesystem is under a floor (Options.MinFreeSpace),
// leaving that room to the flushes and compactions already due, and takes
// writes again once space is back.
//
// The free space is measured (statfs, through vfs.FS.GetDiskUsage) every
// second by a background loop, and sooner by a write that finds the bytes
// written since the last measure exceed the budget that measure left: a
// write costs two atomic operations, never a system call.
//
// An emergency ballast, a file of BallastSize bytes kept in the data
// directory (CockroachDB's idea), is the room of last resort: it is
// deleted when the free space falls to half the floor despite the refusal,
// or when a write of Pebble's meets ENOSPC (vfs.OnDiskFull retries that
// write once the callback freed the room), and is made again once there is
// room for it above the floor.

// ErrDiskFull is matched (errors.Is) by the errors of writes refused
// because the data directory's filesystem has less free space than the
// floor. They are refused before anything is written.
var ErrDiskFull = errors.New("engine: disk full")

// DiskFullError is the ErrDiskFull of a refused write: it names the
// directory, its free space and the floor.
type DiskFullError struct {
	Dir   string
	Free  uint64
	Floor FreeSpace
	// FloorBytes is Floor on this filesystem.
	FloorBytes uint64
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("disk full: %s has %s free, below --min-free-space %s; writes are refused until space is freed",
		e.Dir, compaction.FormatBytes(e.Free), e.Floor.describe(e.FloorBytes))
}

// Is makes errors.Is(err, ErrDiskFull) true.
func (e *DiskFullError) Is(target error) bool { return target == ErrDiskFull }

// FreeSpace is a free-space floor: Bytes, or Percent of the filesystem's
// size. The zero value is the default, the smaller of 512MiB and 2% of the
// filesystem.
type FreeSpace struct {
	// Off disables the floor (and the ballast).
	Off bool
	// Bytes is the floor in bytes, when Percent is 0.
	Bytes int64
	// Percent, when positive, is the floor as a share of the filesystem.
	Percent float64
}

// DefaultMinFreeBytes and DefaultMinFreePercent make the default floor:
// the smaller of the two.
const (
	DefaultMinFreeBytes   = 512 << 20
	DefaultMinFreePercent = 2
)

// Floor returns the floor in bytes on a filesystem of total bytes.
func (f FreeSpace) Floor(total uint64) uint64 {
	switch {
	case f.Off:
		return 0
	case f.Percent > 0:
		return uint64(float64(total) * f.Percent / 100)
	case f.Bytes > 0:
		return uint64(f.Bytes)
	}
	return min(DefaultMinFreeBytes, uint64(float64(total)*DefaultMinFreePercent/100))
}

// String returns the floor as --min-free-space takes it.
func (f FreeSpace) String() string {
	switch {
	case f.Off:
		return "0"
	case f.Percent > 0:
		return strconv.FormatFloat(f.Percent, 'g', -1, 64) + "%"
	case f.Bytes > 0:
		return compaction.FormatSize(f.Bytes)
	}
	return fmt.Sprintf("min(%s,%d%%)", compaction.FormatSize(DefaultMinFreeBytes), DefaultMinFreePercent)
}

// describe is String with what a relative floor comes to.
func (f FreeSpace) describe(floor uint64) string {
	if f.Off || (f.Percent <= 0 && f.Bytes > 0) {
		return f.String()
	}
	return f.String() + " = " + compaction.FormatBytes(floor)
}

// BallastName is the emergency ballast's file name in the data directory.
const BallastName = "EMERGENCY_BALLAST"

// defaultBallast is the ballast's size for a floor: half of it, at most
// 64MiB.
func defaultBallast(floor uint64) uint64 { return min(floor/2, 64<<20) }

// diskRefresh is how often the free space is measured.
const diskRefresh = time.Second

// maxDiskBudget bounds the bytes writes add between two measures.
const maxDiskBudget = 4 << 20

// diskGuard keeps the free-space floor. It is safe for concurrent use.
type diskGuard struct {
	fs      vfs.FS // the filesystem under Pebble's ENOSPC wrapper
	dataDir string // Options.Dir
	dir     string // dataDir for people ("." for "")
	spec    FreeSpace
	ballast int64 // Options.BallastSize: 0 means defaultBallast, <0 none
	log     *slog.Logger
	every   *logEvery
	usage   func() (vfs.DiskUsage, error)

	full         atomic.Bool
	budget       atomic.Int64                  // bytes writes may add before the next measure
	last         atomic.Pointer[DiskFullError] // the last measure, as a refusal would say it
	refused      atomic.Int64                  // writes refused since the disk filled
	refusedTotal atomic.Int64                  // writes refused since open

	mu struct {
		sync.Mutex
		measured bool // a measure succeeded once: the floor is kept
		ballast  bool // the ballast file is in place
	}
}

func newDiskGuard(fs vfs.FS, dir string, spec FreeSpace, ballast int64, lg *slog.Logger, every *logEvery) *diskGuard {
	g := &diskGuard{fs: fs, dataDir: dir, dir: dir, spec: spec, ballast: ballast, log: lg, every: every}
	g.usage = func() (vfs.DiskUsage, error) { return fs.GetDiskUsage(dir) }
	if dir == "" {
		g.dir = "." // for messages; fs paths join "" fine
	}
	g.budget.Store(maxDiskBudget)
	return g
}

func (g *diskGuard) ballastPath() string { return g.fs.PathJoin(g.dataDir, BallastName) }

// admit reports whether a write of n bytes may go ahead: nil, or the
// *DiskFullError that refuses it.
func (g *diskGuard) admit(n int) error {
	if g.full.Load() {
		return g.refuse()
	}
	if g.budget.Add(-int64(n)) < 0 {
		g.refresh()
		if g.full.Load() {
			return g.refuse()
		}
	}
	return nil
}

func (g *diskGuard) refuse() error {
	g.refused.Add(1)
	g.refusedTotal.Add(1)
	return g.last.Load()
}

// refresh measures the free space and updates the refusal, the budget and
// the ballast. A refresh already running makes it return at once.
func (g *diskGuard) refresh() {
	if !g.mu.TryLock() {
		return
	}
	defer g.mu.Unlock()
	g.refreshLocked()
}

// REQUIRES: g.mu.
func (g *diskGuard) refreshLocked() {
	u, err := g.usage()
	if err != nil {
		if errors.Is(err, vfs.ErrUnsupported) {
			// No statfs (an in-memory FS): no floor to keep.
			g.budget.Store(maxDiskBudget)
			return
		}
		if msg, ok := g.every.allow("disk usage", "cannot measure the free space; the last measure stands"); ok {
			g.log.Warn(msg, "dir", g.dir, "err", err)
		}
		return
	}
	if !g.mu.measured {
		g.mu.measured = true
		g.mu.ballast = g.ballastPresent()
	}
	floor := g.spec.Floor(u.TotalBytes)
	avail := u.AvailBytes
	ballast := g.ballastSize(floor)
	switch {
	case g.mu.ballast && avail < floor/2:
		// The refusal did not hold the space: give the ballast to the
		// flushes and compactions that still need room.
		if err := g.fs.Remove(g.ballastPath()); err == nil || errors.Is(err, os.ErrNotExist) {
			g.mu.ballast = false
			g.log.Warn("free space below half of --min-free-space: emergency ballast deleted", "dir", g.dir, "free", compaction.FormatBytes(avail), "ballast", compaction.FormatBytes(ballast))
			avail += ballast
		}
	case !g.mu.ballast && ballast > 0 && avail >= resumeAt(floor)+ballast:
		if err := g.makeBallast(ballast); err != nil {
			if msg, ok := g.every.allow("ballast", "cannot create the emergency ballast"); ok {
				g.log.Warn(msg, "path", g.ballastPath(), "err", err)
			}
		} else {
			g.mu.ballast = true
			avail -= ballast
		}
	}
	d := &DiskFullError{Dir: g.dir, Free: avail, Floor: g.spec, FloorBytes: floor}
	g.last.Store(d)
	was := g.full.Load()
	full := avail < floor || (was && avail < resumeAt(floor))
	g.full.Store(full)
	if full {
		g.budget.Store(0)
	} else {
		g.budget.Store(int64(min((avail-floor)/2, maxDiskBudget)))
	}
	switch {
	case full && !was:
		g.log.Error(d.Error())
	case !full && was:
		g.log.Info("free space is back: writes are taken again", "dir", g.dir, "free", compaction.FormatBytes(avail), "min_free_space", g.spec.describe(floor), "refused", g.refused.Swap(0))
	}
}

// resumeAt is the free space at which refused writes are taken again: a
// little above the floor, so that writes do not flap at its edge.
func resumeAt(floor uint64) uint64 { return floor + floor/8 }

func (g *diskGuard) ballastSize(floor uint64) uint64 {
	switch {
	case g.ballast < 0 || g.spec.Off:
		return 0
	case g.ballast > 0:
		return uint64(g.ballast)
	}
	return defaultBallast(floor)
}

func (g *diskGuard) ballastPresent() bool {
	_, err := g.fs.Stat(g.ballastPath())
	return err == nil
}

// makeBallast writes the ballast file (zeros, so the filesystem allocates
// them) and syncs it; a partial one is removed.
func (g *diskGuard) makeBallast(size uint64) (err error) {
	path := g.ballastPath()
	f, err := g.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = g.fs.Remove(path)
		}
	}()
	chunk := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, uint64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			return err
		}
		left -= n
	}
	return f.Sync()
}

// onENOSPC is vfs.OnDiskFull's callback: a write of Pebble's met ENOSPC.
// It frees the ballast, so that the write (retried once by the wrapper)
// and the flushes and compactions after it find room, and refuses client
// writes at once. Writes to the filesystem wait while it runs: it only
// removes a file.
func (g *diskGuard) onENOSPC() {
	g.mu.Lock()
	defer g.mu.Unlock()
	removed := false
	if err := g.fs.Remove(g.ballastPath()); err == nil {
		removed = true
	}
	g.mu.ballast = false
	if g.spec.Off {
		return
	}
	d := &DiskFullError{Dir: g.dir, Floor: g.spec}
	if last := g.last.Load(); last != nil {
		d.FloorBytes = last.FloorBytes
	}
	g.last.Store(d)
	g.budget.Store(0)
	if !g.full.Swap(true) {
		g.log.Error("disk full: a write met ENOSPC; client writes are refused until space is freed", "dir", g.dir, "ballast_deleted", removed)
	}
}

// state returns the refusal in force, or nil.
func (g *diskGuard) state() *DiskFullError {
	if !g.full.Load() {
		return nil
	}
	return g.last.Load()
}

// loop measures the free space every interval until stop. Tests pass
// ticks to drive it instead, and measured to hear when a measure is done;
// both are nil in production.
func (g *diskGuard) loop(interval time.Duration, ticks <-chan time.Time, measured func(), stop <-chan struct{}) {
	if ticks == nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-ticks:
			g.mu.Lock()
			g.refreshLocked()
			g.mu.Unlock()
			if measured != nil {
				measured()
			}
		}
	}
}

// isENOSPC reports whether err is, or wraps, ENOSPC.
func isENOSPC(err error) bool { return errors.Is(err, syscall.ENOSPC) }
