package memtable

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestEncoding pins the on-disk record format: a change here breaks every
// store already written, so the golden file must only ever grow.
//
//	encode ts=1 node=2 [tombstone] [expires=3] value=abc
//	----
//	<hex>
//	decode <hex>
//	----
//	<record> | error
func TestEncoding(t *testing.T) {
	datadriven.RunTest(t, "testdata/encoding", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "encode":
			var r Record
			for _, a := range d.CmdArgs {
				switch a.Key {
				case "ts":
					r.TS = mustUint(t, a.Vals[0])
				case "node":
					r.Node = mustUint(t, a.Vals[0])
				case "tombstone":
					r.Tombstone = true
				case "expires":
					r.ExpiresAt = int64(mustUint(t, a.Vals[0]))
				case "value":
					r.Value = []byte(a.Vals[0])
				default:
					d.Fatalf(t, "unknown arg %s", a.Key)
				}
			}
			enc := r.Append(nil)
			if len(enc) != r.EncodedLen() && !r.Tombstone {
				t.Fatalf("EncodedLen %d, encoding is %d bytes", r.EncodedLen(), len(enc))
			}
			back, err := Decode(enc)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if got, want := describe(back), describe(r); got != want && !r.Tombstone {
				t.Fatalf("round trip: got %s, want %s", got, want)
			}
			return hex.EncodeToString(enc) + "\n"
		case "decode":
			b, err := hex.DecodeString(strings.TrimSpace(d.Input))
			if err != nil {
				d.Fatalf(t, "bad hex: %v", err)
			}
			r, err := Decode(b)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return describe(r) + "\n"
		}
		d.Fatalf(t, "unknown command %s", d.Cmd)
		return ""
	})
}

func describe(r Record) string {
	s := fmt.Sprintf("ts=%d node=%d", r.TS, r.Node)
	if r.Tombstone {
		s += " tombstone"
	}
	if r.ExpiresAt != 0 {
		s += fmt.Sprintf(" expires=%d", r.ExpiresAt)
	}
	return s + fmt.Sprintf(" value=%q", r.Value)
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func FuzzDecode(f *testing.F) {
	f.Add(Record{Version: Version{TS: 1, Node: 2}, Value: []byte("v")}.appendTo())
	f.Add(Record{Version: Version{TS: 1, Node: 2}, Tombstone: true}.appendTo())
	f.Add(Record{Version: Version{TS: 1, Node: 2}, ExpiresAt: 99, Value: []byte("ttl")}.appendTo())
	f.Add([]byte{})
	f.Add([]byte{1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if _, err2 := DecodeVersion(b); err2 == nil && len(b) >= headerLen && b[0] == formatV1 && b[1]&^knownFlags == 0 && b[1]&flagExpiry == 0 && b[1]&flagTombstone == 0 {
				t.Fatalf("Decode failed on a valid plain record: %v", err)
			}
			return
		}
		// Whatever decodes must re-encode to the same bytes: there is one
		// encoding per record, so replicas compare records byte for byte.
		if enc := r.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		v, err := DecodeVersion(b)
		if err != nil || v != r.Version {
			t.Fatalf("DecodeVersion = %v, %v; Decode says %v", v, err, r.Version)
		}
	})
}

func (r Record) appendTo() []byte { return r.Append(nil) }
