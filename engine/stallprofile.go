package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// Stall profiles (--profile-on-stall): when Pebble stalls writes, the
// engine saves what an operator needs to find the cause later with `go tool
// pprof`: a CPU profile of the seconds after the stall began, a goroutine
// profile and the LSM report at that moment, and the stall with its advice.

// defaultStallCPUProfile is how long a stall's CPU profile runs.
const defaultStallCPUProfile = 10 * time.Second

// minStallProfileGap keeps a flapping stall from filling the disk.
const minStallProfileGap = time.Minute

// maybeProfileStall starts a capture for st unless one is running or one
// ran within minStallProfileGap. It never blocks: Pebble calls it on the
// commit path, where reading the LSM's metrics would deadlock.
func (e *Engine) maybeProfileStall(st Stall) {
	if e.opts.ProfileOnStall == "" || !e.profiling.CompareAndSwap(false, true) {
		return
	}
	if last := e.lastProfile.Load(); last != 0 && time.Since(time.Unix(0, last)) < minStallProfileGap {
		e.profiling.Store(false)
		return
	}
	e.lastProfile.Store(time.Now().UnixNano())
	e.wg.Go(func() {
		defer e.profiling.Store(false)
		dir, err := e.profileStall(st)
		if err != nil {
			e.opts.Logger.Error("cannot save stall profiles", "err", err)
			return
		}
		e.opts.Logger.Info("stall profiles saved", "dir", dir, "reason", st.Reason)
	})
}

func (e *Engine) profileStall(st Stall) (string, error) {
	name := "stall-" + st.Start.UTC().Format("20060102T150405.000Z") + "-" + slug(st.Reason)
	dir := filepath.Join(e.opts.ProfileOnStall, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := writeJSON(filepath.Join(dir, "stall.json"), st); err != nil {
		return dir, err
	}
	if err := writeJSON(filepath.Join(dir, "lsm.json"), e.LSM()); err != nil {
		return dir, err
	}
	g, err := os.Create(filepath.Join(dir, "goroutine.pb.gz"))
	if err != nil {
		return dir, err
	}
	err = pprof.Lookup("goroutine").WriteTo(g, 0)
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return dir, err
	}
	return dir, e.cpuProfile(filepath.Join(dir, "cpu.pb.gz"))
}

// cpuProfile records a CPU profile for the stall's profiling window, cut
// short if the engine closes. The process has one CPU profiler: if another
// profile is running (say /debug/pprof/profile), it is skipped.
func (e *Engine) cpuProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path)
		e.opts.Logger.Warn("no CPU profile for the stall", "err", err)
		return nil
	}
	d := e.stallCPUProfile
	if d <= 0 {
		d = defaultStallCPUProfile
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-e.stop:
		t.Stop()
	}
	pprof.StopCPUProfile()
	return f.Close()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// slug turns a stall reason into a file-name part.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
