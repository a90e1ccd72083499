package compaction

import (
	"testing"
)

func TestAdviseStall(t *testing.T) {
	tuning := func(p Profile, o Overrides) Tuning {
		t.Helper()
		tu, err := Resolve(p, o)
		if err != nil {
			t.Fatal(err)
		}
		return tu
	}
	big := int64(3 << 30)
	most := maxCompactions
	f := func(reason string, tu Tuning, wantFlag, wantMsg string) {
		t.Helper()
		a := AdviseStall(reason, tu)
		if a.Reason != reason || a.Flag != wantFlag || a.Message != wantMsg {
			t.Fatalf("AdviseStall(%q, %s) =\n  %+v\nwant flag %q message\n  %s", reason, tu.Profile, a, wantFlag, wantMsg)
		}
	}
	f(StallMemTableCount, tuning(Balanced, Overrides{}), "memtable-size",
		"writes stalled: 4 memtables of 64MiB are waiting to flush because flushes are slower than writes; raise --memtable-size (e.g. to 128MiB) or use --compaction-profile=write-heavy; if stalls persist, the disk's write throughput is the limit")
	f(StallMemTableCount, tuning(WriteHeavy, Overrides{}), "memtable-size",
		"writes stalled: 6 memtables of 128MiB are waiting to flush because flushes are slower than writes; raise --memtable-size (e.g. to 256MiB); if stalls persist, the disk's write throughput is the limit")
	f(StallMemTableCount, tuning(WriteHeavy, Overrides{MemTableSize: &big}), "memtable-size",
		"writes stalled: 6 memtables of 3GiB are waiting to flush because flushes are slower than writes; --memtable-size is at its limit; if stalls persist, the disk's write throughput is the limit")
	f(StallL0ReadAmp, tuning(Balanced, Overrides{}), "l0-stop-writes-threshold",
		"writes stalled: L0 reached 20 sublevels (--l0-stop-writes-threshold) because compactions out of L0 are slower than flushes; raise --l0-stop-writes-threshold (e.g. to 40), --max-concurrent-compactions (e.g. from 2 to 3) or use --compaction-profile=write-heavy")
	f(StallL0ReadAmp, tuning(WriteHeavy, Overrides{MaxConcurrentCompactions: &most}), "l0-stop-writes-threshold",
		"writes stalled: L0 reached 40 sublevels (--l0-stop-writes-threshold) because compactions out of L0 are slower than flushes; raise --l0-stop-writes-threshold (e.g. to 80)")
	f("disk on fire", tuning(ReadHeavy, Overrides{}), "",
		"writes stalled (disk on fire): check disk latency and the LSM shape at /v1/lsm; --compaction-profile=write-heavy tolerates longer write bursts")
	f("disk on fire", tuning(WriteHeavy, Overrides{}), "",
		"writes stalled (disk on fire): check disk latency and the LSM shape at /v1/lsm")
}

// TestAdviceValid checks that every value AdviseStall suggests is one
// Resolve accepts, so following the advice never trades a stall for an error.
func TestAdviceValid(t *testing.T) {
	for _, p := range Profiles() {
		tu, err := ProfileTuning(p)
		if err != nil {
			t.Fatal(err)
		}
		mem, stop, conc := 2*tu.MemTableSize, 2*tu.L0StopWritesThreshold, tu.MaxConcurrentCompactions+1
		if _, err := Resolve(p, Overrides{MemTableSize: &mem, L0StopWritesThreshold: &stop, MaxConcurrentCompactions: &conc}); err != nil {
			t.Fatalf("%s: advised values rejected: %v", p, err)
		}
	}
}
