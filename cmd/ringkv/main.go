// Command ringkv is the one ringkv binary: it runs a node (serve), talks to
// one (get, put, delete, scan, cluster), load-tests nodes and compaction
// profiles (bench), verifies a data directory offline (check), prints
// shell completion and its version. It only parses flags and wires
// packages together; the logic lives in the packages.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes a script can rely on.
const (
	exitOK       = 0 // success; for get, the key was found
	exitNotFound = 1 // get: the key is absent
	exitUsage    = 2 // bad usage, bad flag value, or the node could not be reached
	exitFailure  = 1 // serve: the node failed after starting
)

// command is one subcommand of ringkv.
type command struct {
	name  string
	synop string // what follows the name in the usage
	about string
	run   func(args []string, env *environ, stdin io.Reader, stdout, stderr io.Writer) int
	// subs are its own subcommands, for completion; flags apply to each
	// (the FlagSet is the command's, whichever sub is given).
	subs []string
	// noFlags: no flag set to complete (help, completion).
	noFlags bool
}

// commands is the table of subcommands, in the order usage lists them.
func commands() []command {
	kv := func(name string) func([]string, *environ, io.Reader, io.Writer, io.Writer) int {
		return func(args []string, env *environ, stdin io.Reader, stdout, stderr io.Writer) int {
			return kvCmd(name, args, env, stdin, stdout, stderr)
		}
	}
	var clusterSubs, clusterSynop []string
	for _, c := range clusterCommands() {
		clusterSubs = append(clusterSubs, c.name)
		clusterSynop = append(clusterSynop, strings.TrimSpace(c.name+" "+c.arg))
	}
	return []command{
		{name: "serve", synop: "[flags]", about: "run a node", run: withoutStdin(serve)},
		{name: "get", synop: "KEY", about: "print a key's value (client calls go to --addr)", run: kv("get")},
		{name: "put", synop: "KEY VALUE", about: "write a key (VALUE - reads stdin)", run: kv("put")},
		{name: "delete", synop: "KEY", about: "delete a key", run: kv("delete")},
		{name: "batch", synop: "FILE|-", about: "run many gets, puts and deletes in few requests", run: batchCmd},
		{name: "scan", synop: "[--prefix P] [--limit N | --all]", about: "list keys", run: withoutStdin(scanCmd)},
		{name: "cluster", synop: strings.Join(clusterSynop, " | "), about: "inspect and change the cluster", run: withoutStdin(cluster), subs: clusterSubs},
		{name: "backup", synop: "--to DIR [--nodes IDS]", about: "copy the members' stores out", run: withoutStdin(backupCmd)},
		{name: "restore", synop: "--from DIR/ID --data-dir D", about: "bring one node's copy back", run: func(args []string, _ *environ, _ io.Reader, stdout, stderr io.Writer) int {
			return restoreCmd(args, stdout, stderr)
		}},
		{name: "check", synop: "--data-dir D", about: "verify a stopped node's files offline", run: func(args []string, _ *environ, _ io.Reader, stdout, stderr io.Writer) int {
			return checkCmd(args, stdout, stderr)
		}},
		{name: "bench", synop: "[compaction] [flags]", about: "load test with live progress and a report (compaction: every compaction profile on one load)", run: withoutStdin(bench), subs: []string{"compaction"}},
		{name: "completion", synop: "bash | zsh | fish", about: "print shell completion", run: withoutStdin(completionCmd), subs: completionShells(), noFlags: true},
		{name: "version", synop: "[--json]", about: "print the version, VCS revision, Go and Pebble versions", run: withoutStdin(versionCmd)},
	}
}

func withoutStdin(f func([]string, *environ, io.Writer, io.Writer) int) func([]string, *environ, io.Reader, io.Writer, io.Writer) int {
	return func(args []string, env *environ, _ io.Reader, stdout, stderr io.Writer) int {
		return f(args, env, stdout, stderr)
	}
}

// usage is the text of 'ringkv help', from the table.
func usage() string {
	var b strings.Builder
	b.WriteString("ringkv: a distributed key-value store\n\nusage:\n")
	for _, c := range commands() {
		line := strings.TrimSpace("ringkv " + c.name + " " + c.synop)
		if len(line) > 44 {
			fmt.Fprintf(&b, "  %s\n  %44s %s\n", line, "", c.about)
			continue
		}
		fmt.Fprintf(&b, "  %-44s %s\n", line, c.about)
	}
	b.WriteString("\nRun 'ringkv COMMAND -h' for a command's flags.\n")
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	switch args[0] {
	case "--version", "-version":
		args = append([]string{"version"}, args[1:]...)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], newEnviron(), stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "ringkv: unknown command %q (run 'ringkv help')\n", args[0])
	return exitUsage
}
