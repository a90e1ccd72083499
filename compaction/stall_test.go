package compaction

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// These tests provoke each write stall in a real Pebble on an in-memory FS
// and check that the reason Pebble reports is one AdviseStall knows, so a
// Pebble upgrade that rewords a reason fails here rather than silently
// degrading the advice to "unknown".

// waitTimeout bounds every wait; the tests never sleep.
const waitTimeout = 30 * time.Second

// openStalling opens a Pebble DB on fs whose stall reasons go to the
// returned channel.
func openStalling(t *testing.T, fs vfs.FS, tune func(*pebble.Options)) (*pebble.DB, <-chan string) {
	t.Helper()
	reasons := make(chan string, 16)
	o := &pebble.Options{
		FS:     fs,
		Logger: testLogger{t},
		EventListener: &pebble.EventListener{
			WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
				select {
				case reasons <- i.Reason:
				default:
				}
			},
		},
	}
	tune(o)
	db, err := pebble.Open("", o)
	if err != nil {
		t.Fatal(err)
	}
	return db, reasons
}

// testLogger sends Pebble's log to the test's, shown only on failure.
type testLogger struct{ t *testing.T }

func (l testLogger) Infof(format string, args ...any)  { l.t.Logf(format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf(format, args...) }
func (l testLogger) Fatalf(format string, args ...any) { l.t.Fatalf(format, args...) }

func expectStall(t *testing.T, reasons <-chan string, done <-chan error, want string) {
	t.Helper()
	select {
	case got := <-reasons:
		if got != want {
			t.Fatalf("stall reason %q, want %q", got, want)
		}
		if a := AdviseStall(got, Tuning{Profile: Balanced}); a.Flag == "" {
			t.Fatalf("AdviseStall does not know Pebble's reason %q", got)
		}
	case err := <-done:
		t.Fatalf("writes finished without a stall (err %v)", err)
	case <-time.After(waitTimeout):
		t.Fatal("no stall")
	}
}

func waitDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("writes still stalled")
	}
}

func TestPebbleStallL0(t *testing.T) {
	db, reasons := openStalling(t, vfs.NewMem(), func(o *pebble.Options) {
		o.DisableAutomaticCompactions = true
		o.L0CompactionThreshold = 1
		o.L0StopWritesThreshold = 2
	})
	defer db.Close()
	// Two overlapping flushes make two L0 sublevels, reaching the stop.
	for range 2 {
		if err := db.Set([]byte("a"), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Set([]byte("z"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- db.Flush() }() // rotating the memtable stalls
	expectStall(t, reasons, done, StallL0ReadAmp)
	// A manual compaction of L0 (which does not overlap the stalled
	// memtable) ends the stall.
	if err := db.Compact(context.Background(), []byte("a"), []byte("b"), false); err != nil {
		t.Fatal(err)
	}
	waitDone(t, done)
}

// gatedFS holds back the creation of every SSTable until gate is closed, so
// flushes cannot finish and memtables queue up.
type gatedFS struct {
	vfs.FS
	gate chan struct{}
}

func (fs gatedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		<-fs.gate
	}
	return fs.FS.Create(name, category)
}

func TestPebbleStallMemTable(t *testing.T) {
	fs := gatedFS{FS: vfs.NewMem(), gate: make(chan struct{})}
	db, reasons := openStalling(t, fs, func(o *pebble.Options) {
		o.MemTableSize = 1 << 20
		o.MemTableStopWritesThreshold = 2
	})
	defer db.Close()
	// Runs before Close, so a failing test does not leave a flush blocked.
	release := sync.OnceFunc(func() { close(fs.gate) })
	defer release()
	done := make(chan error, 1)
	go func() {
		val := bytes.Repeat([]byte("x"), 32<<10)
		for i := range 1024 { // 32MiB: far more than two 1MiB memtables
			if err := db.Set([]byte{byte(i >> 8), byte(i)}, val, pebble.NoSync); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	expectStall(t, reasons, done, StallMemTableCount)
	release()
	waitDone(t, done)
}
