package ring

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/zeebo/xxh3"
)

// TestPlacement pins placement: a change in any output here moves data in
// every running cluster, so rewrite the file (go test ./ring -rewrite) only
// on purpose.
//
//	ring nodes=a,b,c [vnodes=8] [replicas=3]   build a ring; the last one is kept for diff
//	token key=K
//	owners key=K | owners token=T
//	ranges
//	ownership
//	replica-ranges id=ID
//	diff                                       Diff(previous ring, current ring)
func TestPlacement(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var prev, cur *Ring
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var b strings.Builder
			switch d.Cmd {
			case "ring":
				var nodes []string
				vnodes, replicas := 0, 0
				for _, a := range d.CmdArgs {
					switch a.Key {
					case "nodes":
						for _, v := range a.Vals {
							nodes = append(nodes, strings.Split(v, ",")...)
						}
					case "vnodes":
						a.Scan(t, 0, &vnodes)
					case "replicas":
						a.Scan(t, 0, &replicas)
					default:
						d.Fatalf(t, "unknown arg %s", a.Key)
					}
				}
				prev, cur = cur, New(nodes, vnodes, replicas)
				fmt.Fprintf(&b, "nodes=%s vnodes=%d replicas=%d ranges=%d\n",
					strings.Join(cur.Nodes(), ","), cur.VNodes(), cur.Replicas(), len(cur.Ranges()))
			case "token":
				var key string
				d.ScanArgs(t, "key", &key)
				fmt.Fprintf(&b, "%016x\n", Token([]byte(key)))
			case "owners":
				var tok uint64
				if a, ok := d.Arg("key"); ok {
					tok = Token([]byte(a.SingleVal(t)))
				} else if a, ok := d.Arg("token"); ok {
					var err error
					if tok, err = strconv.ParseUint(a.SingleVal(t), 0, 64); err != nil {
						d.Fatalf(t, "bad token: %v", err)
					}
				} else {
					d.Fatalf(t, "owners needs key= or token=")
				}
				fmt.Fprintf(&b, "%016x %s\n", tok, list(cur.Owners(tok)))
			case "ranges":
				for _, or := range cur.Ranges() {
					fmt.Fprintf(&b, "%s %s\n", or.Range, list(or.Owners))
				}
			case "ownership":
				own := cur.Ownership()
				for _, id := range cur.Nodes() {
					fmt.Fprintf(&b, "%s %.4f\n", id, own[id])
				}
			case "replica-ranges":
				var id string
				d.ScanArgs(t, "id", &id)
				for _, rg := range cur.ReplicaRanges(id) {
					fmt.Fprintf(&b, "%s\n", rg)
				}
			case "diff":
				for _, mv := range Diff(prev, cur) {
					fmt.Fprintf(&b, "%s %s -> %s\n", mv.Range, list(mv.From), list(mv.To))
				}
			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			if b.Len() == 0 {
				return "<none>\n"
			}
			return b.String()
		})
	})
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	return strings.Join(ids, ",")
}

