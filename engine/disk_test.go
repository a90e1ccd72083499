package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const mib = 1 << 20

// fakeDisk is a filesystem's free space, set by the test.
type fakeDisk struct{ avail atomic.Uint64 }

func newFakeDisk(avail uint64) *fakeDisk { d := &fakeDisk{}; d.avail.Store(avail); return d }

func (d *fakeDisk) usage() (vfs.DiskUsage, error) {
	a := d.avail.Load()
	return vfs.DiskUsage{AvailBytes: a, TotalBytes: 1 << 30, UsedBytes: 1<<30 - a}, nil
}

// openDisk opens an engine on fs whose free space is disk's. Its disk
// guard's loop measures only when the test says so, through the returned
// diskLoop.
func openDisk(t *testing.T, fs vfs.FS, disk *fakeDisk, mut func(*Options)) (*Engine, *diskLoop) {
	t.Helper()
	o := Options{FS: fs, Dir: "db", Logger: quiet(), GCInterval: -1, SkipRowCacheWarm: true,
		MinFreeSpace: FreeSpace{Bytes: 10 * mib}}
	if mut != nil {
		mut(&o)
	}
	l := &diskLoop{t: t, ticks: make(chan time.Time), measured: make(chan struct{})}
	e, err := open(o, hooks{usage: disk.usage, diskTicks: l.ticks, diskMeasured: func() { l.measured <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	return e, l
}

// diskLoop drives an engine's disk guard loop by hand (hooks.diskTicks),
// so a test waits for the measure itself, not for a period to pass.
type diskLoop struct {
	t        *testing.T
	ticks    chan time.Time
	measured chan struct{}
}

// measure has the loop measure the free space once and returns when it
// has. The minute is only there to name a hung loop.
func (l *diskLoop) measure() {
	l.t.Helper()
	hung := time.After(time.Minute)
	select {
	case l.ticks <- time.Now():
	case <-hung:
		l.t.Fatal("the disk guard's loop took no tick within a minute")
	}
	select {
	case <-l.measured:
	case <-hung:
		l.t.Fatal("the disk guard's loop did not finish its measure within a minute")
	}
}

// within runs f and fails the test if it has not returned in 30s: a write
// that hangs is the bug these tests look for, and a loaded machine is slow.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s hung", what)
		return nil
	}
}

func TestDiskFloorRefusesWritesAndResumes(t *testing.T) {
	fs := vfs.NewMem()
	disk := newFakeDisk(100 * mib)
	e, loop := openDisk(t, fs, disk, nil)
	defer e.Close()
	must(t, e.Write([]byte("k0"), rec(1, 1, "v0"), true))
	if _, err := fs.Stat(fs.PathJoin("db", BallastName)); err != nil {
		t.Fatalf("no ballast with room for it: %v", err)
	}

	disk.avail.Store(6 * mib) // under the 10MiB floor, over half of it
	loop.measure()
	const refusedKey = "r0"
	err := e.Write([]byte(refusedKey), rec(2, 1, "v1"), true)
	var d *DiskFullError
	if !errors.Is(err, ErrDiskFull) || !errors.As(err, &d) {
		t.Fatalf("write below the floor: %v, want a DiskFullError", err)
	}
	for _, want := range []string{"disk full: db has 6.0MiB free", "--min-free-space 10MiB", "writes are refused until space is freed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	b := e.NewBatch()
	must(t, b.Write([]byte("k2"), rec(3, 1, "v2")))
	if err := e.Commit(b, true); !errors.Is(err, ErrDiskFull) {
		t.Errorf("commit below the floor: %v", err)
	}
	if err := e.AddHint("n2", []byte("k3"), rec(4, 1, "v3").Append(nil)); !errors.Is(err, ErrDiskFull) {
		t.Errorf("hint below the floor: %v", err)
	}
	if h := e.Health(); len(h) != 1 || h[0].Reason != "disk full" || !strings.Contains(h[0].Detail, "free") {
		t.Errorf("health = %+v, want disk full", h)
	}
	// Reads go on, and nothing refused was written.
	if _, r, err := e.Get(nil, []byte("k0")); err != nil || string(r.Value) != "v0" {
		t.Errorf("read while full: %q, %v", r.Value, err)
	}
	if _, _, err := e.Get(nil, []byte(refusedKey)); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused write readable: %v", err)
	}
	if err := testutil.CollectAndCompare(e.Collector(), strings.NewReader(`
# HELP ringkv_disk_full 1 while writes are refused for want of free space, else 0.
# TYPE ringkv_disk_full gauge
ringkv_disk_full 1
# HELP ringkv_disk_free_bytes Free bytes of the data directory's filesystem at the last measure (the ballast not counted).
# TYPE ringkv_disk_free_bytes gauge
ringkv_disk_free_bytes 6.291456e+06
# HELP ringkv_disk_min_free_bytes --min-free-space on this filesystem: below it writes are refused (507).
# TYPE ringkv_disk_min_free_bytes gauge
ringkv_disk_min_free_bytes 1.048576e+07
`), "ringkv_disk_full", "ringkv_disk_free_bytes", "ringkv_disk_min_free_bytes"); err != nil {
		t.Error(err)
	}
	if err := e.Flush(); !errors.Is(err, ErrDiskFull) {
		t.Errorf("flush on a full disk: %v, want it skipped with ErrDiskFull", err)
	}

	// Pebble's own work eats the rest: the ballast goes.
	disk.avail.Store(4 * mib)
	loop.measure()
	if _, err := fs.Stat(fs.PathJoin("db", BallastName)); err == nil {
		t.Fatal("the ballast is still there below half the floor")
	}
	if err := e.Write([]byte("k1"), rec(5, 1, "v1"), true); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write with the ballast gone and the floor not reached again: %v, want ErrDiskFull", err)
	}

	// Space comes back: one measure takes writes again and makes the
	// ballast again.
	disk.avail.Store(100 * mib)
	loop.measure()
	must(t, e.Write([]byte("k1"), rec(5, 1, "v1"), true))
	if h := e.Health(); len(h) != 0 {
		t.Errorf("health after space came back = %+v", h)
	}
	if _, err := fs.Stat(fs.PathJoin("db", BallastName)); err != nil {
		t.Errorf("the ballast not made again once space came back: %v", err)
	}
	must(t, e.Flush())
}

