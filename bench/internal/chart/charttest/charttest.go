// Package charttest checks the geometry of the SVG that package chart
// draws, for the tests of the reports that use it.
package charttest

import (
	"fmt"
	"html"
	"regexp"
	"strconv"
)

// charWidth is chart's assumed width of a label character.
const charWidth = 6.5

var (
	svgRe    = regexp.MustCompile(`<svg class="chart" viewBox="0 0 (\d+) (\d+)"`)
	legendRe = regexp.MustCompile(`<rect x="(-?[\d.]+)" y="(-?[\d.]+)" width="10" height="10" fill="[^"]*"/><text x="(-?[\d.]+)" y="(-?[\d.]+)" class="lg">([^<]*)</text>`)
)

// LegendEntry is one legend entry as drawn: its box from the swatch's
// left edge to the end of its label.
type LegendEntry struct {
	Name           string
	X0, X1, Y0, Y1 float64
	ChartW, ChartH float64
}

// Legends returns the legend entries of the one chart in svg.
func Legends(svg string) ([]LegendEntry, error) {
	m := svgRe.FindStringSubmatch(svg)
	if m == nil {
		return nil, fmt.Errorf("no chart in %.80q", svg)
	}
	w, _ := strconv.ParseFloat(m[1], 64)
	h, _ := strconv.ParseFloat(m[2], 64)
	var out []LegendEntry
	for _, e := range legendRe.FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.ParseFloat(e[1], 64)
		y, _ := strconv.ParseFloat(e[2], 64)
		tx, _ := strconv.ParseFloat(e[3], 64)
		name := html.UnescapeString(e[5])
		out = append(out, LegendEntry{Name: name, X0: x, X1: tx + charWidth*float64(len([]rune(name))),
			Y0: y, Y1: y + 10, ChartW: w, ChartH: h})
	}
	return out, nil
}

// CheckLegends returns an error naming the first legend entry of svg
// that leaves the chart or overlaps another, and checks that there are
// want entries.
func CheckLegends(svg string, want int) error {
	es, err := Legends(svg)
	if err != nil {
		return err
	}
	if len(es) != want {
		return fmt.Errorf("%d legend entries, want %d", len(es), want)
	}
	for i, e := range es {
		if e.X0 < 0 || e.X1 > e.ChartW || e.Y0 < 0 || e.Y1 > e.ChartH {
			return fmt.Errorf("legend %q at x %.1f..%.1f, y %.1f..%.1f leaves the %gx%g chart", e.Name, e.X0, e.X1, e.Y0, e.Y1, e.ChartW, e.ChartH)
		}
		for _, o := range es[:i] {
			if e.X0 < o.X1 && o.X0 < e.X1 && e.Y0 < o.Y1 && o.Y0 < e.Y1 {
				return fmt.Errorf("legends %q and %q overlap", o.Name, e.Name)
			}
		}
	}
	return nil
}
