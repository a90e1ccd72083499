package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ringkv/ringkv/client"
)

const batchUsage = `usage: ringkv batch FILE|- [--addr HOST[:PORT],...] [--consistency one|quorum|all]

Runs the operations of FILE (- for stdin), one a line, as POST /v1/batch
requests (1,000 items each), and prints one line per operation, in order.
Lines:

  put KEY VALUE [ttl=DURATION] [if-version=V | if-absent | if-present]
  get KEY [serial]
  delete KEY [if-version=V | if-present]

KEY and VALUE are percent-decoded (%20 is a space, %25 a percent sign,
%22 a double quote); a VALUE of "" is the empty value. Blank lines and lines starting with # are skipped. Output lines:

  200 KEY VERSION VALUE      a get that found the key
  404 KEY                    a get of an absent key
  204 KEY VERSION            a write applied
  412 KEY VERSION|absent     a condition that failed
  STATUS KEY error: MESSAGE  an item not applied (after retries)

with KEY and VALUE percent-encoded where they hold spaces, '%' or bytes
that do not print. Exit 0 when every write was applied and every get
answered, 1 when any item failed, 2 on bad usage, a bad line (nothing is
sent) or no node reachable.`

// batchCmd runs ringkv batch.
func batchCmd(args []string, env *environ, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := failer(stderr, "ringkv batch")
	var node nodeFlags
	var consistency string
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	node.add(fs, env, "nodes to send the batch to, comma-separated")
	fs.StringVar(&consistency, "consistency", "", "the items' default consistency: one, quorum or all (default: the node's, quorum)")
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, batchUsage, fs)
	}
	if err != nil {
		return fail("%v", err)
	}
	if len(pos) != 1 {
		return fail("want 1 argument (FILE or -), got %d", len(pos))
	}
	if err := checkConsistency("batch", consistency); err != nil {
		return fail("%v", err)
	}
	in := stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		in = f
	}
	ops, err := readBatch(in)
	if err != nil {
		return fail("%v", err)
	}
	cl, err := node.client()
	if err != nil {
		return fail("%v", err)
	}
	defer cl.CloseIdleConnections()
	res, err := cl.Batch(context.Background(), ops, client.WithConsistency(client.Consistency(consistency)))
	if err != nil {
		return fail("%v", err)
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	code := exitOK
	for i := range ops {
		line, ok := batchLine(&ops[i], &res[i])
		fmt.Fprintln(w, line)
		if !ok {
			code = exitFailure
		}
	}
	return code
}

// readBatch parses a batch file; the first bad line is an error naming it.
func readBatch(r io.Reader) ([]client.BatchOp, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var ops []client.BatchOp
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		op, err := parseBatchLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ops, nil
}

func parseBatchLine(line string) (client.BatchOp, error) {
	f := strings.Fields(line)
	var op client.BatchOp
	args := 1 // fields after the verb before the options
	switch f[0] {
	case "get":
		op.Kind = client.BatchGet
	case "put":
		op.Kind, args = client.BatchPut, 2
	case "delete":
		op.Kind = client.BatchDelete
	default:
		return op, fmt.Errorf("unknown operation %q: want put, get or delete", f[0])
	}
	if len(f) < 1+args {
		return op, fmt.Errorf("%s wants %d argument(s)", f[0], args)
	}
	key, err := url.PathUnescape(f[1])
	if err != nil || key == "" {
		return op, fmt.Errorf("bad key %q: want percent-encoded, non-empty", f[1])
	}
	op.Key = key
	if args == 2 && f[2] == `""` {
		op.Value = []byte{}
	} else if args == 2 {
		v, err := url.PathUnescape(f[2])
		if err != nil {
			return op, fmt.Errorf("bad value %q: want percent-encoded", f[2])
		}
		op.Value = []byte(v)
	}
	for _, o := range f[1+args:] {
		name, val, hasVal := strings.Cut(o, "=")
		switch {
		case name == "serial" && !hasVal && op.Kind == client.BatchGet:
			op.Consistency = client.Serial
		case name == "ttl" && hasVal && op.Kind == client.BatchPut:
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return op, fmt.Errorf("bad ttl %q: want a positive duration such as 30s", val)
			}
			op.TTL = d
		case name == "if-version" && hasVal && op.Kind != client.BatchGet:
			op.IfVersion = client.Version(val)
		case name == "if-absent" && !hasVal && op.Kind == client.BatchPut:
			op.IfAbsent = true
		case name == "if-present" && !hasVal && op.Kind != client.BatchGet:
			op.IfPresent = true
		default:
			return op, fmt.Errorf("option %q does not go with %s", o, f[0])
		}
	}
	if n := btoi(op.IfVersion != "") + btoi(op.IfAbsent) + btoi(op.IfPresent); n > 1 {
		return op, errors.New("if-version, if-absent and if-present exclude each other")
	}
	return op, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// batchLine is the output line of one item, and whether it succeeded.
func batchLine(op *client.BatchOp, r *client.BatchResult) (string, bool) {
	key := escapeField(op.Key)
	var ce *client.ConditionError
	var se *client.StatusError
	switch {
	case r.Err == nil && op.Kind == client.BatchGet:
		return fmt.Sprintf("200 %s %s %s", key, r.Version, escapeField(string(r.Value))), true
	case r.Err == nil:
		return fmt.Sprintf("204 %s %s", key, r.Version), true
	case op.Kind == client.BatchGet && errors.Is(r.Err, client.ErrNotFound):
		return "404 " + key, true
	case errors.As(r.Err, &ce) && ce.Exists:
		return fmt.Sprintf("412 %s %s", key, ce.Current), false
	case errors.As(r.Err, &ce):
		return fmt.Sprintf("412 %s absent", key), false
	case errors.As(r.Err, &se):
		return fmt.Sprintf("%d %s error: %s", se.Code, key, oneLine(se.Message)), false
	}
	return fmt.Sprintf("000 %s error: %s", key, oneLine(r.Err.Error())), false
}

// escapeField percent-encodes what would not survive as one field of a
// line: spaces, '%', and bytes that do not print. An empty value is "".
func escapeField(s string) string {
	if s == "" {
		return `""`
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '"' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