// TestToken pins the key token to engine's: both must be xxh3.Hash, or
// ranges of the ring stop being spans of the store.
func TestToken(t *testing.T) {
	for _, k := range []string{"", "a", "foo", strings.Repeat("x", 4096)} {
		if got, want := Token([]byte(k)), xxh3.Hash([]byte(k)); got != want {
			t.Errorf("Token(%q) = %x, want %x", k, got, want)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	r := New([]string{"b", "a", "b", ""}, 0, 0)
	if got := r.Nodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Nodes = %v, want [a b]", got)
	}
	if r.VNodes() != DefaultVNodes || r.Replicas() != 2 {
		t.Errorf("VNodes, Replicas = %d, %d; want %d, 2", r.VNodes(), r.Replicas(), DefaultVNodes)
	}
	if !r.Has("a") || r.Has("c") || r.Has("") {
		t.Errorf("Has is wrong")
	}
	if got := len(r.Ranges()); got != 2*DefaultVNodes {
		t.Errorf("%d ranges, want %d", got, 2*DefaultVNodes)
	}
	if got := New([]string{"a", "b", "c", "d"}, 4, 0).Replicas(); got != DefaultReplicas {
		t.Errorf("Replicas = %d, want %d", got, DefaultReplicas)
	}
}

func TestEmptyRing(t *testing.T) {
	for _, nodes := range [][]string{nil, {}, {""}} {
		r := New(nodes, 8, 3)
		if r.Owners(42) != nil || r.KeyOwners([]byte("k")) != nil || r.Ranges() != nil ||
			r.ReplicaRanges("a") != nil || len(r.Ownership()) != 0 || r.Replicas() != 0 || len(r.Nodes()) != 0 {
			t.Errorf("New(%q) is not empty", nodes)
		}
		if mv := Diff(r, r); mv != nil {
			t.Errorf("Diff(empty, empty) = %v", mv)
		}
		if mv := Diff(nil, r); mv != nil {
			t.Errorf("Diff(nil, empty) = %v", mv)
		}
	}
	// From nothing to a ring, everything moves, as one whole-ring range.
	full := New([]string{"a"}, 8, 3)
	for _, mv := range [][]Move{Diff(nil, full), Diff(New(nil, 0, 0), full)} {
		if len(mv) != 1 || mv[0].Start != mv[0].End || mv[0].From != nil || !slices.Equal(mv[0].To, []string{"a"}) {
			t.Errorf("Diff(empty, {a}) = %v, want one whole-ring move to a", mv)
		}
	}
}

func TestRangeContains(t *testing.T) {
	const max = math.MaxUint64
	for _, tc := range []struct {
		rg  Range
		in  []uint64
		out []uint64
	}{
		{Range{10, 20}, []uint64{11, 15, 20}, []uint64{0, 9, 10, 21, max}},
		{Range{0, max}, []uint64{1, max}, []uint64{0}},
		{Range{20, 10}, []uint64{21, max, 0, 10}, []uint64{11, 15, 20}},
		{Range{max, 0}, []uint64{0}, []uint64{1, max}},
		{Range{max, 5}, []uint64{0, 5}, []uint64{6, max}},
		{Range{5, 5}, []uint64{0, 4, 5, 6, max}, nil},
		{Range{max, max}, []uint64{0, max}, nil},
		{Range{0, 0}, []uint64{0, 1, max}, nil},
	} {
		for _, x := range tc.in {
			if !tc.rg.Contains(x) {
				t.Errorf("%v does not contain %x", tc.rg, x)
			}
		}
		for _, x := range tc.out {
			if tc.rg.Contains(x) {
				t.Errorf("%v contains %x", tc.rg, x)
			}
		}
	}
}

func TestRangeSpans(t *testing.T) {
	const max = math.MaxUint64
	for _, tc := range []struct {
		rg   Range
		want []Span
	}{
		{Range{10, 20}, []Span{{11, 21}}},
		{Range{10, max}, []Span{{11, 0}}},
		{Range{0, max}, []Span{{1, 0}}},
		{Range{20, 10}, []Span{{0, 11}, {21, 0}}},
		{Range{max, 10}, []Span{{0, 11}}},
		{Range{max - 1, 0}, []Span{{0, 1}, {max, 0}}},
		{Range{7, 7}, []Span{{0, 0}}},
	} {
		got := tc.rg.Spans()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v.Spans() = %v, want %v", tc.rg, got, tc.want)
		}
		// The spans hold exactly the range's tokens, near every edge.
		for _, x := range []uint64{0, 1, 6, 7, 8, 9, 10, 11, 19, 20, 21, max - 1, max} {
			in := false
			for _, s := range got {
				in = in || (x >= s.Lo && (s.Hi == 0 || x < s.Hi))
			}
			if in != tc.rg.Contains(x) {
				t.Errorf("%v: spans %v hold %x: %v, Contains: %v", tc.rg, got, x, in, !in)
			}
		}
	}
}

func TestRangeFraction(t *testing.T) {
	for _, tc := range []struct {
		rg   Range
		want float64
	}{
		{Range{0, 1 << 63}, 0.5},
		{Range{1 << 63, 0}, 0.5},
		{Range{3, 3}, 1},
		{Range{3 << 62, 1 << 62}, 0.5},
	} {
		if got := tc.rg.Fraction(); got != tc.want {
			t.Errorf("%v.Fraction() = %v, want %v", tc.rg, got, tc.want)
		}
	}
}

// TestOwnersAllocs holds the request path to zero allocations.
func TestOwnersAllocs(t *testing.T) {
	r := New(nodeIDs(8), 0, 3)
	key := []byte("some-key")
	var tok uint64
	if n := testing.AllocsPerRun(1000, func() {
		tok += 0x9e3779b97f4a7c15
		_ = r.Owners(tok)
		_ = r.KeyOwners(key)
	}); n != 0 {
		t.Errorf("Owners and KeyOwners: %v allocs per run, want 0", n)
	}
}

// TestOwnersShared checks that a caller appending to an owner list cannot
// clobber the next vnode's list in the shared backing array.
func TestOwnersShared(t *testing.T) {
	r := New([]string{"a", "b", "c", "d"}, 4, 2)
	rs := r.Ranges()
	next := slices.Clone(rs[1].Owners)
	_ = append(rs[0].Owners, "zzz")
	if !slices.Equal(rs[1].Owners, next) {
		t.Fatalf("append to one owner list changed the next: %v, was %v", rs[1].Owners, next)
	}
}

func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i+1)
	}
	return ids
}
