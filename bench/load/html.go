package load

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/internal/chart"
	"github.com/ringkv/ringkv/compaction"
)

// chartRow is one row of the report: a request chart on the left and the
// LSM chart that may explain it on the right, over the same time axis.
type chartRow struct{ Left, Right template.HTML }

type htmlData struct {
	R      *Report
	CSS    template.CSS
	Title  string
	Config string
	Rows   []chartRow
	Codes  []string
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":  fmtMs,
	"pct": func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"f1":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"f2":  func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"mib": compaction.FormatBytes,
	"s":   func(f float64) string { return fmtDur(time.Duration(f * float64(time.Second))) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Title}}</title>
<style>
{{.CSS}}
.rows td{border:none;padding:0;vertical-align:top}
</style></head><body>
<h1>{{.Title}}</h1>
<p>{{.Config}}</p>
<p class="note">Started {{.R.Started.Format "2006-01-02 15:04:05 UTC"}}, ran {{s .R.Elapsed}}{{if .R.Interrupted}} (interrupted){{end}}.
Preload: {{if .R.Preload.Done}}wrote {{.R.Preload.Keys}} keys in {{f1 .R.Preload.Seconds}}s{{else}}none{{end}} ({{.R.Preload.Reason}}).</p>

<h2>Summary</h2>
<div class="scroll"><table>
<tr><th class="l">requests</th><th>req/s</th><th>success</th><th>ok</th><th>misses (404)</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>bytes in</th><th>bytes out</th></tr>
{{with .R.Summary}}<tr><td class="l">{{.Requests}}</td><td>{{f1 .RPS}}</td><td>{{pct .SuccessRatio}}</td><td>{{.OK}}</td><td>{{.Misses}}</td><td>{{.Errors}}</td>
<td>{{ms .Latency.P50}}</td><td>{{ms .Latency.P90}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Latency.P999}}</td><td>{{ms .Latency.Max}}</td><td>{{.BytesIn}}</td><td>{{.BytesOut}}</td></tr>{{end}}
{{range .R.Ops}}<tr><td class="l">{{.Op}}: {{.Requests}}</td><td></td><td></td><td>{{.OK}}</td><td>{{.Misses}}</td><td>{{.Errors}}</td>
<td>{{ms .Latency.P50}}</td><td>{{ms .Latency.P90}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Latency.P999}}</td><td>{{ms .Latency.Max}}</td><td></td><td></td></tr>
{{end}}</table></div>
{{with .R.Batch}}<p>Batches of {{.BatchSize}} items: {{.Items}} items, {{f1 .ItemsPerSecond}} items/s; ok {{.OK}}, misses (404) {{.Misses}}, item errors {{.Errors}}, unprocessed {{.Unprocessed}}.{{if .ErrorSample}} First item error: <code>{{.ErrorSample}}</code>.{{end}} Requests, latency and the charts are per batch.</p>{{end}}
{{with .R.CAS}}<p>Counters: {{.Increments}} increments, {{f1 .IncrementsPerSecond}}/s; conflicts (412, counted as misses above) {{.Conflicts}}; outcome unknown {{.OutcomeUnknown}} ({{.UnknownApplied}} found applied); conditional PUT p50 {{ms .PutLatency.P50}}, p99 {{ms .PutLatency.P99}}.
{{.Counters}} counters read at consistency=serial total {{.Final}}, expected {{.Expected}}: {{if .Match}}match{{else}}<strong>MISMATCH</strong>: {{.Problem}}{{end}}.</p>{{end}}
{{if .R.Summary.Errors}}<h3>Errors by status</h3>
<div class="scroll"><table><tr><th class="l">status</th><th>count</th></tr>
{{range .Codes}}<tr><td class="l">{{if eq . "0"}}transport{{else}}{{.}}{{end}}</td><td>{{index $.R.Summary.ErrorsByCode .}}</td></tr>{{end}}
</table></div>
<ul>{{range .R.Summary.ErrorSamples}}<li><code>{{.}}</code></li>{{end}}</ul>{{end}}

<h2>Over time</h2>
<p class="note">Left: the requests, by the second they were sent. Right: each node's LSM from GET /v1/lsm, sampled once a second. Same time axis: a latency spike on the left lines up with its cause on the right.</p>
<div class="scroll"><table class="rows">
{{range .Rows}}<tr><td>{{.Left}}</td><td>{{.Right}}</td></tr>
{{end}}</table></div>

