package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ringkv/ringkv/client"
)

// nodeFlags are the flags of every command that calls nodes: where they
// are, how long to wait, and the credentials.
type nodeFlags struct {
	addr    string
	timeout time.Duration
	token   string
	tls     tlsFlags
}

// add binds the flags; --addr defaults to RINGKV_ADDR, else NODE_ADDRESS.
func (n *nodeFlags) add(fs *flag.FlagSet, env *environ, addrUse string) {
	n.addr, n.timeout = "127.0.0.1:8080", client.DefaultTimeout
	if v, _, ok := env.lookup("RINGKV_ADDR"); ok {
		n.addr = v
	} else if v, _, ok := env.lookup("NODE_ADDRESS"); ok {
		n.addr = normalizeNodeAddress(v)
	}
	fs.StringVar(&n.addr, "addr", n.addr, addrUse+"; a HOST without a port means port 8080 (also RINGKV_ADDR)")
	fs.DurationVar(&n.timeout, "timeout", n.timeout, "request timeout")
	addTokenFlag(fs, env, &n.token)
	n.tls.add(fs, env)
}

// addrs splits --addr's comma-separated list.
func (n *nodeFlags) addrs() []string {
	var out []string
	for _, a := range strings.Split(n.addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// client returns the client the flags describe; errors name the flag.
func (n *nodeFlags) client() (*client.Client, error) {
	if n.timeout <= 0 {
		return nil, fmt.Errorf("--timeout (%s) must be positive", n.timeout)
	}
	tc, err := n.tls.config()
	if err != nil {
		return nil, err
	}
	addrs := n.addrs()
	if len(addrs) == 0 {
		return nil, errors.New("--addr: want HOST[:PORT]")
	}
	for _, a := range addrs {
		if _, err := client.BaseURL(a); err != nil {
			return nil, fmt.Errorf("--addr %q: want HOST[:PORT] or http(s)://HOST[:PORT]", a)
		}
	}
	return client.Config{Addrs: addrs, Token: n.token, TLS: tc, Timeout: n.timeout}.New()
}

// addTokenFlag binds --token, whose default is RINGKV_TOKEN.
func addTokenFlag(fs *flag.FlagSet, env *environ, token *string) {
	if v, _, ok := env.lookup("RINGKV_TOKEN"); ok {
		*token = v
	}
	fs.StringVar(token, "token", *token, "bearer token, for a node with --auth-file (also RINGKV_TOKEN, which ps does not show)")
}

// kvConfig holds the flags of get, put and delete.
type kvConfig struct {
	node        nodeFlags
	consistency string
	ttl         time.Duration
	// ifVersion and ifAbsent make a put or delete a compare-and-set;
	// showVersion makes get print the version first.
	ifVersion   string
	ifAbsent    bool
	showVersion bool
}

func clientUsage(cmd string) string {
	switch cmd {
	case "get":
		return "usage: ringkv get KEY [--addr HOST[:PORT],...] [--consistency one|quorum|all|serial] [--show-version]\nPrints the value to stdout (after its version and a newline, with --show-version). Exit 0 found, 1 not found, 2 error.\nWith several --addr, a node that cannot answer passes the request to the next."
	case "put":
		return "usage: ringkv put KEY VALUE [--ttl DURATION] [--if-version V | --if-absent] [--addr HOST[:PORT],...] [--consistency ...]\nVALUE '-' reads the value from stdin. With --if-version or --if-absent it is a compare-and-set: it prints the new version; exit 1 when the condition fails."
	case "delete":
		return "usage: ringkv delete KEY [--if-version V] [--addr HOST[:PORT],...] [--consistency ...]"
	}
	return scanUsage
}

// kvFlags returns the flag set of get, put or delete.
func kvFlags(cmd string, env *environ, c *kvConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("ringkv "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.node.add(fs, env, "node HTTP addresses, comma-separated")
	fs.StringVar(&c.consistency, "consistency", "", "one, quorum or all (default quorum); serial for get: the linearizable value of conditional writes")
	if cmd == "put" {
		fs.DurationVar(&c.ttl, "ttl", 0, "expire the key after this long")
		fs.BoolVar(&c.ifAbsent, "if-absent", false, "write only if the key is absent, deleted or expired (a compare-and-set)")
	}
	if cmd == "put" || cmd == "delete" {
		fs.StringVar(&c.ifVersion, "if-version", "", "write only if the key's current version is V (as get --show-version prints; a compare-and-set)")
	}
	if cmd == "get" {
		fs.BoolVar(&c.showVersion, "show-version", false, "print the value's version and a newline before it")
	}
	return fs
}

// kvCmd runs get, put or delete.
func kvCmd(cmd string, args []string, env *environ, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := failer(stderr, "ringkv "+cmd)
	var c kvConfig
	fs := kvFlags(cmd, env, &c)
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, clientUsage(cmd), fs)
	}
	if err != nil {
		return fail("%v", err)
	}
	if want := map[string]int{"get": 1, "put": 2, "delete": 1}[cmd]; len(pos) != want {
		u, _, _ := strings.Cut(clientUsage(cmd), "\n")
		return fail("want %d argument(s), got %d (%s)", want, len(pos), u)
	}
	if err := checkConsistency(cmd, c.consistency); err != nil {
		return fail("%v", err)
	}
	if c.ifAbsent && c.ifVersion != "" {
		return fail("--if-version and --if-absent together: give one")
	}
	if pos[0] == "" {
		return fail("KEY must not be empty")
	}
	cl, err := c.node.client()
	if err != nil {
		return fail("%v", err)
	}
	defer cl.CloseIdleConnections()
	opts := []client.Option{client.WithConsistency(client.Consistency(c.consistency))}
	ctx := context.Background()
	switch cmd {
	case "get":
		val, ver, err := cl.Get(ctx, pos[0], opts...)
		if errors.Is(err, client.ErrNotFound) {
			fmt.Fprintf(stderr, "ringkv get: %q not found\n", pos[0])
			return exitNotFound
		}
		if err == nil && c.showVersion {
			_, err = fmt.Fprintln(stdout, ver)
		}
		if err == nil {
			_, err = stdout.Write(val)
		}
		return failed(fail, err)
	case "put":
		val, err := putValue(pos[1], stdin)
		if err != nil {
			return fail("cannot read the value from stdin: %v", err)
		}
		opts = append(opts, client.WithTTL(c.ttl))
		switch {
		case c.ifAbsent:
			return casDone(fail, stdout)(cl.PutIfAbsent(ctx, pos[0], val, opts...))
		case c.ifVersion != "":
			return casDone(fail, stdout)(cl.CompareAndSwap(ctx, pos[0], client.Version(c.ifVersion), val, opts...))
		}
		_, err = cl.Put(ctx, pos[0], val, opts...)
		return failed(fail, err)
	}
	if c.ifVersion != "" {
		return casDone(fail, stdout)(cl.DeleteIf(ctx, pos[0], client.Version(c.ifVersion), opts...))
	}
	_, err = cl.Delete(ctx, pos[0], opts...)
	return failed(fail, err)
}

// casDone returns what ends a compare-and-set command: the new version on
// stdout, or the condition's failure (exit 1, naming the current version)
// or another error.
func casDone(fail func(string, ...any) int, stdout io.Writer) func(client.Version, error) int {
	return func(v client.Version, err error) int {
		var ce *client.ConditionError
		switch {
		case errors.As(err, &ce) && ce.Exists:
			fail("condition failed: the key is at version %s", ce.Current)
			return exitFailure
		case errors.As(err, &ce):
			fail("condition failed: the key is absent")
			return exitFailure
		case err != nil:
			return failed(fail, err)
		}
		fmt.Fprintln(stdout, v)
		return exitOK
	}
}

func putValue(arg string, stdin io.Reader) ([]byte, error) {
	if arg == "-" {
		return io.ReadAll(stdin)
	}
	return []byte(arg), nil
}

func checkConsistency(cmd, c string) error {
	switch c {
	case "", "one", "quorum", "all":
		return nil
	case "serial":
		if cmd == "get" {
			return nil
		}
	}
	if cmd == "get" {
		return fmt.Errorf("--consistency %q: want one, quorum, all or serial", c)
	}
	return fmt.Errorf("--consistency %q: want one, quorum or all", c)
}

// failer returns the function that prints "NAME: message" and returns
// exit code 2.
func failer(stderr io.Writer, name string) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(fmt.Sprintf(format, a...)))
		return exitUsage
	}
}

