package chart

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/bench/internal/chart/charttest"
)

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 1}, {-3, 1}, {math.NaN(), 1}, {0.7, 1}, {1, 1}, {1.01, 2}, {3, 5}, {7, 10}, {42, 50}, {120, 200}, {0.013, 0.02},
	} {
		if got := NiceCeil(tc.in); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("NiceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFormatNum(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {950, "950"}, {12345, "12.3k"}, {3.4e6, "3.4M"}, {2e9, "2G"}, {1.5, "1.5"}, {0.25, "0.25"},
	} {
		if got := FormatNum(tc.in); got != tc.want {
			t.Errorf("FormatNum(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSVG(t *testing.T) {
	l := Line{Title: "p99 <latency>", YUnit: "ms", XMax: 10, Series: []Series{
		{Name: "p50", Points: []Point{{0, 1}, {1, 2}, {2, math.NaN()}, {3, 4}}},
		{Name: "p99", Points: []Point{{0, 3}}},
	}}
	s := string(l.SVG())
	if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(s, "</svg>") || strings.Count(s, "<path") != 2 {
		t.Fatalf("line chart: %s", s)
	}
	if strings.Contains(s, "<latency>") || !strings.Contains(s, "&lt;latency&gt;") {
		t.Fatal("title not escaped")
	}
	// The NaN splits the first series into two subpaths.
	if strings.Count(s, "M") < 3 {
		t.Fatalf("NaN did not break the line: %s", s)
	}
	b := string(Bars{Title: "ops/s", Bars: []Bar{{Label: "a", Value: 3}, {Label: "b", Value: 0}}}.SVG())
	if strings.Count(b, "<rect") != 2 || strings.Contains(b, "http") {
		t.Fatalf("bar chart: %s", b)
	}
	if e := string((Line{Title: "empty"}).SVG()); !strings.Contains(e, "no data") {
		t.Fatalf("empty chart: %s", e)
	}
}

// TestLegendsStayInside: however many series and however long their
// names, every legend entry is drawn inside the chart and none overlaps
// another (the 3-node flush chart once drew half its legend at x < 0).
func TestLegendsStayInside(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 6, 8, 16, 40} {
		for _, name := range []string{"p50", "127.0.0.1:18080 memtables", strings.Repeat("a-very-long-node-name", 5)} {
			var ss []Series
			for i := range n {
				ss = append(ss, Series{Name: fmt.Sprintf("%s %d", name, i), Points: []Point{{0, 1}, {1, float64(i)}}})
			}
			svg := string(Line{Title: "memtable flushes per second, memtables", XMax: 2, Series: ss}.SVG())
			if err := charttest.CheckLegends(svg, n); err != nil {
				t.Errorf("%d series named %q...: %v", n, name, err)
			}
		}
	}
}
