package matrix

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram: exact below 16ns, then 16
// buckets per power of two (at most 1/16, about 6%, relative error). One
// writer owns each hist; merge adds them up afterwards.
type hist struct {
	counts [64 * 16]uint64
	n      uint64
	sum    uint64
	max    uint64
}

func histIndex(v uint64) int {
	if v < 16 {
		return int(v)
	}
	shift := bits.Len64(v) - 5 // v>>shift is 1xxxx: 16 to 31
	return (shift+1)*16 + int((v>>shift)&15)
}

// histBounds returns the [lo, hi) values of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 16 {
		return uint64(i), uint64(i) + 1
	}
	shift := uint(i/16 - 1)
	sub := uint64(i % 16)
	return (16 + sub) << shift, (17 + sub) << shift
}

func (h *hist) add(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q <= 1): the middle of its bucket,
// never above the largest value seen.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			return time.Duration(min(lo+(hi-lo)/2, h.max))
		}
	}
	return time.Duration(h.max)
}