<h2>LSM per node</h2>
<div class="scroll"><table>
<tr><th class="l">node</th><th class="l">profile</th><th>samples</th><th>max L0 sublevels</th><th>max read amp</th><th>max compaction debt</th><th>max memtables</th><th>stalls</th><th>stalled</th><th>flushes</th><th>compactions</th><th>write amp</th><th class="l">last error</th></tr>
{{range .R.LSM}}<tr><td class="l">{{.Addr}}</td><td class="l">{{.Profile}}</td><td>{{len .Samples}}</td>
{{with .Summary}}<td>{{.MaxL0Sublevels}}</td><td>{{.MaxReadAmp}}</td><td>{{mib .MaxCompactionDebt}}</td><td>{{.MaxMemTables}}</td><td>{{.Stalls}}</td><td>{{s .StallSeconds}}</td><td>{{.Flushes}}</td><td>{{.Compactions}}</td><td>{{f2 .WriteAmp}}</td>{{end}}
<td class="l">{{.Error}}</td></tr>
{{end}}</table></div>
<p class="note">Stalls, flushes and compactions are what the node's counters grew by during the run; write amplification is the node's, since it started.
Latency quantiles are vegeta's t-digest estimates. The raw figures are in report.json.</p>
</body></html>
`))

// writeHTML renders r as a self-contained page: inline CSS and SVG, no
// scripts, no links.
func writeHTML(w io.Writer, r *Report) error {
	c := &r.Config
	rate := "as fast as the clients go"
	if c.Rate > 0 {
		rate = fmt.Sprintf("%d req/s", c.Rate)
	}
	dist := c.Distribution
	if c.ZipfTheta > 0 {
		dist += fmt.Sprintf(" (theta %g)", c.ZipfTheta)
	}
	d := htmlData{
		R:     r,
		CSS:   template.CSS(chart.CSS),
		Title: fmt.Sprintf("ringkv bench: workload %s", c.Workload),
		Config: fmt.Sprintf("%s against %s; workload %s, rate %s, concurrency %d; %d keys %s..., %s key choice; %d-byte values; %.0f%% reads.",
			fmtDur(time.Duration(c.Duration*float64(time.Second))), strings.Join(c.Addrs, ", "), c.Workload, rate,
			c.Concurrency, c.Keys, c.KeyPrefix, dist, c.ValueSize, 100*c.ReadFraction),
	}
	for code := range r.Summary.ErrorsByCode {
		d.Codes = append(d.Codes, code)
	}
	slices.Sort(d.Codes)
	d.Rows = charts(r)
	return reportTmpl.Execute(w, d)
}

// charts builds the rows of time charts.
func charts(r *Report) []chartRow {
	xmax := math.Max(r.Config.Duration, r.Elapsed)
	line := func(title, unit string, s ...chart.Series) template.HTML {
		return chart.Line{Title: title, YUnit: unit, XLabel: "s", XMax: xmax, Series: s}.SVG()
	}
	var p50, p99, rps, errs, misses []chart.Point
	for _, s := range r.Series {
		x := s.T + 0.5
		if s.Requests > 0 {
			p50 = append(p50, chart.Point{X: x, Y: s.P50})
			p99 = append(p99, chart.Point{X: x, Y: s.P99})
		} else {
			p50 = append(p50, chart.Point{X: x, Y: math.NaN()})
			p99 = append(p99, chart.Point{X: x, Y: math.NaN()})
		}
		rps = append(rps, chart.Point{X: x, Y: s.RPS})
		errs = append(errs, chart.Point{X: x, Y: float64(s.Errors)})
		misses = append(misses, chart.Point{X: x, Y: float64(s.Misses)})
	}
	var l0, debt, stall, flush []chart.Series
	for i, n := range r.LSM {
		color := chart.Palette[i%len(chart.Palette)]
		name, prefix := n.Addr, n.Addr+" "
		if len(r.LSM) == 1 {
			prefix = ""
		}
		var a, b, st, fl, mt []chart.Point
		var prev *LSMSample // where the last rate was taken from
		for j := range n.Samples {
			x := &n.Samples[j]
			a = append(a, chart.Point{X: x.T, Y: float64(x.L0Sublevels)})
			b = append(b, chart.Point{X: x.T, Y: float64(x.CompactionDebt) / (1 << 20)})
			mt = append(mt, chart.Point{X: x.T, Y: float64(x.MemTableCount)})
			// Rates over at least half a second: the sample taken as the
			// run ends comes just after the last regular one.
			if prev == nil {
				prev = x
			} else if dt := x.T - prev.T; dt >= 0.5 {
				st = append(st, chart.Point{X: x.T, Y: (x.StallSeconds - prev.StallSeconds) * 1000 / dt})
				fl = append(fl, chart.Point{X: x.T, Y: float64(x.Flushes-prev.Flushes) / dt})
				prev = x
			}
		}
		l0 = append(l0, chart.Series{Name: name, Color: color, Points: a})
		debt = append(debt, chart.Series{Name: name, Color: color, Points: b})
		stall = append(stall, chart.Series{Name: name, Color: color, Points: st})
		flush = append(flush, chart.Series{Name: prefix + "flushes/s", Color: color, Points: fl},
			chart.Series{Name: prefix + "memtables", Color: chart.Palette[(i+3)%len(chart.Palette)], Points: mt})
	}
	var bars []chart.Bar
	for _, b := range r.Histogram {
		label := "≥ " + fmtMs(b.From)
		if b.To != nil {
			label = "< " + fmtMs(*b.To)
		}
		if b.Count == 0 && len(bars) == 0 {
			continue // leading empty buckets
		}
		bars = append(bars, chart.Bar{Label: label, Value: float64(b.Count), Color: chart.Palette[0],
			Text: fmt.Sprintf("%d (%.1f%%)", b.Count, 100*float64(b.Count)/math.Max(1, float64(r.Summary.Requests)))})
	}
	for len(bars) > 0 && bars[len(bars)-1].Value == 0 {
		bars = bars[:len(bars)-1] // trailing empty buckets
	}
	return []chartRow{
		{line("latency per second (p50, p99)", "ms",
			chart.Series{Name: "p50", Color: chart.Palette[0], Points: p50},
			chart.Series{Name: "p99", Color: chart.Palette[1], Points: p99}),
			line("L0 sublevels", "", l0...)},
		{line("throughput", " req/s", chart.Series{Name: "req/s", Color: chart.Palette[2], Points: rps}),
			line("compaction debt", " MiB", debt...)},
		{line("errors and misses per second", "",
			chart.Series{Name: "errors", Color: chart.Palette[1], Points: errs},
			chart.Series{Name: "misses", Color: chart.Palette[3], Points: misses}),
			line("write stalls (ms stalled per second)", " ms", stall...)},
		{chart.Bars{Title: "latency distribution (requests per bucket)", Width: 560, Bars: bars}.SVG(),
			line("memtable flushes per second, memtables", "", flush...)},
	}
}
