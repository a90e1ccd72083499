package peer

import "testing"

// TestPendingMark: the pending mark survives a read answer beside
// ordinary records and absences, and no real record is mistaken for it.
func TestPendingMark(t *testing.T) {
	b := AppendRecordsHeader(nil, 4)
	b = AppendPending(b, nil)
	b = AppendRecord(b, nil)
	b = AppendRecord(b, wireRec(5, "v"))
	b = AppendPending(b, wireRec(6, "partial"))
	got, err := DecodeRecords(b, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !IsPending(got[0]) || PendingRecord(got[0]) != nil || got[1] != nil || IsPending(got[2]) || len(got[2]) == 0 ||
		!IsPending(got[3]) || string(PendingRecord(got[3])) != string(wireRec(6, "partial")) {
		t.Fatalf("decoded %x", got)
	}
	// A pending answer around a broken record is refused.
	if _, err := DecodeRecords(AppendPending(AppendRecordsHeader(nil, 1), []byte{1, 2}), 1); err == nil {
		t.Error("a pending answer with a broken record decoded")
	}
	// A one-byte record that is not the mark is still refused.
	bad := AppendRecord(AppendRecordsHeader(nil, 1), []byte{0x01})
	if _, err := DecodeRecords(bad, 1); err == nil {
		t.Error("a one-byte non-record decoded")
	}
}
