//go:build !failpoints

package main

import "time"

// failpointWall is the process's wall clock: time.Now. (A build with
// -tags failpoints can offset it; this one has no such knob.)
func failpointWall() (func() time.Time, error) { return time.Now, nil }
