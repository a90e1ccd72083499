package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The alert rules and the dashboard under deploy/ query a node's /metrics
// by name; these tests keep them in step with what a node exports.

const (
	alertsFile    = "../../deploy/prometheus/alerts.yaml"
	dashboardFile = "../../deploy/grafana/ringkv.json"
)

// metricRef finds the names of a node's own series in a PromQL
// expression: ringkv's, and the Go client's process_ and go_ ones. The
// only other series the files may use is Prometheus's own `up`.
var metricRef = regexp.MustCompile(`\b(?:ringkv|process|go)_[a-z0-9_]+\b`)

// alertExprs returns the expr of every rule in an alert rules file: a
// one-line `expr: ...`, or a block (`expr: >-`) of the lines indented
// deeper than it.
func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		key := strings.TrimLeft(lines[i], " ")
		v, ok := strings.CutPrefix(key, "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v != ">-" && v != ">" && v != "|" && v != "|-" {
			out = append(out, v)
			continue
		}
		indent := len(lines[i]) - len(key)
		var block []string
		for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
			i++
			block = append(block, strings.TrimSpace(lines[i]))
		}
		out = append(out, strings.Join(block, " "))
	}
	return out
}

// dashboard is what the tests read of a Grafana dashboard.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title      string `json:"title"`
	Type       string `json:"type"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func readDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// dashboardExprs returns the PromQL of every panel and of the variables'
// queries, each with the panel or variable it is from.
func dashboardExprs(d dashboard) map[string]string {
	out := map[string]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				out[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out["variable "+v.Name] = v.Definition
		}
	}
	return out
}

// selectorRef finds a node's series with label matchers, and labelRef
// each matcher of one.
var (
	selectorRef = regexp.MustCompile(`\b((?:ringkv|process|go)_[a-z0-9_]+)\{([^}]*)\}`)
	labelRef    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// refs returns what a PromQL expression needs of a node's /metrics: each
// metric name, each label it matches on (name{label}), and each exact
// value it matches (name{label="value"}). job and instance are
// Prometheus's target labels, and values with a Grafana $variable are
// the user's to pick.
func refs(expr string) []string {
	out := metricRef.FindAllString(expr, -1)
	for _, sel := range selectorRef.FindAllStringSubmatch(expr, -1) {
		for _, m := range labelRef.FindAllStringSubmatch(sel[2], -1) {
			label, op, value := m[1], m[2], m[3]
			if label == "job" || label == "instance" {
				continue
			}
			out = append(out, sel[1]+"{"+label+"}")
			if op == "=" && !strings.Contains(value, "$") {
				out = append(out, fmt.Sprintf("%s{%s=%q}", sel[1], label, value))
			}
		}
	}
	return out
}

// exported returns the refs (see refs) a /metrics text answers: the
// name of every sample, with each of its labels, and each label's value.
func exported(text []byte) map[string]bool {
	have := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 {
			continue
		}
		name := line[:i]
		have[name] = true
		if line[i] != '{' {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		for _, m := range labelRef.FindAllStringSubmatch(line[i+1:max(end, i+1)], -1) {
			have[name+"{"+m[1]+"}"] = true
			have[fmt.Sprintf("%s{%s=%q}", name, m[1], m[3])] = true
		}
	}
	return have
}

// usedRefs maps every ref (see refs) of the alert rules' and the
// dashboard's queries to where one of them makes it, and fails if either
// file seems to use hardly any metric (a tokenizer that finds nothing
// proves nothing).
func usedRefs(t *testing.T) map[string]string {
	t.Helper()
	used := map[string]string{}
	count := func(file string, exprs map[string]string, least int) {
		n := 0
		for where, e := range exprs {
			n += len(metricRef.FindAllString(e, -1))
			for _, r := range refs(e) {
				if _, ok := used[r]; !ok {
					used[r] = file + ": " + where
				}
			}
		}
		if n < least {
			t.Fatalf("%s: %d metric names found in its queries, want at least %d", file, n, least)
		}
	}
	rules := map[string]string{}
	for i, e := range alertExprs(t, alertsFile) {
		rules[fmt.Sprintf("rule %d", i+1)] = e
	}
	count(alertsFile, rules, 20)
	count(dashboardFile, dashboardExprs(readDashboard(t, dashboardFile)), 40)
	return used
}

// TestDeployMetricsExist: every metric the alert rules and the Grafana
// dashboard query, with the labels they match on and the label values
// they pick, is on /metrics of a node of a running 3-node cluster that
// has served a few reads and writes, so a renamed or dropped metric or
// label breaks this test instead of an operator's alerts.
func TestDeployMetricsExist(t *testing.T) {
	used := usedRefs(t)
	nodes := newCluster(t, 3)
	startJoined(t, nodes)
	for i := range 20 {
		k := fmt.Sprintf("dash-%d", i)
		if code, b, err := call(http.MethodPut, kvURL(nodes[0].http, k, ""), "v"); err != nil || code != http.StatusNoContent {
			t.Fatalf("PUT %s: %d %s %v", k, code, b, err)
		}
		if code, b, err := call(http.MethodGet, kvURL(nodes[0].http, k, ""), ""); err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %s %v", k, code, b, err)
		}
	}
	// Peers' clock offsets come with the first gossip probes.
	poll(t, time.Minute, "every metric of the rules and the dashboard on /metrics", func() (bool, string) {
		code, b, err := call(http.MethodGet, "http://"+nodes[0].http+"/metrics", "")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /metrics: %d %v", code, err)
		}
		have := exported(b)
		var missing []string
		for r, where := range used {
			if !have[r] {
				missing = append(missing, r+" ("+where+")")
			}
		}
		slices.Sort(missing)
		return len(missing) == 0, "not exported: " + strings.Join(missing, ", ")
	})
}

// TestDashboardShape: the dashboard imports into any Grafana with a
// Prometheus data source: it picks the data source, the job and the
// nodes by variables, and every panel queries through them.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t, dashboardFile)
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want 39 or later", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s: type %q, want %q", name, vars[name], typ)
		}
	}
	panels := 0
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			panels++
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not query the ${datasource} variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `job="$job"`) {
					t.Errorf("panel %q: %s does not select job=\"$job\"", p.Title, tg.Expr)
				}
			}
		}
	}
	walk(d.Panels)
	if panels < 20 {
		t.Errorf("%d panels, want the cluster's requests, replication, LSM, disk and clocks", panels)
	}
}

// TestDashboardQueriesParse: promtool parses every panel's query, with
// Grafana's variables given values, as it parses alerts.yaml (.ci/run).
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no promtool on PATH: .ci/run installs Debian's prometheus")
		}
		t.Skip("no promtool on PATH (apt-get install prometheus; CI installs it)")
	}
	exprs := dashboardExprs(readDashboard(t, dashboardFile))
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", "ringkv", "$instance", ".*")
	n := 0
	for where, e := range exprs {
		if strings.HasPrefix(where, "variable ") {
			continue // label_values(): Grafana's, not PromQL
		}
		n++
		q, _ := json.Marshal(vars.Replace(e)) // a JSON string is a YAML one
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules of the dashboard's queries: %v\n%s\n%s", err, out, rules.String())
	}
}

// TestMetricRefs: what TestDeployMetricsExist asks of /metrics for a
// query, and what it finds there.
func TestMetricRefs(t *testing.T) {
	got := refs(`max by (job) (ringkv_members{job="$job",state="dead"}) > 0 and rate(ringkv_requests_total{instance=~"$instance",code=~"5.."}[5m]) or time() - process_start_time_seconds`)
	want := []string{"ringkv_members", "ringkv_requests_total", "process_start_time_seconds",
		"ringkv_members{state}", `ringkv_members{state="dead"}`, "ringkv_requests_total{code}"}
	if !slices.Equal(got, want) {
		t.Errorf("refs = %q, want %q", got, want)
	}
	have := exported([]byte("# HELP ringkv_members x\n# TYPE ringkv_members gauge\n" +
		`ringkv_members{state="dead"} 0` + "\n" + `ringkv_pebble_write_stalls_total{reason="memtable count limit reached"} 1` + "\nup 1\n"))
	for _, r := range []string{"ringkv_members", "ringkv_members{state}", `ringkv_members{state="dead"}`, "up",
		"ringkv_pebble_write_stalls_total{reason}", `ringkv_pebble_write_stalls_total{reason="memtable count limit reached"}`} {
		if !have[r] {
			t.Errorf("exported lacks %s: %v", r, have)
		}
	}
	if have[`ringkv_members{state="alive"}`] || have["ringkv_members{node}"] {
		t.Errorf("exported has what the text has not: %v", have)
	}
}
