// Command ringkv is the one ringkv binary: it runs a node (serve), talks to
// one (get, put, delete, scan, cluster), load-tests nodes and compaction
// profiles (bench), verifies a data directory offline (check), and prints
// its version. It only parses flags and wires
// packages together; the logic lives in the packages.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes a script can rely on.
const (
	exitOK       = 0 // success; for get, the key was found
	exitNotFound = 1 // get: the key is absent
	exitUsage    = 2 // bad usage, bad flag value, or the node could not be reached
	exitFailure  = 1 // serve: the node failed after starting
)

const usage = `ringkv: a distributed key-value store

usage:
  ringkv serve [flags]                          run a node
  ringkv get KEY | put KEY VALUE | delete KEY   client calls against --addr
  ringkv scan [--prefix P] [--limit N]          list keys
  ringkv cluster status | ring KEY | remove ID | leave
                                                inspect and change the cluster
  ringkv backup --to DIR | restore --from DIR   copy every node's store out, bring one back
  ringkv check --data-dir D                     verify a stopped node's files offline
  ringkv bench [flags]                          load test with live progress and a report
  ringkv bench compaction [flags]               every compaction profile on one write-heavy load
  ringkv version                                print the version

Run 'ringkv COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	env := newEnviron()
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(rest, env, stdout, stderr)
	case "get", "put", "delete", "scan":
		return client(cmd, rest, env, stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "bench":
		return bench(rest, env, stdout, stderr)
	case "cluster":
		return cluster(rest, env, stdout, stderr)
	case "backup":
		return backupCmd(rest, env, stdout, stderr)
	case "restore":
		return restoreCmd(rest, stdout, stderr)
	case "check":
		return checkCmd(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "ringkv: unknown command %q (run 'ringkv help')\n", cmd)
		return exitUsage
	}
}
