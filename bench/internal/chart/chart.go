// Package chart draws the small inline SVG charts of the bench reports:
// line charts over a shared time axis and horizontal bar charts. The
// output is self-contained markup (no scripts, fonts or links) ready to be
// placed in an html/template as template.HTML.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Palette holds the colors series and bars get by default, in order.
var Palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// Point is one sample of a series.
type Point struct{ X, Y float64 }

// Series is one line. A NaN Y leaves a gap.
type Series struct {
	Name   string
	Color  string // "" takes the next Palette color
	Points []Point
}

// Line is a line chart whose x axis runs from 0 to XMax, so that charts
// with the same XMax and Width line up one above the other.
type Line struct {
	Title  string
	YUnit  string // appended to the y labels, e.g. "ms"
	XLabel string // e.g. "seconds"
	XMax   float64
	Width  int // default 560
	Height int // default 190
	Series []Series
}

// charWidth is the assumed width of one character of the 11-12px labels.
const charWidth = 6.5

func legendWidth(name string) float64 { return charWidth*float64(len([]rune(name))) + 20 }

// legendLineH is the height of one line of legend below the title.
const legendLineH = 14

// legendEntry is where one series' swatch goes (its label follows it).
type legendEntry struct {
	x, y float64
	name string // shortened with "…" when it would not fit on a line
}

type legendLayout struct {
	entries []legendEntry // one per series, in the series' order
	lines   int           // lines added below the title (0: beside it)
}

// layoutLegend places the legend of series in a chart w wide whose title
// ends at titleEnd: right-aligned beside the title when it fits, else
// flowed left to right over lines below it, wrapping at the right edge.
func layoutLegend(series []Series, w int, titleEnd float64) legendLayout {
	right := float64(w - padRight)
	left := 4.0
	maxChars := int((right - left - 20) / charWidth)
	out := legendLayout{entries: make([]legendEntry, len(series))}
	total := 0.0
	for i, s := range series {
		name := []rune(s.Name)
		if len(name) > maxChars {
			name = append(name[:max(maxChars-1, 0)], '…')
		}
		out.entries[i].name = string(name)
		total += legendWidth(out.entries[i].name)
	}
	if titleEnd+total <= right {
		x := right - total
		for i := range out.entries {
			out.entries[i].x, out.entries[i].y = x, 7
			x += legendWidth(out.entries[i].name)
		}
		return out
	}
	x, line := left, 1
	for i := range out.entries {
		lw := legendWidth(out.entries[i].name)
		if x > left && x+lw > right {
			x, line = left, line+1
		}
		out.entries[i].x, out.entries[i].y = x, float64(7+legendLineH*line)
		x += lw
	}
	out.lines = line
	return out
}

const (
	padLeft   = 58
	padRight  = 14
	padTop    = 26
	padBottom = 30
)

// SVG renders the chart.
func (c Line) SVG() template.HTML {
	f, legend := c.frame()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, f.w, f.h, f.w, f.h)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	fmt.Fprintf(&b, `<text x="%d" y="15" class="t">%s</text>`, padLeft, esc(c.Title))
	f.writeAxes(&b, c.YUnit, c.XLabel)
	// Series and legend.
	for i := len(c.Series) - 1; i >= 0; i-- {
		s := c.Series[i]
		color := s.Color
		if color == "" {
			color = Palette[i%len(Palette)]
		}
		f.writeSeries(&b, s, color)
		e := legend.entries[i]
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.1f" y="%.0f" class="lg">%s</text>`,
			e.x, e.y, esc(color), e.x+13, e.y+9, esc(e.name))
	}
	if len(c.Series) == 0 || f.ymax == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="xl">no data</text>`, f.px(f.xmax/2), f.py(f.ymax/2))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// lineFrame is a line chart's geometry: its size, where the plot area
// starts and how large it is, and the axes' ranges (from 0).
type lineFrame struct {
	w, h, top  int
	pw, ph     float64
	xmax, ymax float64
}

// px is where x goes across the chart.
func (f lineFrame) px(x float64) float64 { return padLeft + x/f.xmax*f.pw }

// py is where y goes down the chart.
func (f lineFrame) py(y float64) float64 { return float64(f.top) + f.ph - y/f.ymax*f.ph }

// frame lays c out: its size with the defaults, the axes' ranges (the y
// axis up to a round number above the largest sample), and the legend.
func (c Line) frame() (lineFrame, legendLayout) {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 560
	}
	if h <= 0 {
		h = 190
	}
	xmax := c.XMax
	if !(xmax > 0) {
		xmax = 1
	}
	ymax := 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if !math.IsNaN(p.Y) && !math.IsInf(p.Y, 0) && p.Y > ymax {
				ymax = p.Y
			}
		}
	}
	ymax = NiceCeil(ymax)
	// The legend goes right of the title when it fits there, else on
	// lines of its own below it, as many as it needs: every entry stays
	// inside the chart whatever the number of series.
	legend := layoutLegend(c.Series, w, padLeft+charWidth*float64(len([]rune(c.Title)))+12)
	top := padTop + legendLineH*legend.lines
	h += legendLineH * legend.lines
	pw, ph := float64(w-padLeft-padRight), float64(h-top-padBottom)
	return lineFrame{w: w, h: h, top: top, pw: pw, ph: ph, xmax: xmax, ymax: ymax}, legend
}

// writeAxes writes the horizontal grid with the y labels (in yUnit), the
// x ticks, and xLabel if any.
func (f lineFrame) writeAxes(b *strings.Builder, yUnit, xLabel string) {
	top, ph, xmax := f.top, f.ph, f.xmax
	// Horizontal grid and y labels.
	for i := 0; i <= 4; i++ {
		y := f.ymax * float64(i) / 4
		yy := f.py(y)
		fmt.Fprintf(b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" class="g"/>`, padLeft, f.px(xmax), yy, yy)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" class="yl">%s</text>`, padLeft-4, yy+4, esc(FormatNum(y)+yUnit))
	}
	// X ticks.
	step := NiceCeil(xmax / 8)
	for x := 0.0; x <= xmax+step/1e6; x += step {
		xx := f.px(x)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" class="g"/>`, xx, xx, top, float64(top)+ph)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="xl">%s</text>`, xx, float64(top)+ph+14, esc(FormatNum(x)))
	}
	if xLabel != "" {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" class="xl">%s</text>`, f.px(xmax)-4, f.h-2, esc(xLabel))
	}
}

