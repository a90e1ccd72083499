package httpd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
)

// status serves GET /: a self-contained HTML page (no external assets)
// with the node's identity, uptime, members, request counters and LSM
// report. A few lines of inline JS refresh the LSM table from /v1/lsm.
func (s *Server) status(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	d := statusData{
		NodeID:  s.cfg.NodeID,
		Started: s.started.UTC().Format(time.RFC3339),
		Uptime:  time.Since(s.started).Round(time.Second).String(),
		Members: s.ops.Members(),
	}
	if s.cluster != nil {
		st := s.cluster.ClusterStatus()
		for _, m := range st.Members {
			d.Cluster = append(d.Cluster, statusMember{Member: m, Ownership: fmt.Sprintf("%.1f%%", 100*st.Ownership[m.ID]), Hints: st.HintsPending[m.ID]})
		}
		d.Replicas = st.Replicas
	}
	d.Requests, d.RequestsErr = s.requestCounts()
	if b, err := json.Marshal(s.ops.LSM()); err != nil {
		d.LSMErr = err.Error()
	} else if v, err := decodeOrdered(json.NewDecoder(bytes.NewReader(b))); err != nil {
		d.LSMErr = err.Error()
	} else {
		var h strings.Builder
		renderValue(&h, v)
		// renderValue escapes every string it writes.
		d.LSM = template.HTML(h.String())
	}
	var b bytes.Buffer
	if err := s.statusPage.Execute(&b, d); err != nil {
		s.writeStoreError(ctx, "status", err)
		return
	}
	ctx.SetContentTypeBytes(ctHTML)
	ctx.SetBody(b.Bytes())
}

type statusData struct {
	NodeID      string
	Started     string
	Uptime      string
	Members     []string
	Cluster     []statusMember
	Replicas    int
	Requests    []requestCount
	RequestsErr string
	LSM         template.HTML
	LSMErr      string
}

type statusMember struct {
	peer.Member
	Ownership string
	Hints     int64
}

type requestCount struct {
	Op, Code string
	Count    uint64
}

// requestCounts reads ringkv_requests_total back from the registry, so
// that the page shows what /metrics shows.
func (s *Server) requestCounts() ([]requestCount, string) {
	mfs, err := s.cfg.Registry.Gather()
	var out []requestCount
	for _, mf := range mfs {
		if mf.GetName() != "ringkv_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			rc := requestCount{Count: uint64(m.GetCounter().GetValue())}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "op":
					rc.Op = l.GetValue()
				case "code":
					rc.Code = l.GetValue()
				}
			}
			out = append(out, rc)
		}
	}
	slices.SortFunc(out, func(a, b requestCount) int {
		if c := strings.Compare(a.Op, b.Op); c != 0 {
			return c
		}
		return strings.Compare(a.Code, b.Code)
	})
	if err != nil {
		// Gather returns what it could alongside the error.
		return out, err.Error()
	}
	return out, ""
}

// jsonObject is a JSON object that keeps its members' order, so that the
// LSM table lists fields in the order the engine reports them (as the JS
// refresh does, since JSON.parse keeps order too).
type jsonObject struct {
	keys []string
	vals []any
}

// decodeOrdered decodes one JSON value: objects as *jsonObject, arrays as
// []any, numbers as json.Number, and strings, booleans and null as
// encoding/json does.
func decodeOrdered(dec *json.Decoder) (any, error) {
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch delim {
	case '{':
		obj := &jsonObject{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			obj.keys = append(obj.keys, k.(string))
			obj.vals = append(obj.vals, v)
		}
		_, err = dec.Token() // '}'
		return obj, err
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err = dec.Token() // ']'
		return arr, err
	}
	return nil, errors.New("unexpected JSON delimiter")
}

