package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
)

// wireRec returns a valid encoded record.
func wireRec(ts uint64, value string) []byte {
	r := memtable.Record{Version: memtable.Version{TS: ts, Node: 7}, Value: []byte(value)}
	return r.Append(nil)
}

// wireTombstone returns a valid encoded tombstone with an expiry.
func wireTombstone(ts uint64) []byte {
	r := memtable.Record{Version: memtable.Version{TS: ts, Node: 9}, Tombstone: true, ExpiresAt: 1700000000000}
	return r.Append(nil)
}

// wireMuts returns n valid mutations with distinct keys.
func wireMuts(n int) []peer.Mutation {
	ms := make([]peer.Mutation, n)
	for i := range ms {
		ms[i] = peer.Mutation{Key: fmt.Appendf(nil, "key-%06d", i), Record: wireRec(uint64(i+1), fmt.Sprint("v", i))}
		if i%5 == 4 {
			ms[i].Record = wireTombstone(uint64(i + 1))
		}
	}
	return ms
}

func sameMutations(a, b []peer.Mutation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Record, b[i].Record) {
			return false
		}
	}
	return true
}

func sameScan(a, b peer.LocalScan) bool {
	return a.Limit == b.Limit && bytes.Equal(a.Prefix, b.Prefix) && bytes.Equal(a.After, b.After)
}

func samePage(a, b peer.LocalPage) bool { return a.More == b.More && sameMutations(a.Items, b.Items) }

// bigRecord is a record of a 1 MiB value (the default --max-value-size).
var bigRecord = wireRec(42, strings.Repeat("x", 1<<20))

func TestWireApplyRoundTrip(t *testing.T) {
	maxKey := bytes.Repeat([]byte{0xff}, peer.MaxKeySize)
	for _, tc := range []struct {
		name string
		ms   []peer.Mutation
	}{
		{"nil", nil},
		{"empty", []peer.Mutation{}},
		{"one", wireMuts(1)},
		{"many", wireMuts(100)},
		{"max batch", wireMuts(MaxBatch)},
		{"max key", []peer.Mutation{{Key: maxKey, Record: wireRec(1, "v")}}},
		{"binary key", []peer.Mutation{{Key: []byte{0, 1, 0x80, 0xff}, Record: wireRec(1, "")}}},
		{"big record", []peer.Mutation{{Key: []byte("big"), Record: bigRecord}, {Key: []byte("small"), Record: wireRec(2, "s")}}},
		{"tombstone", []peer.Mutation{{Key: []byte("t"), Record: wireTombstone(3)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := AppendApply(nil, tc.ms)
			got, err := DecodeApply(msg)
			if err != nil {
				t.Fatalf("DecodeApply: %v", err)
			}
			if !sameMutations(got, tc.ms) {
				t.Fatalf("round trip changed the mutations: got %d, want %d", len(got), len(tc.ms))
			}
			if again := AppendApply(nil, got); !bytes.Equal(again, msg) {
				t.Fatal("re-encoding the decoded mutations gives other bytes")
			}
			// Appending to dst keeps dst.
			prefixed := AppendApply([]byte("prefix"), tc.ms)
			if !bytes.HasPrefix(prefixed, []byte("prefix")) || !bytes.Equal(prefixed[len("prefix"):], msg) {
				t.Fatal("AppendApply with a non-empty dst")
			}
		})
	}
}

func TestWireScanRoundTrip(t *testing.T) {
	maxKey := bytes.Repeat([]byte{'k'}, peer.MaxKeySize)
	for _, q := range []peer.LocalScan{
		{Limit: 1},
		{Limit: 100, Prefix: []byte("user:")},
		{Limit: 100, Prefix: []byte("user:"), After: []byte("user:42")},
		{Limit: peer.MaxScanLimit, After: []byte{0, 0xff}},
		{Limit: peer.MaxScanLimit, Prefix: maxKey, After: maxKey},
	} {
		msg := AppendScan(nil, q)
		got, err := DecodeScan(msg)
		if err != nil {
			t.Fatalf("%+v: DecodeScan: %v", q, err)
		}
		if !sameScan(got, q) {
			t.Fatalf("round trip: got %+v, want %+v", got, q)
		}
		if again := AppendScan(nil, got); !bytes.Equal(again, msg) {
			t.Fatalf("%+v: re-encoding gives other bytes", q)
		}
	}
}

func TestWireScanPageRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    peer.LocalPage
	}{
		{"empty", peer.LocalPage{}},
		{"empty more", peer.LocalPage{More: true}},
		{"one", peer.LocalPage{Items: wireMuts(1)}},
		{"many more", peer.LocalPage{Items: wireMuts(250), More: true}},
		{"many last", peer.LocalPage{Items: wireMuts(250)}},
		{"max items", peer.LocalPage{Items: wireMuts(peer.MaxScanLimit), More: true}},
		{"big record", peer.LocalPage{Items: []peer.Mutation{{Key: []byte("big"), Record: bigRecord}}, More: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := AppendScanPage(nil, tc.p)
			got, err := DecodeScanPage(msg)
			if err != nil {
				t.Fatalf("DecodeScanPage: %v", err)
			}
			if !samePage(got, tc.p) {
				t.Fatalf("round trip: more=%v items=%d, want more=%v items=%d", got.More, len(got.Items), tc.p.More, len(tc.p.Items))
			}
			if again := AppendScanPage(nil, got); !bytes.Equal(again, msg) {
				t.Fatal("re-encoding gives other bytes")
			}
		})
	}
}

