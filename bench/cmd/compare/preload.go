package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// preloadSpec is what a run writes before it reads: key-0 .. key-(Keys-1),
// each ValueSize bytes, over Conns connections.
type preloadSpec struct {
	Addr      string
	Keys      int
	ValueSize int
	Conns     int
	Shuffle   bool     // write the keys in a random order
	Prefix    []string // e.g. taskset for the load generator's CPUs
}

// preload writes the keys with bench/cmd/preload, the preloader the
// scripts ran (it is built with the other binaries). NB: bench/load
// exports no preloader yet, and bench/load's own one cannot shuffle;
// when the client package's preloader lands, this function is the one
// place to switch over.
func (h *harness) preload(ctx context.Context, s preloadSpec) error {
	argv := append(append([]string{}, s.Prefix...), filepath.Join(h.bin, "preload"),
		"--addr", s.Addr, "--keys", strconv.Itoa(s.Keys), "--value-size", strconv.Itoa(s.ValueSize),
		"--concurrency", strconv.Itoa(s.Conns), "--wait", "30s", "--shuffle="+strconv.FormatBool(s.Shuffle))
	if err := h.runTo(ctx, 6*time.Hour, h.log, nil, argv...); err != nil {
		return fmt.Errorf("cannot preload %s: %w", s.Addr, err)
	}
	return nil
}
