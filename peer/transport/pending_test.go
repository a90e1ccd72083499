package transport

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/peer"
)

// TestPendingMark: a pending answer, with the old owners it names and the
// record it carries, survives a read answer beside ordinary records and
// absences; the older form without owners still decodes; and no real
// record is mistaken for either.
func TestPendingMark(t *testing.T) {
	b := AppendRecordsHeader(nil, 5)
	b = AppendPending(b, nil, nil)
	b = AppendRecord(b, nil)
	b = AppendRecord(b, wireRec(5, "v"))
	b = AppendPending(b, wireRec(6, "partial"), []string{"n1", "n4", "n6"})
	b = AppendRecord(b, append([]byte{pendingMark}, wireRec(7, "old form")...))
	got, err := DecodeRecords(b, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !IsPending(got[0]) || got[1] != nil || IsPending(got[2]) || len(got[2]) == 0 || !IsPending(got[3]) || !IsPending(got[4]) {
		t.Fatalf("decoded %x", got)
	}
	for i, want := range []struct {
		rec  []byte
		from []string
	}{
		0: {nil, nil},
		3: {wireRec(6, "partial"), []string{"n1", "n4", "n6"}},
		4: {wireRec(7, "old form"), nil},
	} {
		if !IsPending(got[i]) {
			continue
		}
		rec, from, err := DecodePending(got[i])
		if err != nil || string(rec) != string(want.rec) || !slices.Equal(from, want.from) {
			t.Errorf("answer %d: %q %q %v, want %q %q", i, rec, from, err, want.rec, want.from)
		}
	}
	// Owner ids as long as a --node-id may be, and a record of 300 bytes
	// (two-byte lengths), round-trip too.
	long := []string{strings.Repeat("a", peer.MaxNodeIDLen), "b", strings.Repeat("c", 200)}
	big := wireRec(8, strings.Repeat("v", 300))
	one, err := DecodeRecords(AppendPending(AppendRecordsHeader(nil, 1), big, long), 1)
	if err != nil {
		t.Fatal(err)
	}
	if rec, from, err := DecodePending(one[0]); err != nil || string(rec) != string(big) || !slices.Equal(from, long) {
		t.Fatalf("long owners: %d-byte record, %d owners, %v", len(rec), len(from), err)
	}
	// A pending answer around a broken record, or with a broken owner
	// list, is refused.
	for _, bad := range [][]byte{
		AppendPending(AppendRecordsHeader(nil, 1), []byte{1, 2}, []string{"n1"}),
		AppendRecord(AppendRecordsHeader(nil, 1), []byte{pendingFromMark, 3, 2, 'n', '1'}),              // 3 owners, 1 there
		AppendRecord(AppendRecordsHeader(nil, 1), binary.AppendUvarint([]byte{pendingFromMark}, 1<<20)), // too many
	} {
		if _, err := DecodeRecords(bad, 1); err == nil {
			t.Errorf("a broken pending answer %x decoded", bad)
		}
	}
	// A one-byte record that is not a mark is still refused.
	bad := AppendRecord(AppendRecordsHeader(nil, 1), []byte{0x01})
	if _, err := DecodeRecords(bad, 1); err == nil {
		t.Error("a one-byte non-record decoded")
	}
}