// TestWireAliasing: decoded slices alias the message but have no spare
// capacity, so appending to one cannot overwrite the message.
func TestWireAliasing(t *testing.T) {
	msg := AppendApply(nil, wireMuts(3))
	orig := bytes.Clone(msg)
	ms, err := DecodeApply(msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		_ = append(m.Key, "XXXXXXXX"...)
		_ = append(m.Record, "XXXXXXXX"...)
	}
	if !bytes.Equal(msg, orig) {
		t.Fatal("appending to a decoded slice overwrote the message")
	}
	q, err := DecodeScan(AppendScan(nil, peer.LocalScan{Limit: 1, Prefix: []byte("p"), After: []byte("a")}))
	if err != nil {
		t.Fatal(err)
	}
	if cap(q.Prefix) != len(q.Prefix) || cap(q.After) != len(q.After) {
		t.Fatal("decoded scan fields have spare capacity")
	}
}

// uv appends a uvarint.
func uv(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// field appends a length-prefixed field.
func field(b []byte, f []byte) []byte { return append(uv(b, uint64(len(f))), f...) }

func TestWireApplyRejects(t *testing.T) {
	good := AppendApply(nil, wireMuts(3))
	one := func(key, rec []byte) []byte {
		return field(field(uv([]byte{'A', 1}, 1), key), rec)
	}
	unknownFlags := wireRec(1, "v")
	unknownFlags[1] = 0x80
	tombWithValue := wireTombstone(1)
	tombWithValue = append(tombWithValue, 'x')
	badVersion := wireRec(1, "v")
	badVersion[0] = 2
	zeroExpiry := (&memtable.Record{Version: memtable.Version{TS: 1}, ExpiresAt: 1}).Append(nil)
	binary.BigEndian.PutUint64(zeroExpiry[18:], 0)

	cases := map[string][]byte{
		"nil":                nil,
		"kind only":          {'A'},
		"header only":        {'A', 1},
		"wrong kind":         append([]byte{'S'}, good[1:]...),
		"page kind":          append([]byte{'P'}, good[1:]...),
		"lower-case kind":    append([]byte{'a'}, good[1:]...),
		"version 0":          append([]byte{'A', 0}, good[2:]...),
		"version 2":          append([]byte{'A', 2}, good[2:]...),
		"trailing byte":      append(bytes.Clone(good), 0),
		"trailing message":   append(bytes.Clone(good), good...),
		"count too high":     AppendApply(nil, wireMuts(MaxBatch+1)),
		"count says more":    append([]byte{'A', 1, 4}, good[3:]...),
		"count says fewer":   append([]byte{'A', 1, 2}, good[3:]...),
		"count overflow":     append([]byte{'A', 1}, bytes.Repeat([]byte{0xff}, 11)...),
		"count huge":         uv([]byte{'A', 1}, 1<<62),
		"key too long":       one(bytes.Repeat([]byte{'k'}, peer.MaxKeySize+1), wireRec(1, "v")),
		"empty key":          one(nil, wireRec(1, "v")),
		"key length huge":    uv(uv([]byte{'A', 1}, 1), 1<<40),
		"record length huge": uv(field(uv([]byte{'A', 1}, 1), []byte("k")), 1<<40),
		"record missing":     field(uv([]byte{'A', 1}, 1), []byte("k")),
		"empty record":       one([]byte("k"), nil),
		"garbage record":     one([]byte("k"), []byte("not a record")),
		"short record":       one([]byte("k"), wireRec(1, "")[:17]),
		"record version":     one([]byte("k"), badVersion),
		"record flags":       one([]byte("k"), unknownFlags),
		"tombstone value":    one([]byte("k"), tombWithValue),
		"zero expiry":        one([]byte("k"), zeroExpiry),
		"short expiry":       one([]byte("k"), (&memtable.Record{ExpiresAt: 5}).Append(nil)[:20]),
	}
	// A bad record in the middle of a valid list.
	mid := wireMuts(3)
	mid[1].Record = []byte("garbage")
	cases["bad record mid-list"] = AppendApply(nil, mid)
	for i := range len(good) {
		cases[fmt.Sprintf("truncated to %d", i)] = good[:i]
	}
	for name, msg := range cases {
		ms, err := DecodeApply(msg)
		if err == nil {
			t.Errorf("%s: DecodeApply(%q) = %d mutations, want an error", name, clipBytes(msg), len(ms))
			continue
		}
		if !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("%s: error %v does not match peer.ErrBadMessage", name, err)
		}
	}
}

