package matrix

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/ringkv/ringkv/bench/internal/chart"
	"github.com/ringkv/ringkv/compaction"
)

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// Phases describes a case's phases, e.g. "4000000 writes without fsync, a
// flush, then 15s of point reads".
func (res *Result) Phases() string { return res.phases() }

func (res *Result) phases() string {
	w := fmt.Sprintf("up to %d writes in %s", res.Writes, fmtSeconds(res.Duration/2))
	if res.Writes == 0 {
		w = fmtSeconds(res.Duration/2) + " of writes"
	}
	s := w + " without fsync, a flush, then " + fmtSeconds(res.Duration/2) + " of point reads"
	if res.Runs > 1 {
		s += fmt.Sprintf("; medians of %d alternating runs", res.Runs)
	}
	return s
}

// WriteTable prints the matrix as a Markdown table, one row per case.
func (res *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s, %d keys (%s), %d-byte values, %d writers then readers, %d CPUs\n\n",
		res.phases(), res.Keys, res.Order, res.ValueSize, res.Concurrency, res.CPUs)
	fmt.Fprintln(w, "| profile | write ops/s | write p99 ms | read ops/s | read p99 ms | WAL | write amp | vs "+res.refName()+" | read amp | max L0 sublevels | stalls | stalled s | debt left | disk |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range res.Rows {
		vs := "-"
		if r.WriteAmpVsReference > 0 {
			vs = fmt.Sprintf("%.2f", r.WriteAmpVsReference)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.3f | %.0f | %.3f | %s | %.2f | %s | %.1f | %d | %d | %.2f | %s | %s |\n",
			r.Name, r.WriteOpsPerSec, r.WriteP99, r.ReadOpsPerSec, r.ReadP99, compaction.FormatBytes(r.WALBytes), r.WriteAmp, vs, r.ReadAmp,
			r.MaxL0Sublevels, r.Stalls, r.StallSeconds, compaction.FormatBytes(r.CompactionDebtEnd), compaction.FormatBytes(r.DiskBytes))
	}
	if cut := res.cut(); cut != "" {
		fmt.Fprintf(w, "\n%s\n", cut)
	}
}