// failed is exitOK for a nil error, else fail's line and code.
func failed(fail func(string, ...any) int, err error) int {
	if err == nil {
		return exitOK
	}
	return fail("%v", err)
}

// exitCode is the exit code of a client error: 2 when no node answered,
// it lacks the command (501) or its answer did not parse; 1 when a node
// refused.
func exitCode(err error) int {
	var se *client.StatusError
	if errors.As(err, &se) && se.Code != http.StatusNotImplemented {
		return exitFailure
	}
	return exitUsage
}

const scanUsage = `usage: ringkv scan [--prefix P] [--limit N | --all] [--after K | --after-base64 B] [--json] [--addr HOST[:PORT],...]

Prints KEY<TAB>VALUE lines in token (hash) order, at most --limit of them;
when more keys follow, says on stderr how to list them (--after, or --all
to page through every key). --json prints one JSON object per key, with
"key_encoding" or "value_encoding" "base64" when the key or the value is
not valid UTF-8 and is given in base64.`

// scanConfig holds the flags of scan.
type scanConfig struct {
	node             nodeFlags
	prefix, after    string
	afterB64         string
	limit, pageSize  int
	all, json        bool
	limitGiven, both bool // --limit was given; so were --after and --after-base64
}

func scanFlags(env *environ, c *scanConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("ringkv scan", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.node.add(fs, env, "node HTTP addresses, comma-separated")
	fs.StringVar(&c.prefix, "prefix", "", "only keys with this prefix")
	fs.StringVar(&c.after, "after", "", "start after this key")
	fs.StringVar(&c.afterB64, "after-base64", "", "start after this key, given in base64 (for a key that is not text)")
	fs.IntVar(&c.limit, "limit", 100, "most keys to list")
	fs.BoolVar(&c.all, "all", false, "list every key, page by page (instead of --limit)")
	fs.IntVar(&c.pageSize, "page-size", 1000, "keys asked for per request (1 to 10000)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object per key")
	return fs
}

// check validates the flags and returns the key to start after.
func (c *scanConfig) check(fs *flag.FlagSet) (string, error) {
	fs.Visit(func(f *flag.Flag) {
		c.limitGiven = c.limitGiven || f.Name == "limit"
		c.both = c.both || f.Name == "after-base64" && c.after != ""
	})
	switch {
	case c.all && c.limitGiven:
		return "", errors.New("--all and --limit exclude each other")
	case c.limit < 1:
		return "", fmt.Errorf("--limit (%d) must be positive", c.limit)
	case c.pageSize < 1 || c.pageSize > client.MaxScanLimit:
		return "", fmt.Errorf("--page-size (%d) must be 1 to %d", c.pageSize, client.MaxScanLimit)
	case c.both:
		return "", errors.New("--after and --after-base64 exclude each other")
	case c.afterB64 != "":
		b, err := base64.StdEncoding.DecodeString(c.afterB64)
		if err != nil {
			return "", fmt.Errorf("--after-base64: %v", err)
		}
		return string(b), nil
	}
	return c.after, nil
}

// scanCmd runs scan.
func scanCmd(args []string, env *environ, stdout, stderr io.Writer) int {
	fail := failer(stderr, "ringkv scan")
	var c scanConfig
	fs := scanFlags(env, &c)
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, scanUsage, fs)
	}
	if err != nil {
		return fail("%v", err)
	}
	if len(pos) != 0 {
		return fail("want 0 argument(s), got %d (usage: ringkv scan [--prefix P] ...)", len(pos))
	}
	after, err := c.check(fs)
	if err != nil {
		return fail("%v", err)
	}
	cl, err := c.node.client()
	if err != nil {
		return fail("%v", err)
	}
	defer cl.CloseIdleConnections()
	out := scanPrinter{w: stdout, json: c.json}
	more, err := scanPages(context.Background(), cl, c, after, out.print)
	if err != nil {
		return fail("%v", err)
	}
	if more != "" {
		fmt.Fprintf(stderr, "ringkv scan: more keys follow; to list them: ringkv scan %s (or --all for every key)\n", continueArgs(c, more))
	}
	return exitOK
}