func TestWireScanRejects(t *testing.T) {
	good := AppendScan(nil, peer.LocalScan{Limit: 10, Prefix: []byte("pre"), After: []byte("pre-after")})
	cases := map[string][]byte{
		"nil":              nil,
		"wrong kind":       append([]byte{'A'}, good[1:]...),
		"version 2":        append([]byte{'S', 2}, good[2:]...),
		"trailing byte":    append(bytes.Clone(good), 0),
		"zero limit":       AppendScan(nil, peer.LocalScan{Limit: 0}),
		"limit too high":   AppendScan(nil, peer.LocalScan{Limit: peer.MaxScanLimit + 1}),
		"negative limit":   AppendScan(nil, peer.LocalScan{Limit: -1}),
		"prefix too long":  AppendScan(nil, peer.LocalScan{Limit: 1, Prefix: bytes.Repeat([]byte{'p'}, peer.MaxKeySize+1)}),
		"after too long":   AppendScan(nil, peer.LocalScan{Limit: 1, After: bytes.Repeat([]byte{'a'}, peer.MaxKeySize+1)}),
		"limit overflow":   append([]byte{'S', 1}, bytes.Repeat([]byte{0xff}, 11)...),
		"prefix len huge":  uv(uv([]byte{'S', 1}, 1), 1<<40),
		"missing after":    field(uv([]byte{'S', 1}, 1), []byte("p")),
		"after truncated":  uv(field(uv([]byte{'S', 1}, 1), []byte("p")), 5),
		"apply message":    AppendApply(nil, wireMuts(1)),
		"scan page":        AppendScanPage(nil, peer.LocalPage{}),
		"header only":      {'S', 1},
		"kind only":        {'S'},
		"page as scan":     append([]byte{'S', 1}, AppendScanPage(nil, peer.LocalPage{Items: wireMuts(1)})[2:]...),
		"two scans joined": append(bytes.Clone(good), good...),
	}
	for i := range len(good) {
		cases[fmt.Sprintf("truncated to %d", i)] = good[:i]
	}
	for name, msg := range cases {
		q, err := DecodeScan(msg)
		if err == nil {
			t.Errorf("%s: DecodeScan(%q) = %+v, want an error", name, clipBytes(msg), q)
			continue
		}
		if !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("%s: error %v does not match peer.ErrBadMessage", name, err)
		}
	}
}

