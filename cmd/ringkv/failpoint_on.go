//go:build failpoints

package main

import (
	"fmt"
	"os"
	"time"
)

// failpointWall is the process's wall clock, offset by
// RINGKV_FAILPOINT_CLOCK_OFFSET (a Go duration, e.g. 1s or -5s): tests
// run one node of a cluster with a skewed clock this way. Only a build
// with -tags failpoints reads the variable.
func failpointWall() (func() time.Time, error) {
	s := os.Getenv("RINGKV_FAILPOINT_CLOCK_OFFSET")
	if s == "" {
		return time.Now, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("RINGKV_FAILPOINT_CLOCK_OFFSET %q: %v", s, err)
	}
	return func() time.Time { return time.Now().Add(d) }, nil
}