// scanPages calls print for each key of the scan, page by page, and
// returns the key to continue after when --limit stopped it with more
// keys to come.
func scanPages(ctx context.Context, cl *client.Client, c scanConfig, after string, print func(client.Item)) (string, error) {
	q := client.ScanRequest{Prefix: c.prefix, After: after}
	left := c.limit
	for c.all || left > 0 {
		q.Limit = c.pageSize
		if !c.all {
			q.Limit = min(left, c.pageSize)
		}
		p, err := cl.Scan(ctx, q)
		if err != nil {
			return "", err
		}
		for _, it := range p.Items {
			print(it)
		}
		left -= len(p.Items)
		if p.Next == "" || len(p.Items) == 0 {
			return "", nil
		}
		q.After = p.Next
	}
	// A full page sets next whether or not a key follows it: ask.
	q.Limit = 1
	p, err := cl.Scan(ctx, q)
	if err != nil || len(p.Items) == 0 {
		return "", err
	}
	return q.After, nil
}

// continueArgs are the flags of the scan that continues after key.
func continueArgs(c scanConfig, key string) string {
	var b strings.Builder
	if c.prefix != "" {
		b.WriteString("--prefix " + shellQuote(c.prefix) + " ")
	}
	if printable(key) {
		b.WriteString("--after " + shellQuote(key))
	} else {
		b.WriteString("--after-base64 " + base64.StdEncoding.EncodeToString([]byte(key)))
	}
	if c.json {
		b.WriteString(" --json")
	}
	return b.String()
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// scanPrinter prints scan items as KEY<TAB>VALUE lines or JSON objects.
type scanPrinter struct {
	w    io.Writer
	json bool
}

// scanLine is one JSON object of scan --json. A key or value that is not
// valid UTF-8 is written in base64, and its _encoding field says so:
// JSON strings cannot hold such bytes.
type scanLine struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	Version       string `json:"version,omitempty"`
}

func (p scanPrinter) print(it client.Item) {
	if !p.json {
		fmt.Fprintf(p.w, "%s\t%s\n", it.Key, it.Value)
		return
	}
	l := scanLine{Version: string(it.Version)}
	l.Key, l.KeyEncoding = jsonText([]byte(it.Key))
	l.Value, l.ValueEncoding = jsonText(it.Value)
	b, _ := json.Marshal(l)
	p.w.Write(append(b, '\n'))
}

// jsonText returns b as a JSON string's text, or in base64 ("base64").
func jsonText(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