// TestDiskBudget: writes between two measures are counted, and a write
// that spends the budget measures again at once, without the loop.
func TestDiskBudget(t *testing.T) {
	disk := newFakeDisk(100 * mib)
	e, _ := openDisk(t, vfs.NewMem(), disk, func(o *Options) { o.BallastSize = -1 })
	defer e.Close()
	disk.avail.Store(1 * mib)
	val := strings.Repeat("x", 64<<10)
	refused := false
	for i := range 200 { // 12.5MiB: more than the 4MiB budget
		err := e.Write(fmt.Appendf(nil, "k%d", i), rec(uint64(i+1), 1, val), false)
		if errors.Is(err, ErrDiskFull) {
			refused = true
			break
		}
		must(t, err)
	}
	if !refused {
		t.Fatal("writes past the budget were not refused")
	}
}

// enospcOnWAL fails writes to WAL files with ENOSPC while armed; with
// once, it disarms itself after the first.
type enospcOnWAL struct {
	armed atomic.Bool
	once  bool
	hits  atomic.Int64
}

func (i *enospcOnWAL) String() string { return "enospc-on-wal" }
func (i *enospcOnWAL) MaybeError(op errorfs.Op) error {
	if op.Kind != errorfs.OpFileWrite || !strings.HasSuffix(op.Path, ".log") || !i.armed.Load() {
		return nil
	}
	if i.once && !i.armed.CompareAndSwap(true, false) {
		return nil
	}
	i.hits.Add(1)
	return syscall.ENOSPC
}

// TestENOSPCFreesBallast: a WAL write that meets ENOSPC frees the ballast
// and is retried (vfs.OnDiskFull), so the write succeeds, Pebble goes on,
// and client writes are refused until a measure finds room again.
func TestENOSPCFreesBallast(t *testing.T) {
	inj := &enospcOnWAL{once: true}
	mem := vfs.NewMem()
	fs := errorfs.Wrap(mem, inj)
	disk := newFakeDisk(100 * mib)
	e, _ := openDisk(t, fs, disk, nil)
	defer e.Close()
	must(t, e.Write([]byte("k0"), rec(1, 1, "v0"), true))

	inj.armed.Store(true)
	err := within(t, "a write meeting ENOSPC", func() error { return e.Write([]byte("k1"), rec(2, 1, "v1"), true) })
	if inj.hits.Load() != 1 {
		t.Fatalf("ENOSPC injected %d times, want 1", inj.hits.Load())
	}
	must(t, err) // retried after the ballast was freed
	if _, err := mem.Stat(mem.PathJoin("db", BallastName)); err == nil {
		t.Error("ballast still there after ENOSPC")
	}
	if err := e.Write([]byte("k2"), rec(3, 1, "v2"), true); !errors.Is(err, ErrDiskFull) {
		t.Errorf("write after ENOSPC: %v, want ErrDiskFull", err)
	}
	if h := e.Health(); len(h) != 1 || h[0].Reason != "disk full" {
		t.Errorf("health after ENOSPC = %+v", h)
	}
	e.disk.refresh() // space is there: the next measure says so
	must(t, e.Write([]byte("k2"), rec(4, 1, "v2"), true))
	if _, r, err := e.Get(nil, []byte("k1")); err != nil || string(r.Value) != "v1" {
		t.Errorf("k1 = %q, %v", r.Value, err)
	}
}

