package batchwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	items := []Item{
		{Op: OpGet, Key: []byte("a")},
		{Op: OpGet, Consistency: ConsistencySerial, Key: []byte("b")},
		{Op: OpPut, Key: []byte("c"), Value: []byte("v")},
		{Op: OpPut, Consistency: ConsistencyOne, Cond: CondIfVersion, Version: Version{TS: 1 << 60, Node: 7}, TTLMillis: 1500, Key: []byte("d"), Value: []byte{}},
		{Op: OpPut, Cond: CondIfAbsent, Key: []byte("e"), Value: bytes.Repeat([]byte{0}, 300)},
		{Op: OpDelete, Consistency: ConsistencyAll, Key: []byte("f")},
		{Op: OpDelete, Cond: CondIfPresent, Key: []byte("\x00\xff")},
	}
	b := AppendRequest(nil, items)
	got, err := DecodeRequest(b, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Value == nil && items[i].Value != nil {
			got[i].Value = []byte{}
		}
	}
	if !reflect.DeepEqual(got, items) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, items)
	}
	// The pinned bytes of one item: a format change must be deliberate.
	one := AppendRequest(nil, items[3:4])
	want := "RKB\x01\x01" + "\x02\x01\x01" + "\x10\x00\x00\x00\x00\x00\x00\x00" + "\x00\x00\x00\x00\x00\x00\x00\x07" + "\xdc\x0b" + "\x01d" + "\x00"
	if string(one) != want {
		t.Fatalf("encoding %q, want %q", one, want)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	v := Version{TS: 42, Node: 3}
	res := []Result{
		{Status: 200, Version: v, Value: []byte("x")},
		{Status: 204, Version: v},
		{Status: 404},
		{Status: 412, Flags: FlagExists, Version: v},
		{Status: 412},
		{Status: 503, Flags: FlagUnprocessed, Message: []byte("unavailable")},
		{Status: 503, Flags: FlagOutcomeUnknown, Message: []byte("outcome unknown")},
	}
	got, err := DecodeResponse(AppendResponse(nil, res), 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, res)
	}
	// Fields a status does not carry are left out, not sent as zeros.
	short := AppendResult(nil, &Result{Status: 404, Version: v, Value: []byte("no"), Message: []byte("no")})
	if string(short) != "\x94\x03\x00" {
		t.Fatalf("404 encodes as %q", short)
	}
	// The pinned bytes of the results that carry something.
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{Status: 412, Flags: FlagExists, Version: v}, "\x9c\x03\x02" + "\x00\x00\x00\x00\x00\x00\x00\x2a" + "\x00\x00\x00\x00\x00\x00\x00\x03"},
		{Result{Status: 412, Version: v}, "\x9c\x03\x00"},
		{Result{Status: 503, Flags: FlagUnprocessed | FlagOutcomeUnknown, Message: []byte("m")}, "\xf7\x03\x05\x01m"},
		{Result{Status: 200, Version: v, Value: []byte("x")}, "\xc8\x01\x00" + "\x00\x00\x00\x00\x00\x00\x00\x2a" + "\x00\x00\x00\x00\x00\x00\x00\x03" + "\x01x"},
	} {
		if got := AppendResult(nil, &tc.r); string(got) != tc.want {
			t.Errorf("%+v encodes as %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestDecodeRefusals(t *testing.T) {
	good := AppendRequest(nil, []Item{{Op: OpPut, Key: []byte("k"), Value: []byte("v")}})
	for _, tc := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrMalformed},
		{"no magic", []byte("RKB\x02\x00"), ErrMalformed},
		{"no count", []byte(Magic), ErrMalformed},
		{"too many", AppendHeader(nil, 1001), ErrTooMany},
		{"count beyond body", append(AppendHeader(nil, 900), 1, 0, 0), ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing", append(bytes.Clone(good), 0), ErrMalformed},
		{"unknown op", append(AppendHeader(nil, 1), 9, 0, 0, 1, 'k'), ErrMalformed},
		{"unknown consistency", append(AppendHeader(nil, 1), 1, 5, 0, 1, 'k'), ErrMalformed},
		{"unknown condition", append(AppendHeader(nil, 1), 1, 0, 4, 1, 'k'), ErrMalformed},
		{"short version", append(AppendHeader(nil, 1), 3, 0, 1, 0, 0), ErrMalformed},
		{"key length lie", append(AppendHeader(nil, 1), 1, 0, 0, 0xff, 0xff, 0x03, 'k'), ErrMalformed},
		{"bad varint", append(AppendHeader(nil, 1), 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRequest(tc.b, 1000, nil)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if len(got) != 0 {
				t.Fatalf("a refused body yields %d items", len(got))
			}
		})
	}
	for _, b := range [][]byte{
		append(AppendHeader(nil, 1), 0x63, 0), // status 99
		append(AppendHeader(nil, 1), 0xc8, 0x01, 0),
		append(AppendHeader(nil, 2), 0x94, 0x03, 0),
	} {
		if _, err := DecodeResponse(b, 1000, nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("answer %q: err %v, want malformed", b, err)
		}
	}
}

// FuzzDecodeRequest: any bytes decode to items or an error, never a
// panic; what decodes re-encodes to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, []Item{{Op: OpGet, Key: []byte("a")}, {Op: OpPut, Cond: CondIfVersion, TTLMillis: 9, Key: []byte("b"), Value: []byte("v")}}))
	f.Add(AppendHeader(nil, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := DecodeRequest(b, 1000, nil)
		if err != nil {
			return
		}
		// Varints may come non-minimal; the items must survive a round trip.
		again, err := DecodeRequest(AppendRequest(nil, items), 1000, nil)
		if err != nil || !reflect.DeepEqual(norm(again), norm(items)) {
			t.Fatalf("%q: items %+v re-decode as %+v, %v", b, items, again, err)
		}
	})
}

// FuzzDecodeResponse: the client takes a node's answer as it comes.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, []Result{{Status: 200, Value: []byte("x")}, {Status: 503, Flags: FlagUnprocessed, Message: []byte("m")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeResponse(b, 1000, nil)
		if err != nil {
			return
		}
		again, err := DecodeResponse(AppendResponse(nil, res), 1000, nil)
		if err != nil || len(again) != len(res) {
			t.Fatalf("%q: results %+v re-decode as %+v, %v", b, res, again, err)
		}
		for i := range res {
			if res[i].Status != again[i].Status || res[i].Flags != again[i].Flags || res[i].Version != again[i].Version ||
				!bytes.Equal(res[i].Value, again[i].Value) || !bytes.Equal(res[i].Message, again[i].Message) {
				t.Fatalf("result %d: %+v re-decodes as %+v", i, res[i], again[i])
			}
		}
	})
}

// norm makes empty and nil byte slices compare equal.
func norm(items []Item) []Item {
	out := make([]Item, len(items))
	for i, it := range items {
		if len(it.Value) == 0 {
			it.Value = nil
		}
		out[i] = it
	}
	return out
}