func TestWireScanPageRejects(t *testing.T) {
	good := AppendScanPage(nil, peer.LocalPage{Items: wireMuts(3), More: true})
	bad := wireMuts(2)
	bad[1].Record = wireRec(1, "v")[:10]
	cases := map[string][]byte{
		"nil":            nil,
		"wrong kind":     append([]byte{'A'}, good[1:]...),
		"version 2":      append([]byte{'P', 2}, good[2:]...),
		"no more flag":   {'P', 1},
		"more flag 2":    append([]byte{'P', 1, 2}, good[3:]...),
		"more flag 0xff": append([]byte{'P', 1, 0xff}, good[3:]...),
		"no count":       {'P', 1, 0},
		"trailing byte":  append(bytes.Clone(good), 0),
		"too many items": AppendScanPage(nil, peer.LocalPage{Items: wireMuts(peer.MaxScanLimit + 1)}),
		"count huge":     uv([]byte{'P', 1, 1}, 1<<50),
		"empty key":      AppendScanPage(nil, peer.LocalPage{Items: []peer.Mutation{{Record: wireRec(1, "v")}}}),
		"key too long":   AppendScanPage(nil, peer.LocalPage{Items: []peer.Mutation{{Key: bytes.Repeat([]byte{'k'}, peer.MaxKeySize+1), Record: wireRec(1, "v")}}}),
		"bad record":     AppendScanPage(nil, peer.LocalPage{Items: bad}),
		"apply message":  AppendApply(nil, wireMuts(1)),
	}
	for i := range len(good) {
		cases[fmt.Sprintf("truncated to %d", i)] = good[:i]
	}
	for name, msg := range cases {
		p, err := DecodeScanPage(msg)
		if err == nil {
			t.Errorf("%s: DecodeScanPage(%q) = %d items, want an error", name, clipBytes(msg), len(p.Items))
			continue
		}
		if !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("%s: error %v does not match peer.ErrBadMessage", name, err)
		}
	}
}

