package peer

import "testing"

// TestPendingMark: the pending mark survives a read answer beside
// ordinary records and absences, and no real record is mistaken for it.
func TestPendingMark(t *testing.T) {
	b := AppendRecordsHeader(nil, 3)
	b = AppendPending(b)
	b = AppendRecord(b, nil)
	b = AppendRecord(b, wireRec(5, "v"))
	got, err := DecodeRecords(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !IsPending(got[0]) || got[1] != nil || IsPending(got[2]) || len(got[2]) == 0 {
		t.Fatalf("decoded %x", got)
	}
	// A one-byte record that is not the mark is still refused.
	bad := AppendRecord(AppendRecordsHeader(nil, 1), []byte{0x01})
	if _, err := DecodeRecords(bad, 1); err == nil {
		t.Error("a one-byte non-record decoded")
	}
}
