package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClockSkew runs three nodes, the first on a failpoints build whose
// wall clock RINGKV_FAILPOINT_CLOCK_OFFSET sets ahead or behind, and
// checks that no acknowledged write is lost to it: writes it coordinates
// are refused (503 naming the offset), never acknowledged; writes through
// the others, each acknowledged after the last, read back in order; and
// the offset is measured, shown in /v1/cluster and exported.
func TestClockSkew(t *testing.T) {
	for _, skew := range []string{"1s", "-5s"} {
		t.Run(skew, func(t *testing.T) {
			fp := failpointBinary(t)
			nodes := newCluster(t, 3, "--replicas", "3")
			nodes[0].bin, nodes[0].env = fp, []string{"RINGKV_FAILPOINT_CLOCK_OFFSET=" + skew}
			startJoined(t, nodes)
			skewed, n2, n3 := nodes[0], nodes[1], nodes[2]

			// Writes through the skewed node are refused, and refused for the
			// clock, from the first one on: before offsets are measured the
			// replicas refuse (or, behind, the node's stamps are older than
			// everything, which the measured offsets then stop).
			poll(t, 30*time.Second, "the skewed node's clock error in /v1/cluster", func() (bool, string) {
				st, err := status(skewed.http)
				if err != nil {
					return false, err.Error()
				}
				return st.ClockError != "", fmt.Sprintf("clock_error %q, members %+v", st.ClockError, st.Members)
			})
			st, err := status(n2.http)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range st.Members {
				if m.ID == "n1" && (m.Clock == nil || m.Clock.Offset.Abs() < 800*time.Millisecond) {
					t.Fatalf("n2's /v1/cluster shows n1's clock as %+v, want about %s off", m.Clock, skew)
				}
			}
			if v := metric(t, n2.http, `ringkv_clock_offset_seconds{peer="n1"}`); v > -0.8 && v < 0.8 {
				t.Fatalf("ringkv_clock_offset_seconds{peer=n1} on n2 = %g", v)
			}

			for i := range 20 {
				k := fmt.Sprintf("k%d", i)
				code, b, err := call(http.MethodPut, kvURL(skewed.http, k, "all"), "through-the-skewed-node")
				if err != nil {
					t.Fatal(err)
				}
				if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "clock") {
					t.Fatalf("PUT %s through the node %s off: %d %s, want 503 naming the clock", k, skew, code, b)
				}
				want := ""
				if i%2 == 0 {
					want = "v2"
					if code, b, err := call(http.MethodPut, kvURL(n2.http, k, "quorum"), want); err != nil || code != http.StatusNoContent {
						t.Fatalf("PUT %s through n2: %d %s %v", k, code, b, err)
					}
				} else if code, b, err := call(http.MethodDelete, kvURL(n2.http, k, "quorum"), ""); err != nil || code != http.StatusNoContent {
					t.Fatalf("DELETE %s through n2: %d %s %v", k, code, b, err)
				}
				for _, c := range []*cnode{n2, n3} {
					code, b, err := call(http.MethodGet, kvURL(c.http, k, "quorum"), "")
					if err != nil {
						t.Fatal(err)
					}
					if want == "" && code != http.StatusNotFound || want != "" && (code != http.StatusOK || string(b) != want) {
						t.Fatalf("GET %s via %s: %d %q, want %q (the write acknowledged last)", k, c.id, code, b, want)
					}
				}
			}
		})
	}
}