// renderValue writes v as HTML, escaping all text: an object as a table of
// members, an array of objects as a table with a column per member, any
// other array as a comma-separated list, a scalar as its text. The JS
// render function in statusHTML does the same on refresh.
func renderValue(w *strings.Builder, v any) {
	switch v := v.(type) {
	case *jsonObject:
		w.WriteString("<table>")
		for i, k := range v.keys {
			w.WriteString("<tr><th>")
			template.HTMLEscape(w, []byte(k))
			w.WriteString("</th><td>")
			renderValue(w, v.vals[i])
			w.WriteString("</td></tr>")
		}
		w.WriteString("</table>")
	case []any:
		var cols []string
		for _, e := range v {
			o, ok := e.(*jsonObject)
			if !ok {
				cols = nil
				break
			}
			for _, k := range o.keys {
				if !slices.Contains(cols, k) {
					cols = append(cols, k)
				}
			}
		}
		if len(v) == 0 || cols == nil {
			for i, e := range v {
				if i > 0 {
					w.WriteString(", ")
				}
				renderValue(w, e)
			}
			return
		}
		w.WriteString("<table><tr>")
		for _, c := range cols {
			w.WriteString("<th>")
			template.HTMLEscape(w, []byte(c))
			w.WriteString("</th>")
		}
		w.WriteString("</tr>")
		for _, e := range v {
			o := e.(*jsonObject)
			w.WriteString("<tr>")
			for _, c := range cols {
				w.WriteString("<td>")
				if i := slices.Index(o.keys, c); i >= 0 {
					renderValue(w, o.vals[i])
				}
				w.WriteString("</td>")
			}
			w.WriteString("</tr>")
		}
		w.WriteString("</table>")
	case nil:
		w.WriteString("null")
	case string:
		template.HTMLEscape(w, []byte(v))
	case json.Number:
		template.HTMLEscape(w, []byte(v))
	case bool:
		if v {
			w.WriteString("true")
		} else {
			w.WriteString("false")
		}
	}
}

const statusHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>ringkv {{.NodeID}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em 2em;color:#222}
table{border-collapse:collapse;margin:.2em 0}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}
.note{color:#777}
</style></head><body>
<h1>ringkv node {{.NodeID}}</h1>
<p>Up {{.Uptime}}, since {{.Started}}.</p>
<h2>Members</h2>
{{if .Cluster}}<p>N = {{.Replicas}} replicas per key.</p>
<table><tr><th>id</th><th>http</th><th>gossip</th><th>state</th><th>ring share (primary)</th><th>hints held here</th></tr>
{{range .Cluster}}<tr><td>{{.ID}}</td><td>{{.HTTPAddr}}</td><td>{{.GossipAddr}}</td><td>{{.State}}</td><td>{{.Ownership}}</td><td>{{.Hints}}</td></tr>
{{end}}</table>
{{else}}<ul>{{range .Members}}<li>{{.}}</li>{{else}}<li class="note">none</li>{{end}}</ul>{{end}}
<h2>Requests</h2>
{{if .RequestsErr}}<p class="note">{{.RequestsErr}}</p>{{end}}
<table><tr><th>op</th><th>code</th><th>count</th></tr>
{{range .Requests}}<tr><td>{{.Op}}</td><td>{{.Code}}</td><td>{{.Count}}</td></tr>
{{end}}</table>
<h2>LSM</h2>
<p class="note" id="lsm-at">{{if .LSMErr}}{{.LSMErr}}{{else}}as of page load; refreshed every 2s{{end}}</p>
<div id="lsm">{{.LSM}}</div>
<script>
(function () {
  function el(tag, text) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function render(v) {
    if (Array.isArray(v)) {
      if (v.length > 0 && v.every(isObj)) {
        var cols = [];
        v.forEach(function (o) { Object.keys(o).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); }); });
        var t = el("table"), h = t.insertRow();
        cols.forEach(function (k) { h.appendChild(el("th", k)); });
        v.forEach(function (o) {
          var r = t.insertRow();
          cols.forEach(function (k) { var c = r.insertCell(); if (k in o) c.appendChild(render(o[k])); });
        });
        return t;
      }
      var s = el("span");
      v.forEach(function (x, i) { if (i > 0) s.appendChild(document.createTextNode(", ")); s.appendChild(render(x)); });
      return s;
    }
    if (isObj(v)) {
      var t = el("table");
      Object.keys(v).forEach(function (k) {
        var r = t.insertRow();
        r.appendChild(el("th", k));
        r.insertCell().appendChild(render(v[k]));
      });
      return t;
    }
    return el("span", v === null ? "null" : String(v));
  }
  function refresh() {
    fetch("/v1/lsm").then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (v) {
      document.getElementById("lsm").replaceChildren(render(v));
      document.getElementById("lsm-at").textContent = "updated " + new Date().toLocaleTimeString();
    }).catch(function (e) {
      document.getElementById("lsm-at").textContent = "refresh failed: " + e.message;
    });
  }
  setInterval(refresh, 2000);
})();
</script>
</body></html>
`