// TestFatalCommitLeavesNoLockHeld: with ENOSPC on every WAL write and no
// floor nor ballast to help, Pebble's WAL writer keeps the error and a
// later commit is fatal. The fatal hook ends that write's goroutine; no
// stripe lock stays held, and every later write fails at once.
//
// It runs in a child process: Close leaves the failed Pebble open (closing
// it hangs, see Engine.Close; in production the fatal hook exits), so its
// goroutines would outlive the test and TestMain's leak check could not
// tell them from a real leak. They end with the child.
func TestFatalCommitLeavesNoLockHeld(t *testing.T) {
	if os.Getenv(childEnv) != t.Name() {
		runInChild(t)
		return
	}
	inj := &enospcOnWAL{}
	fs := errorfs.Wrap(vfs.NewMem(), inj)
	fatal := make(chan string, 4)
	e, _ := openDisk(t, fs, newFakeDisk(100*mib), func(o *Options) {
		o.MinFreeSpace = FreeSpace{Off: true}
		o.OnFatal = func(msg string) { fatal <- msg }
	})
	must(t, e.Write([]byte("k0"), rec(1, 1, "v0"), true))

	inj.armed.Store(true)
	val := strings.Repeat("x", 4<<10)
	var msg string
	for i := 0; msg == ""; i++ {
		if i == 1000 {
			t.Fatal("no fatal error after 1000 writes on a full WAL")
		}
		done := make(chan error, 1)
		go func() {
			defer close(done) // also when the fatal hook ends the goroutine
			done <- e.Write([]byte("k"), rec(uint64(i+2), 1, val), true)
		}()
		select {
		case msg = <-fatal:
			// The hook returns here (in production it exits): the write
			// then unwinds, releasing its locks, before the check below.
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("write %d hung after the fatal hook", i)
			}
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("write %d hung", i)
		}
	}
	// Pebble v2.1.7 panics on a failed WAL write (commitWrite) and calls
	// Fatalf on a failed commit: either reaches the fatal hook.
	if !strings.Contains(msg, "no space left on device") && !strings.Contains(msg, "fatal commit error") {
		t.Errorf("fatal message %q", msg)
	}
	for i := range e.stripes {
		if !e.stripes[i].mu.TryLock() {
			t.Fatalf("stripe %d left locked by the fatal write", i)
		}
		e.stripes[i].mu.Unlock()
	}
	err := within(t, "a write after the fatal error", func() error { return e.Write([]byte("k"), rec(1<<40, 1, "v"), true) })
	if !errors.Is(err, ErrFailed) {
		t.Errorf("write after the fatal error: %v, want ErrFailed", err)
	}
	if h := e.Health(); len(h) == 0 || h[0].Reason != "storage failed" {
		t.Errorf("health = %+v", h)
	}
	if err := e.Close(); !errors.Is(err, ErrFailed) {
		t.Errorf("close = %v", err)
	}
}

func TestFreeSpaceFloor(t *testing.T) {
	f := func(fs FreeSpace, total, want uint64, str string) {
		t.Helper()
		if got := fs.Floor(total); got != want {
			t.Errorf("%+v.Floor(%d) = %d, want %d", fs, total, got, want)
		}
		if fs.String() != str {
			t.Errorf("%+v.String() = %q, want %q", fs, fs.String(), str)
		}
	}
	f(FreeSpace{}, 100<<30, 512*mib, "min(512MiB,2%)")
	f(FreeSpace{}, 64*mib, 64*mib*2/100, "min(512MiB,2%)")
	f(FreeSpace{Bytes: 3 * mib}, 100<<30, 3*mib, "3MiB")
	f(FreeSpace{Percent: 5}, 1000, 50, "5%")
	f(FreeSpace{Off: true}, 1000, 0, "0")
}

func TestLogEvery(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLogEvery(5 * time.Second)
	l.now = func() time.Time { return now }
	if m, ok := l.allow("a", "boom"); !ok || m != "boom" {
		t.Fatalf("first = %q %v", m, ok)
	}
	for range 37 {
		if _, ok := l.allow("a", "boom"); ok {
			t.Fatal("repeat within the interval logged")
		}
	}
	if _, ok := l.allow("b", "other"); !ok {
		t.Error("another kind held back")
	}
	now = now.Add(5 * time.Second)
	if m, ok := l.allow("a", "boom"); !ok || m != "boom (37 more since last logged)" {
		t.Errorf("after the interval = %q %v", m, ok)
	}
}

// childEnv names the test a child process of runInChild runs.
const childEnv = "RINGKV_ENGINE_TEST_CHILD"

// runInChild runs the calling test alone in a child process of the test
// binary, with childEnv set to its name, and fails if the child fails.
func runInChild(t *testing.T) {
	t.Helper()
	// The child's own timeout ends it, with its goroutines' stacks, should
	// it hang: it must not outlive the parent.
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a child process: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not run in the child process:\n%s", t.Name(), out)
	}
}