// cut says which rows the clock stopped before --writes, or "".
func (res *Result) cut() string {
	var names []string
	for _, r := range res.Rows {
		if r.WritesCut {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("Note: %s reached half of --duration (%s) before %d writes, so they wrote less than the others and read from a smaller store; for like with like, raise --duration or lower --writes.",
		strings.Join(names, ", "), fmtSeconds(res.Duration/2), res.Writes)
}

// Cut says which rows the clock stopped before --writes, or "".
func (res *Result) Cut() string { return res.cut() }

func (res *Result) refName() string {
	if res.Reference == "" {
		return "reference"
	}
	return res.Reference
}

func fmtSeconds(s float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", s), ".0") + "s" }

var pageTmpl = template.Must(template.New("compaction").Funcs(template.FuncMap{
	"f0":    func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"f2":    func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"f3":    func(f float64) string { return fmt.Sprintf("%.3f", f) },
	"bytes": compaction.FormatBytes,
	"ibytes": func(n int64) string {
		if n <= 0 {
			return "0"
		}
		return compaction.FormatBytes(uint64(n))
	},
	"secs": fmtSeconds,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ringkv bench compaction</title>
<style>
{{.CSS}}
tr.ref td{background:#fafae8}
</style></head><body>
<h1>ringkv bench compaction</h1>
<p>Each profile on a fresh engine: {{.R.Phases}} of written keys,
{{.R.Keys}} keys ({{.R.Order}}), {{.R.ValueSize}}-byte values, {{.R.Concurrency}} writers then readers, {{.R.CPUs}} CPUs, {{.R.GoVersion}}.
Started {{.R.Started.Format "2006-01-02 15:04:05 UTC"}}.</p>
{{with .R.Cut}}<p><b>{{.}}</b></p>{{end}}
<div class="scroll"><table>
<tr><th class="l">profile</th><th>write ops/s</th><th>write p50 ms</th><th>write p99 ms</th><th>write max ms</th><th>flush s</th>
<th>read ops/s</th><th>read p50 ms</th><th>read p99 ms</th><th>read hits</th>
<th>WAL bytes</th><th>write amp</th><th>vs {{.Ref}}</th><th>read amp (mean, max)</th><th>max L0 sublevels</th><th>max debt</th><th>debt left</th>
<th>stalls</th><th>stalled s</th><th>flushes</th><th>compactions</th><th>disk</th><th>load avg before</th></tr>
{{range .R.Rows}}<tr{{if .Reference}} class="ref"{{end}}><td class="l">{{.Name}}{{if .WritesCut}} (writes cut short){{end}}</td><td>{{f0 .WriteOpsPerSec}}</td><td>{{f3 .WriteP50}}</td><td>{{f3 .WriteP99}}</td><td>{{f1 .WriteMax}}</td><td>{{f2 .FlushSeconds}}</td>
<td>{{f0 .ReadOpsPerSec}}</td><td>{{f3 .ReadP50}}</td><td>{{f3 .ReadP99}}</td><td>{{f3 .ReadHitRatio}}</td>
<td>{{bytes .WALBytes}}</td><td>{{f2 .WriteAmp}}</td><td>{{if .WriteAmpVsReference}}{{f2 .WriteAmpVsReference}}{{else}}-{{end}}</td><td>{{f1 .ReadAmp}}, {{.ReadAmpMax}}</td><td>{{.MaxL0Sublevels}}</td><td>{{bytes .MaxCompactionDebt}}</td><td>{{bytes .CompactionDebtEnd}}</td>
<td>{{.Stalls}}</td><td>{{f2 .StallSeconds}}</td><td>{{.Flushes}}</td><td>{{.Compactions}}</td><td>{{bytes .DiskBytes}}</td><td>{{f2 .LoadAvg}}</td></tr>
{{end}}</table></div>
<div>{{range .Charts}}{{.}}{{end}}</div>
<h2>Knobs</h2>
<div class="scroll"><table><tr><th class="l">knob</th>{{range .R.Rows}}<th>{{.Name}}</th>{{end}}</tr>
{{range $i, $k := .KnobNames}}<tr><td class="l">{{$k}}</td>{{range $.R.Rows}}<td>{{(index .Knobs $i).Value}}</td>{{end}}</tr>
{{end}}</table></div>
<h2>Level sizes at the end</h2>
<div class="scroll"><table><tr><th class="l">profile</th><th>L0</th><th>L1</th><th>L2</th><th>L3</th><th>L4</th><th>L5</th><th>L6</th></tr>
{{range .R.Rows}}<tr><td class="l">{{.Name}}</td>{{range .LevelBytes}}<td>{{ibytes .}}</td>{{end}}</tr>
{{end}}</table></div>
<p class="note">Write amplification is the bytes flushed and compacted per byte written to the WAL, at the end of the read phase
(so it includes the compactions that ran during the reads); "debt left" is Pebble's estimate of the compaction still owed then.
Read amplification is L0 sublevels plus non-empty levels, sampled every 250ms during the read phase. The reference row uses Pebble's
default knobs (4MB memtables, no bloom filters, one compaction at a time, 8MB cache). The row cache is off.</p>
</body></html>
`))

type pageData struct {
	R         *Result
	CSS       template.CSS
	Ref       string
	Charts    []template.HTML
	KnobNames []string
}

func writeHTML(w io.Writer, res *Result) error {
	d := pageData{R: res, CSS: template.CSS(chart.CSS), Ref: res.refName()}
	if len(res.Rows) > 0 {
		for _, k := range res.Rows[0].Knobs {
			d.KnobNames = append(d.KnobNames, k.Name)
		}
	}
	bars := func(title string, val func(r Row) float64, text func(v float64) string) template.HTML {
		var bs []chart.Bar
		for i, r := range res.Rows {
			v := val(r)
			bs = append(bs, chart.Bar{Label: r.Name, Value: v, Text: text(v), Color: chart.Palette[i%len(chart.Palette)]})
		}
		return chart.Bars{Title: title, Width: 380, Bars: bs}.SVG()
	}
	num := func(v float64) string { return chart.FormatNum(v) }
	fix := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	msec := func(v float64) string { return fmt.Sprintf("%.3fms", v) }
	d.Charts = []template.HTML{
		bars("write ops/s", func(r Row) float64 { return r.WriteOpsPerSec }, num),
		bars("write p99", func(r Row) float64 { return r.WriteP99 }, msec),
		bars("read ops/s", func(r Row) float64 { return r.ReadOpsPerSec }, num),
		bars("read p99", func(r Row) float64 { return r.ReadP99 }, msec),
		bars("write amplification", func(r Row) float64 { return r.WriteAmp }, fix),
		bars("read amplification (mean)", func(r Row) float64 { return r.ReadAmp }, fix),
		bars("write stalls (seconds stalled)", func(r Row) float64 { return r.StallSeconds }, fix),
		bars("disk bytes", func(r Row) float64 { return float64(r.DiskBytes) }, func(v float64) string { return compaction.FormatBytes(uint64(v)) }),
	}
	return pageTmpl.Execute(w, d)
}
