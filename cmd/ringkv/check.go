package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
)

const checkUsage = `usage: ringkv check --data-dir D [--json]

Verifies a stopped node's data directory offline: opens the store
read-only (the MANIFEST and the WALs are read, nothing is written) and
reads every block of every live SSTable against its checksum. Prints each
damaged file with its kind, the token span of data it covers and the
error, and notes a WAL whose replay stops before bytes that do not read
as records (a write torn by a crash, or damage that loses the writes
after it; the store still opens, so this alone is not "damaged"). A directory a running node holds (its LOCK) is refused: stop the
node, or check a copy.

Exit 0 when the store is clean; 1 when a file is damaged or the store does
not open; 2 for bad usage, or a directory that cannot be checked (missing,
not a data directory, or in use).`

// checkCmd runs 'ringkv check'.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	var dataDir string
	var asJSON bool
	fs := flag.NewFlagSet("ringkv check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&dataDir, "data-dir", "", "the data directory to verify (required)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ringkv check: %s\n", fmt.Sprintf(format, a...))
		return exitUsage
	}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, checkUsage, fs)
	}
	switch {
	case err != nil:
		return fail("%v", err)
	case len(pos) != 0:
		return fail("unexpected argument %q", pos[0])
	case dataDir == "":
		return fail("--data-dir D is required")
	}
	rep, err := engine.Check(dataDir, nil)
	if err != nil {
		return fail("%s", oneLine(err.Error()))
	}
	code := exitOK
	if len(rep.Damaged) > 0 {
		code = exitFailure
	}
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return code
	}
	for _, d := range rep.Damaged {
		var where []string
		if d.Data {
			where = append(where, d.TokenSpan())
		}
		where = append(where, d.Other...)
		line := fmt.Sprintf("damaged %s (%s)", orDefault(d.File, "store"), d.Kind)
		if len(where) > 0 {
			line += " covering " + strings.Join(where, ", ")
		}
		if d.Smallest != "" {
			line += fmt.Sprintf(", keys %s to %s", d.Smallest, d.Largest)
		}
		fmt.Fprintf(stdout, "%s: %s\n", line, oneLine(d.Error))
	}
	for _, w := range rep.WALTails {
		fmt.Fprintf(stdout, "note: WAL %s\n", w)
	}
	status := "clean"
	if n := len(rep.Damaged); n > 0 {
		status = fmt.Sprintf("%d damaged file(s)", n)
	}
	fmt.Fprintf(stdout, "%s: %d tables (%s) verified; %s\n", dataDir, rep.Tables, compaction.FormatBytes(uint64(rep.Bytes)), status)
	return code
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
