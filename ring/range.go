package ring

import (
	"fmt"
	"math"
	"slices"
)

// Range is the set of tokens t with Start < t <= End, on the circle:
//
//   - Start < End: the tokens Start+1 .. End.
//   - Start > End: the range wraps past the largest token, so it is
//     Start+1 .. MaxUint64 together with 0 .. End.
//   - Start == End: the whole ring. A ring with a single distinct vnode
//     token owns this range, as does a merged range that goes all the way
//     round. A Range is never empty.
//
// Start is exclusive and End inclusive because a vnode owns the tokens up to
// and including its own. Lists of ranges are in token order: sorted by End,
// so a range that wraps comes first.
type Range struct{ Start, End uint64 }

// Contains reports whether token t is in rg.
func (rg Range) Contains(t uint64) bool {
	if rg.Start < rg.End {
		return rg.Start < t && t <= rg.End
	}
	// Wrapping, or the whole ring when Start == End.
	return t > rg.Start || t <= rg.End
}

// Fraction returns the share of the token space in rg, in (0, 1].
func (rg Range) Fraction() float64 {
	if rg.Start == rg.End {
		return 1
	}
	// Unsigned subtraction is the clockwise distance, wrapping included.
	return float64(rg.End-rg.Start) / (1 << 64)
}

// String formats rg as (Start, End] in fixed-width hex.
func (rg Range) String() string { return fmt.Sprintf("(%016x, %016x]", rg.Start, rg.End) }

// Span is a half-open token interval [Lo, Hi) in the convention of
// engine.ScanTokens: Hi == 0 stands for 2^64, so {Lo, 0} runs through
// MaxUint64 and {0, 0} is every token.
type Span struct{ Lo, Hi uint64 }

// Spans returns the half-open spans that make up rg, in token order: one
// span, or two for a range that wraps past MaxUint64 ([0, End+1) first).
// They are what a scan or a range deletion of rg in the store needs.
func (rg Range) Spans() []Span {
	switch {
	case rg.Start == rg.End:
		return []Span{{0, 0}}
	case rg.Start < rg.End:
		// End+1 overflows to 0 exactly when End is MaxUint64, which the
		// convention reads as "through MaxUint64".
		return []Span{{rg.Start + 1, rg.End + 1}}
	case rg.Start == math.MaxUint64:
		// Nothing above Start: only the low part is left.
		return []Span{{0, rg.End + 1}}
	default:
		return []Span{{0, rg.End + 1}, {rg.Start + 1, 0}}
	}
}

// Move is a range of tokens whose owner list differs between two rings: From
// lists the old owners and To the new ones, primaries first. Either may be
// empty when its ring is. Both are shared with the rings and must not be
// modified.
type Move struct {
	Range
	From, To []string
}

// Diff returns the token ranges whose owner list differs between prev and
// next, in token order, with adjacent ranges that have the same From and To
// merged (across the top of the ring too). Owner lists compare in order, so
// a change of primary alone is a Move. A nil Ring counts as an empty one.
// Equal rings give no moves.
func Diff(prev, next *Ring) []Move {
	var pt, nt []uint64
	if prev != nil {
		pt = prev.tokens
	}
	if next != nil {
		nt = next.tokens
	}
	// Every boundary of either ring: between two consecutive ones, each ring
	// has a single owner list, the one at the upper boundary.
	bounds := make([]uint64, 0, len(pt)+len(nt))
	bounds = append(append(bounds, pt...), nt...)
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)

	var out []Move
	for i, end := range bounds {
		from, to := ownersOf(prev, end), ownersOf(next, end)
		if slices.Equal(from, to) {
			continue
		}
		start := bounds[(i+len(bounds)-1)%len(bounds)]
		out = append(out, Move{Range{start, end}, from, to})
	}
	return coalesce(out, func(m *Move) *Range { return &m.Range }, func(a, b *Move) bool {
		return slices.Equal(a.From, b.From) && slices.Equal(a.To, b.To)
	})
}

// ownersOf is Owners with a nil Ring read as empty.
func ownersOf(r *Ring, t uint64) []string {
	if r == nil {
		return nil
	}
	return r.Owners(t)
}

// coalesce merges, in place, each element of xs into the one before it when
// their ranges touch and same holds, then the last into the first when the
// last ends where the first starts (across the top of the ring). xs must be
// in token order; the result stays so, since a merge across the top keeps
// the first element's End.
func coalesce[T any](xs []T, rng func(*T) *Range, same func(a, b *T) bool) []T {
	if len(xs) == 0 {
		return nil
	}
	out := xs[:1]
	for i := 1; i < len(xs); i++ {
		last := &out[len(out)-1]
		if rng(last).End == rng(&xs[i]).Start && same(last, &xs[i]) {
			rng(last).End = rng(&xs[i]).End
			continue
		}
		out = append(out, xs[i])
	}
	if n := len(out); n > 1 && rng(&out[n-1]).End == rng(&out[0]).Start && same(&out[n-1], &out[0]) {
		rng(&out[0]).Start = rng(&out[n-1]).Start
		out = out[:n-1]
	}
	return out
}
