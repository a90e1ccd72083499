package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseBins(t *testing.T) {
	got, err := parseBins("old=/tmp/a, /tmp/b ,")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (cwBuild{"old", "/tmp/a"}) || got[1] != (cwBuild{"/tmp/b", "/tmp/b"}) {
		t.Errorf("parseBins = %+v", got)
	}
	// Relative paths are made absolute: the nodes run in the temp dir.
	rel, err := parseBins("new=bin/ringkv")
	if err != nil || !filepath.IsAbs(rel[0].Path) {
		t.Errorf("relative path: %+v, %v", rel, err)
	}
	for _, bad := range []string{"=x", "a=", "a=/x,a=/y"} {
		if _, err := parseBins(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseBins(%q) = %v, want a usage error", bad, err)
		}
	}
	if got, err := parseBins(""); err != nil || len(got) != 0 {
		t.Errorf("empty -bins: %v, %v", got, err)
	}
}

func TestMetricSamples(t *testing.T) {
	page := []byte(`# TYPE ringkv_clock_offset_seconds gauge
ringkv_clock_offset_seconds{peer="n2"} -0.0004
ringkv_clock_offset_seconds{peer="n3"} 0.0002
ringkv_clock_offset_seconds_other 9
ringkv_commit_waits_total 21
`)
	if s := metricSamples(page, "ringkv_clock_offset_seconds"); len(s) != 2 || s[0] != -0.0004 || s[1] != 0.0002 {
		t.Errorf("metricSamples = %v", s)
	}
	if _, err := metricValue(page, "ringkv_clock_offset_seconds"); err == nil {
		t.Error("metricValue took a labelled sample")
	}
	if v, err := metricValue(page, "ringkv_commit_waits_total"); err != nil || v != 21 {
		t.Errorf("metricValue = %v, %v", v, err)
	}
}

func TestCommitwaitReport(t *testing.T) {
	builds := []cwBuild{{"old", "/a"}, {"new", "/b"}}
	res := map[string][]cwRun{
		"old": {{RPS: 1000, P50US: 4000, P99US: 9000, CPU: 110, Requests: 10000, Waits: 20, WaitSec: 0.004, MaxOffsetSec: 0.0003},
			{RPS: 1200, P50US: 5000, P99US: 8000, CPU: 100, Requests: 12000, Waits: 30, WaitSec: 0.006, MaxOffsetSec: 0.0005}},
		"new": {{RPS: 900, P50US: 4000, P99US: 9000, CPU: 120, Requests: 9000, Failed: 2},
			{RPS: 800, P50US: 4000, P99US: 9000, CPU: 130, Requests: 8000, Exceeded: true}},
	}
	rep := cwReport{Date: "x", Commit: "abc", Config: commitwaitConfig{wrkConfig: wrkConfig{Duration: 10 * time.Second, Rounds: 2, Keys: 100000, ValueSize: 100, Conns: 64, Threads: 1}, Bins: "old=/a,new=/b"}, Builds: builds, CPUs: 2, Results: res}
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	// Two rounds: matrix.Median's lower middle; counts summed over rounds,
	// the offset maxed; the ratio is to the first build.
	for _, want := range []string{
		"| old | 1000.00 | **1.000** | 4.00 | 8.00 | 100.00 | 22000 | 50 | 0.200 | 0.500 | false | 0 |",
		"| new | 800.00 | **0.800** | 4.00 | 9.00 | 120.00 | 17000 | 0 | - | 0.000 | true | 2 |",
		"`go run ./bench/cmd/compare commitwait -bins old=/a,new=/b -duration 10s -rounds 2 -keys 100000 -value-size 100 -conns 64 -threads 1`",
		"builds old (/a), new (/b)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
	if !strings.Contains(string(js), `"raw": "1000.00 110.00 9.00ms 20;1200.00 100.00 8.00ms 30;"`) {
		t.Errorf("json:\n%s", js)
	}
}
