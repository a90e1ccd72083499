package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/bench/load"
	"github.com/ringkv/ringkv/bench/workload"
)

// fakeReports are what `ringkv bench` reports of a put, a cas and a
// batch-put run of 10s.
func fakeReports(putOK uint64, p99 float64) map[workload.Workload]*load.Report {
	put := &load.Report{Elapsed: 10, Summary: load.Summary{Requests: putOK, OK: putOK, RPS: float64(putOK) / 10, Latency: load.Latency{P99: p99}}}
	cas := &load.Report{Elapsed: 10, Summary: load.Summary{Requests: 2 * putOK / 2, OK: putOK / 2, RPS: float64(putOK) / 10, Latency: load.Latency{P99: 9 * p99}},
		CAS: &load.CASSummary{Increments: putOK / 4, IncrementsPerSecond: float64(putOK) / 40, Conflicts: 3, PutLatency: load.Latency{P99: 2 * p99}, Match: true}}
	batch := &load.Report{Elapsed: 10, Summary: load.Summary{Requests: putOK / 50, OK: putOK / 50, RPS: float64(putOK) / 500, Latency: load.Latency{P99: 5 * p99}},
		Batch: &load.BatchSummary{BatchSize: 100, Items: 2 * putOK, OK: 2*putOK - 2, Unprocessed: 2, ItemsPerSecond: float64(2*putOK) / 10}}
	return map[workload.Workload]*load.Report{workload.Put: put, workload.CAS: cas, workload.BatchPut: batch}
}

// TestAPIRunOf: each workload's unit comes from its own part of the
// report (PUTs answered, increments acknowledged, items applied), its p99
// from the conditional PUT for cas, and the server CPU is per unit.
func TestAPIRunOf(t *testing.T) {
	reps := fakeReports(10000, 2)
	// 100 ticks at 100 Hz is 1s of CPU.
	put := apiRunOf(workload.Put, reps[workload.Put], 100, 100)
	if put.Ops != 1000 || put.Units != 10000 || put.P99MS != 2 || put.CPU != 100 || put.Failed != 0 {
		t.Errorf("put %+v", put)
	}
	cas := apiRunOf(workload.CAS, reps[workload.CAS], 100, 100)
	if cas.Ops != 250 || cas.Units != 2500 || cas.P99MS != 4 || cas.CPU != 400 || cas.Conflict != 3 || cas.Problem != "" {
		t.Errorf("cas %+v", cas)
	}
	b := apiRunOf(workload.BatchPut, reps[workload.BatchPut], 100, 100)
	if b.Ops != 1999.8 || b.Units != 19998 || b.RPS != 20 || b.P99MS != 10 || b.CPU != 50.01 || b.Failed != 2 {
		t.Errorf("batch-put %+v", b)
	}
	reps[workload.CAS].CAS.Match, reps[workload.CAS].CAS.Problem = false, "the counters total 1, not the 2 their increments make"
	if r := apiRunOf(workload.CAS, reps[workload.CAS], 100, 100); r.Problem == "" {
		t.Error("a failed counter check is lost")
	}
}

// TestAPIReport: medians over rounds per cluster size, the ratios to plain
// PUT on the same size, and a failed counter check said in the table's
// notes.
func TestAPIReport(t *testing.T) {
	res := map[string][]apiRun{}
	for _, n := range []string{"1", "3"} {
		for round, p99 := range []float64{2, 4, 3} {
			reps := fakeReports(10000*uint64(round+1), p99)
			for _, w := range apiWorkloads {
				run := apiRunOf(w, reps[w], 100, 100)
				if n == "3" && w == workload.CAS && round == 2 {
					run.Problem = "the counters total 1, not the 2 their increments make"
				}
				res[n+","+string(w)] = append(res[n+","+string(w)], run)
			}
		}
	}
	c := apiConfig{Duration: 10 * time.Second, Rounds: 3, Keys: 100000, ValueSize: 100, BatchSize: 100, Concurrency: 64, Nodes: "1,3"}
	rep := apiReport{Date: "x", Commit: "abc", Config: c, Sizes: []int{1, 3}, CPUs: 2, Results: res}
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	// Medians of 1000/2000/3000 PUTs/s, p99 2/4/3ms, CPU 100/50/33.33.
	for _, want := range []string{
		"| 1 | put | 2000.00 PUTs/s | **1.000** | 2000.00 | 3.000 | 1.000 | 50.00 | 1.000 | 60000 | 0 | 0 |",
		"| 1 | cas | 500.00 increments/s | **0.250** | 2000.00 | 6.000 | 2.000 | 200.00 | 4.000 | 15000 | 9 | 0 |",
		"| 3 | batch-put | 3999.80 items/s | **2.000** | 40.00 | 15.000 | 5.000 | 25.00 | 0.500 | 119994 | 0 | 6 |",
		"`go run ./bench/cmd/compare api -duration 10s -rounds 3 -keys 100000 -value-size 100 -batch-size 100 -concurrency 64 -nodes 1,3`",
		"**Counter check failed**: 3 node(s) cas: the counters total 1",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatalf("json: %v\n%s", err, js)
	}
	var three map[string]map[string]any
	json.Unmarshal(raw["3_nodes"], &three)
	if three["batch-put"]["ratio_to_put"] != 2.0 || three["cas"]["p99_ratio_to_put"] != 2.0 || three["put"]["unit"] != "PUTs" {
		t.Errorf("3_nodes: %v", three)
	}
}

func TestAPIUsage(t *testing.T) {
	for _, args := range [][]string{{"api", "-batch-size", "0"}, {"api", "-batch-size", "1001"}, {"api", "-nodes", "1,x"},
		{"api", "-nodes", ""}, {"api", "-duration", "10ms"}, {"api", "-rounds", "0"}, {"api", "-concurrency", "0"}} {
		var out, errb strings.Builder
		if got := run(args, &out, &errb); got != exitUsage || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("run %v = %d, stderr %q; want exit 2 and one line", args, got, errb.String())
		}
	}
	var out, errb strings.Builder
	if got := run([]string{"api", "-h"}, &out, &errb); got != exitOK || !strings.Contains(errb.String(), "-batch-size") {
		t.Errorf("api -h = %d, stderr %s", got, errb.String())
	}
}