// writeSeries writes s as a path in color, broken where a Y is NaN or
// infinite; a series of one point gets a dot, since a path of one point
// draws nothing.
func (f lineFrame) writeSeries(b *strings.Builder, s Series, color string) {
	var d strings.Builder
	pen := false
	for _, p := range s.Points {
		if math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
			pen = false
			continue
		}
		op := "L"
		if !pen {
			op = "M"
			pen = true
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", op, f.px(math.Min(math.Max(p.X, 0), f.xmax)), f.py(p.Y))
	}
	if d.Len() > 0 {
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.6"><title>%s</title></path>`,
			strings.TrimSpace(d.String()), esc(color), esc(s.Name))
		if len(s.Points) == 1 {
			p := s.Points[0]
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, f.px(p.X), f.py(p.Y), esc(color))
		}
	}
}

// Bar is one bar of a bar chart.
type Bar struct {
	Label string
	Value float64
	Text  string // shown after the bar; default FormatNum(Value)
	Color string // default Palette[0]
}

// Bars is a horizontal bar chart, one row per bar, labels on the left.
type Bars struct {
	Title string
	Width int // default 420
	Bars  []Bar
}

// SVG renders the chart.
func (c Bars) SVG() template.HTML {
	w := c.Width
	if w <= 0 {
		w = 420
	}
	const row, top, labelW, textW = 18, 26, 110, 90
	h := top + row*len(c.Bars) + 8
	vmax := 0.0
	for _, bar := range c.Bars {
		if bar.Value > vmax {
			vmax = bar.Value
		}
	}
	if vmax <= 0 {
		vmax = 1
	}
	bw := float64(w - labelW - textW)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, w, h, w, h)
	fmt.Fprintf(&b, `<title>%s</title><text x="4" y="15" class="t">%s</text>`, esc(c.Title), esc(c.Title))
	for i, bar := range c.Bars {
		y := float64(top + i*row)
		color := bar.Color
		if color == "" {
			color = Palette[0]
		}
		text := bar.Text
		if text == "" {
			text = FormatNum(bar.Value)
		}
		l := math.Max(0, bar.Value) / vmax * bw
		if bar.Value > 0 && l < 1 {
			l = 1
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="yl">%s</text>`, labelW-6, y+12, esc(bar.Label))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`,
			labelW, y+2, l, row-5, esc(color), esc(bar.Label), esc(text))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="bl">%s</text>`, float64(labelW)+l+4, y+12, esc(text))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// CSS is the style of a report page (its body, tables, notes and
// scrolling tables) and of the charts in it; include it once per page.
const CSS = `body{font:14px sans-serif;margin:16px;color:#222}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4}
td.l,th.l{text-align:left}
.note{color:#666;font-size:12px}
.scroll{max-width:100%;overflow-x:auto}
svg.chart{background:#fff;border:1px solid #ddd;margin:4px}
svg.chart text{font:11px sans-serif;fill:#333}
svg.chart .t{font-weight:bold;font-size:12px}
svg.chart .yl{text-anchor:end}
svg.chart .xl{text-anchor:middle}
svg.chart .bl{text-anchor:start}
svg.chart .lg{text-anchor:start}
svg.chart .g{stroke:#eee;stroke-width:1}`

// NiceCeil rounds v up to 1, 2 or 5 times a power of ten (0 stays 0,
// and anything not positive gives 1 so that axes never collapse).
func NiceCeil(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// FormatNum writes v compactly: 950, 1.2k, 3.4M, 0.25.
func FormatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(strconv.FormatFloat(v/1e9, 'f', 1, 64)) + "G"
	case a >= 1e6:
		return trim(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + "M"
	case a >= 1e4:
		return trim(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	case a >= 100 || a == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return trim(strconv.FormatFloat(v, 'f', 2, 64))
	}
	return trim(strconv.FormatFloat(v, 'g', 2, 64))
}

func trim(s string) string {
	if strings.Contains(s, ".") && !strings.ContainsAny(s, "eE") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func esc(s string) string { return template.HTMLEscapeString(s) }