func clipBytes(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// checkMutations checks what every decoded list of mutations promises:
// keys of 1 to peer.MaxKeySize bytes, records that memtable decodes and whose
// decoded form encodes back to the same bytes.
func checkMutations(t *testing.T, ms []peer.Mutation, max int) {
	t.Helper()
	if len(ms) > max {
		t.Fatalf("%d mutations, more than %d", len(ms), max)
	}
	for i, m := range ms {
		if len(m.Key) == 0 || len(m.Key) > peer.MaxKeySize {
			t.Fatalf("mutation %d: key of %d bytes", i, len(m.Key))
		}
		r, err := memtable.Decode(m.Record)
		if err != nil {
			t.Fatalf("mutation %d: record %x does not decode: %v", i, m.Record, err)
		}
		if again := r.Append(nil); !bytes.Equal(again, m.Record) {
			t.Fatalf("mutation %d: record %x re-encodes as %x", i, m.Record, again)
		}
	}
}

// fuzzSeedsApply are valid apply messages, and a few near misses.
func fuzzSeedsApply() [][]byte {
	return [][]byte{
		AppendApply(nil, nil),
		AppendApply(nil, wireMuts(1)),
		AppendApply(nil, wireMuts(6)),
		AppendApply(nil, []peer.Mutation{{Key: []byte{0}, Record: wireTombstone(1)}}),
		AppendApply(nil, []peer.Mutation{{Key: []byte("k"), Record: (&memtable.Record{Version: memtable.Version{TS: 5, Node: 1}, ExpiresAt: 99, Value: []byte("v")}).Append(nil)}}),
		// Non-minimal varint count (0x81 0x00 = 1): valid, not canonical.
		append([]byte{'A', 1, 0x81, 0x00}, AppendApply(nil, wireMuts(1))[3:]...),
		{'A', 1},
		{'A', 2, 0},
	}
}

func FuzzDecodeApply(f *testing.F) {
	for _, s := range fuzzSeedsApply() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		ms, err := DecodeApply(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("DecodeApply modified its input")
		}
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("error %v does not match peer.ErrBadMessage", err)
			}
			return
		}
		checkMutations(t, ms, MaxBatch)
		again := AppendApply(nil, ms)
		ms2, err := DecodeApply(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !sameMutations(ms, ms2) {
			t.Fatal("re-encoded message decodes differently")
		}
		if !bytes.Equal(AppendApply(nil, ms2), again) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

func FuzzDecodeScan(f *testing.F) {
	for _, q := range []peer.LocalScan{
		{Limit: 1},
		{Limit: 100, Prefix: []byte("user:"), After: []byte("user:7")},
		{Limit: peer.MaxScanLimit, After: []byte{0xff}},
	} {
		f.Add(AppendScan(nil, q))
	}
	f.Add([]byte{'S', 1, 0, 0, 0})
	f.Add([]byte{'S', 1, 0x80, 0x01, 0, 0}) // limit 128
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		q, err := DecodeScan(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("DecodeScan modified its input")
		}
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("error %v does not match peer.ErrBadMessage", err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > peer.MaxScanLimit || len(q.Prefix) > peer.MaxKeySize || len(q.After) > peer.MaxKeySize {
			t.Fatalf("decoded an out-of-range scan: limit %d, prefix %d bytes, after %d bytes", q.Limit, len(q.Prefix), len(q.After))
		}
		again := AppendScan(nil, q)
		q2, err := DecodeScan(again)
		if err != nil {
			t.Fatalf("re-encoded scan does not decode: %v", err)
		}
		if !sameScan(q, q2) {
			t.Fatalf("re-encoded scan decodes as %+v, want %+v", q2, q)
		}
		if !bytes.Equal(AppendScan(nil, q2), again) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

func FuzzDecodeScanPage(f *testing.F) {
	for _, p := range []peer.LocalPage{
		{},
		{More: true},
		{Items: wireMuts(1)},
		{Items: wireMuts(6), More: true},
	} {
		f.Add(AppendScanPage(nil, p))
	}
	f.Add([]byte{'P', 1, 2, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		p, err := DecodeScanPage(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("DecodeScanPage modified its input")
		}
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("error %v does not match peer.ErrBadMessage", err)
			}
			return
		}
		checkMutations(t, p.Items, peer.MaxScanLimit)
		again := AppendScanPage(nil, p)
		p2, err := DecodeScanPage(again)
		if err != nil {
			t.Fatalf("re-encoded page does not decode: %v", err)
		}
		if !samePage(p, p2) {
			t.Fatal("re-encoded page decodes differently")
		}
		if !bytes.Equal(AppendScanPage(nil, p2), again) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

func appendRecords(recs [][]byte) []byte {
	b := AppendRecordsHeader(nil, len(recs))
	for _, r := range recs {
		b = AppendRecord(b, r)
	}
	return b
}

func TestReadRoundTrip(t *testing.T) {
	ms := wireMuts(3)
	keys := [][]byte{ms[0].Key, []byte("absent"), ms[2].Key}
	got, err := DecodeRead(AppendRead(nil, keys))
	if err != nil || len(got) != len(keys) {
		t.Fatalf("DecodeRead: %d keys, %v", len(got), err)
	}
	for i := range keys {
		if !bytes.Equal(got[i], keys[i]) {
			t.Errorf("key %d = %q, want %q", i, got[i], keys[i])
		}
	}
	recs := [][]byte{ms[0].Record, nil, ms[2].Record}
	out, err := DecodeRecords(appendRecords(recs), len(recs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if !bytes.Equal(out[i], recs[i]) || (out[i] == nil) != (recs[i] == nil) {
			t.Errorf("record %d = %x, want %x", i, out[i], recs[i])
		}
	}
	for name, c := range map[string]struct {
		msg []byte
		n   int
	}{
		"count mismatch": {appendRecords(recs), 2},
		"bad record":     {appendRecords([][]byte{{1, 2, 3}}), 1},
		"truncated":      {appendRecords(recs)[:10], 3},
		"trailing":       {append(appendRecords(recs), 0), 3},
		"wrong kind":     {AppendRead(nil, keys), 3},
	} {
		if _, err := DecodeRecords(c.msg, c.n); !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("%s: err = %v, want peer.ErrBadMessage", name, err)
		}
	}
}

func FuzzDecodeRead(f *testing.F) {
	f.Add(AppendRead(nil, [][]byte{[]byte("k")}))
	f.Add(AppendRead(nil, [][]byte{[]byte("a"), {0xff, 0}, bytes.Repeat([]byte{'x'}, peer.MaxKeySize)}))
	f.Add([]byte{'R', 1, 0})
	f.Add([]byte{'R', 1, 65})
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		keys, err := DecodeRead(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("DecodeRead modified its input")
		}
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("error %v does not match peer.ErrBadMessage", err)
			}
			return
		}
		if len(keys) < 1 || len(keys) > MaxReadBatch {
			t.Fatalf("decoded %d keys", len(keys))
		}
		for _, k := range keys {
			if len(k) < 1 || len(k) > peer.MaxKeySize {
				t.Fatalf("decoded a key of %d bytes", len(k))
			}
		}
		keys2, err := DecodeRead(AppendRead(nil, keys))
		if err != nil || len(keys2) != len(keys) {
			t.Fatalf("re-encoded read decodes as %d keys, %v", len(keys2), err)
		}
		for i := range keys {
			if !bytes.Equal(keys[i], keys2[i]) {
				t.Fatal("re-encoded read decodes differently")
			}
		}
	})
}

