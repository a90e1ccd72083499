package httpd

import (
	"strings"
	"testing"
)

// TestBuildInfoMetric: /metrics carries ringkv_build_info with the labels
// of Config.Build, per server: two nodes in one process each show their
// own.
func TestBuildInfoMetric(t *testing.T) {
	builds := []BuildInfo{
		{Version: "v1.2.3", Revision: "0123456789abcdef", GoVersion: "go1.26.8"},
		{Version: "devel-fedcba987654", Revision: "fedcba9876543210", GoVersion: "go1.27"},
	}
	var servers []*testServer
	for _, b := range builds {
		servers = append(servers, newTestServer(t, Config{Build: b}))
	}
	for i, ts := range servers {
		resp := ts.roundTrip(t, rawRequest("GET", "/metrics", nil), false)
		if resp.StatusCode() != 200 {
			t.Fatalf("GET /metrics = %d %s", resp.StatusCode(), resp.Body())
		}
		var got []string
		for _, line := range strings.Split(string(resp.Body()), "\n") {
			if strings.HasPrefix(line, "ringkv_build_info") {
				got = append(got, line)
			}
		}
		b := builds[i]
		want := `ringkv_build_info{goversion="` + b.GoVersion + `",revision="` + b.Revision + `",version="` + b.Version + `"} 1`
		if len(got) != 1 || got[0] != want {
			t.Fatalf("server %d: ringkv_build_info lines %q, want [%q]", i, got, want)
		}
	}
}
