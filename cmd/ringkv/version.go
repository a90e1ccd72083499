package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/httpd"
)

// Set at build time with -ldflags "-X main.version=v1.2.3 -X
// main.revision=SHA ..." (deploy/release.sh does): each wins over what Go
// stamps. Go stamps no VCS facts in a git worktree, a source tarball, or
// with -buildvcs=false, hence revision and the rest.
var (
	version      = ""
	revision     = ""
	revisionTime = "" // RFC 3339, UTC
	modified     = "" // "true" when the tree had uncommitted changes
)

// pebbleModule is the module whose version 'ringkv version' reports.
const pebbleModule = "github.com/cockroachdb/pebble/v2"

// buildInfo is what this binary knows of how it was built: 'ringkv
// version' prints it, /metrics exports part of it (ringkv_build_info).
type buildInfo struct {
	Version string `json:"version"`
	// Revision, Time and Modified are the VCS stamp Go records when it
	// builds in a checkout (vcs.revision, vcs.time, vcs.modified): empty
	// with -buildvcs=false or outside one.
	Revision  string `json:"revision"`
	Time      string `json:"revision_time"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	Pebble    string `json:"pebble_version"`
	// PebbleFormat is the format major version the engine opens stores
	// at: a store, once opened, needs a binary that knows it.
	PebbleFormat uint64 `json:"pebble_format_major_version"`
}

// currentBuild reads this binary's build information.
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo() // nil without module support
	return newBuildInfo(ldStamp{version, revision, revisionTime, modified}, bi)
}

// ldStamp is what -ldflags -X set: version, revision, revisionTime and
// modified, "" when not set.
type ldStamp struct{ version, revision, time, modified string }

// newBuildInfo makes the build information from the -X values (ld) and
// Go's (bi, nil when unavailable); a -X value wins over Go's.
func newBuildInfo(ld ldStamp, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{
		Version: ld.version, GoVersion: runtime.Version(), Pebble: "unknown",
		Platform: runtime.GOOS + "/" + runtime.GOARCH, PebbleFormat: engine.FormatMajorVersion,
	}
	if bi != nil {
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		if b.Version == "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == pebbleModule {
				b.Pebble = d.Version
				if d.Replace != nil {
					b.Pebble = d.Replace.Version
				}
			}
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if ld.revision != "" {
		b.Revision, b.Time, b.Modified = ld.revision, ld.time, ld.modified == "true"
	}
	if b.Version == "" {
		b.Version = "devel"
		if len(b.Revision) >= 12 {
			b.Version += "-" + b.Revision[:12]
		}
	}
	return b
}

// String is the one line the status page shows.
func (b buildInfo) String() string {
	return fmt.Sprintf("ringkv %s (%s, pebble %s)", b.Version, b.GoVersion, b.Pebble)
}

// metric is the build's ringkv_build_info labels.
func (b buildInfo) metric() httpd.BuildInfo {
	return httpd.BuildInfo{Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion}
}

// write prints b for 'ringkv version': the version line, then one line
// per fact.
func (b buildInfo) write(w io.Writer) {
	rev, when := b.Revision, b.Time
	if rev == "" {
		rev = "unknown"
	}
	if b.Modified {
		rev += " (modified)"
	}
	if when == "" {
		when = "unknown"
	}
	fmt.Fprintf(w, "ringkv %s\n", b.Version)
	fmt.Fprintf(w, "  revision:  %s\n", rev)
	fmt.Fprintf(w, "  time:      %s\n", when)
	fmt.Fprintf(w, "  go:        %s %s\n", b.GoVersion, b.Platform)
	fmt.Fprintf(w, "  pebble:    %s, format major version %d\n", b.Pebble, b.PebbleFormat)
}

// versionCmd is 'ringkv version [--json]'.
func versionCmd(args []string, _ *environ, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ringkv version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the build information as one JSON object")
	rest, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, "usage: ringkv version [--json]", fs)
	}
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected argument %q", rest[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringkv version: %v\n", err)
		return exitUsage
	}
	b := currentBuild()
	if !*asJSON {
		b.write(stdout)
		return exitOK
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		fmt.Fprintf(stderr, "ringkv version: %v\n", err)
		return exitFailure
	}
	return exitOK
}