func FuzzDecodeRecords(f *testing.F) {
	ms := wireMuts(4)
	f.Add(appendRecords([][]byte{ms[0].Record}), 1)
	f.Add(appendRecords([][]byte{ms[1].Record, nil, ms[3].Record}), 3)
	f.Add([]byte{'V', 1, 1, 0}, 1)
	f.Add(AppendPending(AppendRecord(AppendRecordsHeader(nil, 2), ms[2].Record), ms[0].Record, []string{"n1", "n2"}), 2)
	f.Add(AppendPending(AppendRecordsHeader(nil, 1), nil, nil), 1)
	f.Fuzz(func(t *testing.T, msg []byte, n int) {
		if n < 0 || n > MaxReadBatch {
			return
		}
		orig := bytes.Clone(msg)
		recs, err := DecodeRecords(msg, n)
		if !bytes.Equal(msg, orig) {
			t.Fatal("DecodeRecords modified its input")
		}
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("error %v does not match peer.ErrBadMessage", err)
			}
			return
		}
		if len(recs) != n {
			t.Fatalf("%d records for %d keys", len(recs), n)
		}
		for _, r := range recs {
			if IsPending(r) {
				// A pending answer: its owner list parses, and the record
				// it carries, if any, decodes.
				inner, _, err := DecodePending(r)
				if err != nil {
					t.Fatalf("a pending answer that does not decode got through: %v", err)
				}
				r = inner
			}
			if r != nil {
				if _, err := memtable.Decode(r); err != nil {
					t.Fatalf("a record that does not decode got through: %v", err)
				}
			}
		}
		recs2, err := DecodeRecords(appendRecords(recs), n)
		if err != nil {
			t.Fatalf("re-encoded records do not decode: %v", err)
		}
		for i := range recs {
			if !bytes.Equal(recs[i], recs2[i]) || (recs[i] == nil) != (recs2[i] == nil) {
				t.Fatal("re-encoded records decode differently")
			}
		}
	})
}

// A failed answer for one key travels beside the other keys' records.
func TestWireFailedAnswer(t *testing.T) {
	rec := (&memtable.Record{Version: memtable.Version{TS: 9, Node: 1}, Value: []byte("v")}).Append(nil)
	b := AppendRecordsHeader(nil, 3)
	b = AppendRecord(b, rec)
	b = AppendFailed(b, "engine: corruption in file 000009.sst")
	b = AppendFailed(b, string(make([]byte, 2*maxFailedMsg))) // cut to the bound
	recs, err := DecodeRecords(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if IsFailed(recs[0]) || !IsFailed(recs[1]) || FailedMessage(recs[1]) != "engine: corruption in file 000009.sst" {
		t.Fatalf("records %q", recs)
	}
	if !IsFailed(recs[2]) || len(FailedMessage(recs[2])) != maxFailedMsg {
		t.Fatalf("long message kept %d bytes", len(FailedMessage(recs[2])))
	}
	// An oversized failed answer is refused.
	bad := AppendRecordsHeader(nil, 1)
	msg := append([]byte{failedMark}, make([]byte, maxFailedMsg+1)...)
	bad = AppendRecord(bad, msg)
	if _, err := DecodeRecords(bad, 1); err == nil {
		t.Fatal("an oversized failed answer decoded")
	}
}
