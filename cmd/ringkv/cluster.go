package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/peer"
)

const clusterUsage = `usage: ringkv cluster COMMAND [--addr HOST:PORT] [--timeout D] [--json] [--wait D]

commands:
  status       the members as the node at --addr sees them: addresses, state,
               share of the ring, hints it holds for each; replicas, vnodes
  ring KEY     the owners of KEY in order, the primary first, and its token
  remove ID    take a node that is gone for good out of the ring
  leave        take the node at --addr out of the ring: the others pull its
               ranges, then it is removed; prints the progress until then
               and exits 0 once it has left, 1 if that takes longer than
               --wait (default 30m; the leave goes on; 0 starts it and
               returns); a node that stops answering for 30s ends the
               wait with its error. With --json it prints the node's
               answer and returns at once.

--addr defaults to RINGKV_ADDR, else NODE_ADDRESS, else 127.0.0.1:8080.
--token (default RINGKV_TOKEN) is the bearer token for a node with
--auth-file: status and ring need read, remove and leave admin.
--json prints the node's JSON answer.
Exit 0 on success, 1 when the node refuses (unknown or alive member),
2 for bad usage, a node that cannot be reached, or a command it lacks.`

// clusterConfig holds the flags of 'ringkv cluster'.
type clusterConfig struct {
	addr    string
	timeout time.Duration
	wait    time.Duration // leave: how long to follow the handover
	json    bool
	token   string
}

// cluster runs 'ringkv cluster'.
func cluster(args []string, env *environ, stdout, stderr io.Writer) int {
	c := clusterConfig{addr: "127.0.0.1:8080", timeout: 10 * time.Second}
	if v, _, ok := env.lookup("RINGKV_ADDR"); ok {
		c.addr = v
	} else if v, _, ok := env.lookup("NODE_ADDRESS"); ok {
		c.addr = normalizeNodeAddress(v)
	}
	fs := flag.NewFlagSet("ringkv cluster", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", c.addr, "node HTTP address (also RINGKV_ADDR)")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "request timeout")
	addTokenFlag(fs, env, &c.token)
	fs.BoolVar(&c.json, "json", false, "print the node's JSON answer")
	var tf tlsFlags
	tf.add(fs, env)
	c.wait = 30 * time.Minute
	fs.DurationVar(&c.wait, "wait", c.wait, "leave: follow the handover this long (0: start it and return)")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ringkv cluster: %s\n", fmt.Sprintf(format, a...))
		return exitUsage
	}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) || (err == nil && len(pos) > 0 && pos[0] == "help") {
		return printUsage(stdout, clusterUsage, fs)
	}
	if err != nil {
		return fail("%v", err)
	}
	if len(pos) == 0 {
		return fail("want a command: status, ring KEY, remove ID or leave (run 'ringkv cluster -h')")
	}
	if c.timeout <= 0 {
		return fail("--timeout (%s) must be positive", c.timeout)
	}
	sub, rest := pos[0], pos[1:]
	want := map[string]int{"status": 0, "ring": 1, "remove": 1, "leave": 0}
	n, ok := want[sub]
	if !ok {
		return fail("unknown command %q: want status, ring, remove or leave", sub)
	}
	if len(rest) != n {
		return fail("%s wants %d argument(s), got %d", sub, n, len(rest))
	}
	if n == 1 && rest[0] == "" {
		return fail("%s: the argument must not be empty", sub)
	}
	tr, err := tf.transport()
	if err != nil {
		return fail("%v", err)
	}
	cc := &clusterClient{name: "ringkv cluster", c: c, hc: withToken(&http.Client{Timeout: c.timeout, Transport: tr}, c.token), stderr: stderr, base: baseURL(c.addr)}

	switch sub {
	case "status":
		st, body, code := cc.status(sub)
		if code != exitOK {
			return code
		}
		if c.json {
			return writeJSON(stdout, body)
		}
		printStatus(stdout, &st)
	case "ring":
		body, code := cc.call(sub, http.MethodGet, "/v1/ring?"+url.Values{"key": {rest[0]}}.Encode())
		if code != exitOK {
			return code
		}
		if c.json {
			return writeJSON(stdout, body)
		}
		var o ringOwners
		if err := json.Unmarshal(body, &o); err != nil {
			return cc.malformed(sub, err)
		}
		printRing(stdout, &o)
	case "remove":
		body, code := cc.call(sub, http.MethodPost, "/v1/cluster/remove?"+url.Values{"id": {rest[0]}}.Encode())
		if code != exitOK {
			return code
		}
		if c.json {
			return writeJSON(stdout, body)
		}
		fmt.Fprintf(stdout, "removed %s from the ring; its ranges fall to the next nodes on the ring\n", rest[0])
	case "leave":
		body, code := cc.call(sub, http.MethodPost, "/v1/cluster/leave")
		if code != exitOK {
			return code
		}
		if c.json {
			return writeJSON(stdout, body)
		}
		return cc.waitLeft(stdout, c.wait, leavePollGrace)
	}
	return exitOK
}

// waitLeft follows a leave on GET /v1/cluster, printing each change of
// its progress, until the node says it has left (exit 0), the leave failed
// (1), wait is over (1), or the node has not answered for grace (the
// poll's own code: 2 if it cannot be reached).
func (cc *clusterClient) waitLeft(stdout io.Writer, wait, grace time.Duration) int {
	fmt.Fprintf(stdout, "%s is leaving the cluster\n", cc.c.addr)
	if wait <= 0 {
		return exitOK
	}
	deadline := time.Now().Add(wait)
	last := ""
	var failing time.Time // start of a run of failed polls
	for {
		polled := time.Now()
		st, code, msg := cc.quietStatus("leave")
		if code != exitOK {
			// A node busy handing its ranges over may miss a poll; the
			// leave goes on, so only a run of failures ends the wait.
			if failing.IsZero() {
				failing = polled
			}
			switch now := time.Now(); {
			case now.After(deadline):
				// As for any leave not done within --wait: exit 1.
				fmt.Fprintf(cc.stderr, "%s (not done after %s; the leave goes on in the background)\n", strings.TrimRight(msg, "\n"), wait)
				return exitFailure
			case now.Sub(failing) >= grace:
				fmt.Fprint(cc.stderr, msg)
				return code
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		failing = time.Time{}
		if st.Leave != last && st.Leave != "" {
			fmt.Fprintf(stdout, "  %s\n", st.Leave)
			last = st.Leave
		}
		switch {
		case st.Leave == "left":
			fmt.Fprintf(stdout, "%s has left: its ranges are held by the other members; stop it now\n", cc.c.addr)
			return exitOK
		case strings.HasPrefix(st.Leave, "failed"):
			fmt.Fprintf(cc.stderr, "ringkv cluster: leave: %s\n", oneLine(st.Leave))
			return exitFailure
		case time.Now().After(deadline):
			fmt.Fprintf(cc.stderr, "ringkv cluster: leave: not done after %s (%s); it goes on in the background\n", wait, oneLine(st.Leave))
			return exitFailure
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leavePollGrace is how long 'cluster leave' keeps polling a node that
// does not answer before it gives up following the leave.
const leavePollGrace = 30 * time.Second

// quietStatus is status with the error line returned instead of printed.
func (cc *clusterClient) quietStatus(sub string) (clusterStatus, int, string) {
	var errs strings.Builder
	w := cc.stderr
	cc.stderr = &errs
	st, _, code := cc.status(sub)
	cc.stderr = w
	return st, code, errs.String()
}

// clusterClient makes the HTTP calls of 'ringkv cluster'.
type clusterClient struct {
	name   string // the command, for error messages: "ringkv cluster"
	c      clusterConfig
	hc     *http.Client
	base   string
	stderr io.Writer
}

// call sends one request and returns the body of a 2xx answer and
// exitOK, or prints a one-line error and returns the exit code: 2 when the
// node cannot be reached or lacks the command (501), 1 when it refuses.
func (cc *clusterClient) call(sub, method, path string) ([]byte, int) {
	req, err := http.NewRequest(method, cc.base+path, nil)
	if err != nil {
		fmt.Fprintf(cc.stderr, "%s: %s: %v\n", cc.name, sub, err)
		return nil, exitUsage
	}
	resp, err := cc.hc.Do(req)
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u
		}
		fmt.Fprintf(cc.stderr, "%s: %s: cannot reach %s: %v\n", cc.name, sub, cc.c.addr, err)
		return nil, exitUsage
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(cc.stderr, "%s: %s: cannot read the answer from %s: %v\n", cc.name, sub, cc.c.addr, err)
		return nil, exitUsage
	}
	if resp.StatusCode/100 == 2 {
		return data, exitOK
	}
	msg := oneLine(errorText(data))
	if msg == "" {
		msg = "(no message)"
	}
	fmt.Fprintf(cc.stderr, "%s: %s: %s: %s\n", cc.name, sub, resp.Status, msg)
	if resp.StatusCode == http.StatusNotImplemented {
		return nil, exitUsage
	}
	return nil, exitFailure
}

// status fetches and decodes GET /v1/cluster; body is the raw answer.
func (cc *clusterClient) status(sub string) (st clusterStatus, body []byte, code int) {
	body, code = cc.call(sub, http.MethodGet, "/v1/cluster")
	if code != exitOK {
		return st, body, code
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, body, cc.malformed(sub, err)
	}
	return st, body, exitOK
}

func (cc *clusterClient) malformed(sub string, err error) int {
	fmt.Fprintf(cc.stderr, "%s: %s: malformed answer from %s: %v\n", cc.name, sub, cc.c.addr, err)
	return exitUsage
}

// oneLine keeps an error message to one line, so scripts can rely on one.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " ..."
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// writeJSON prints a JSON answer indented, as it came otherwise.
func writeJSON(w io.Writer, body []byte) int {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(body), "", "  "); err != nil {
		w.Write(body)
		return exitOK
	}
	b.WriteByte('\n')
	w.Write(b.Bytes())
	return exitOK
}

// clusterStatus is the JSON of GET /v1/cluster.
type clusterStatus struct {
	Self     string `json:"self"`
	Replicas int    `json:"replicas"`
	VNodes   int    `json:"vnodes"`
	Members  []struct {
		ID         string    `json:"id"`
		HTTPAddr   string    `json:"http_addr"`
		GossipAddr string    `json:"gossip_addr"`
		State      string    `json:"state"`
		Since      time.Time `json:"since"`
		Leaving    bool      `json:"leaving"`
		Clock      *struct {
			Offset  time.Duration `json:"offset_ns"`
			RTT     time.Duration `json:"rtt_ns"`
			Refused bool          `json:"refused"`
		} `json:"clock"`
	} `json:"members"`
	MaxClockOffset time.Duration      `json:"max_clock_offset_ns"`
	ClockError     string             `json:"clock_error"`
	Transfers      []json.RawMessage  `json:"transfers"`
	Leave          string             `json:"leave"`
	HintsPending   map[string]int64   `json:"hints_pending"`
	Ownership      map[string]float64 `json:"ownership"`
}

// formatAge prints a duration the way an operator reads it: 45s, 12m3s,
// 5h2m, 3d4h.
func formatAge(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// ringOwners is the JSON of GET /v1/ring?key=K.
type ringOwners struct {
	Key    string   `json:"key"`
	Token  string   `json:"token"`
	Owners []string `json:"owners"`
	Addrs  []string `json:"http_addrs"`
}

func printStatus(w io.Writer, st *clusterStatus) {
	states := map[string]int{}
	for _, m := range st.Members {
		states[m.State]++
	}
	var counts []string
	for _, s := range []string{"alive", "suspect", "dead", "left"} {
		if states[s] > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", states[s], s))
		}
	}
	fmt.Fprintf(w, "cluster seen by %s: %d members (%s); replicas %d, vnodes %d\n\n",
		st.Self, len(st.Members), strings.Join(counts, ", "), st.Replicas, st.VNodes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHTTP ADDR\tGOSSIP ADDR\tSTATE\tSINCE\tCLOCK\tOWNERSHIP\tHINTS PENDING")
	seen := map[string]bool{}
	for _, m := range st.Members {
		seen[m.ID] = true
		id := m.ID
		if id == st.Self {
			id += " *"
		}
		own := "-"
		if f, ok := st.Ownership[m.ID]; ok {
			own = fmt.Sprintf("%.1f%%", 100*f)
		}
		state := m.State
		if m.Leaving {
			state += ",leaving"
		}
		since := "-"
		if !m.Since.IsZero() {
			since = formatAge(time.Since(m.Since))
		}
		clk := "-"
		switch {
		case m.ID == st.Self:
			clk = "self"
		case m.Clock != nil && m.Clock.Refused:
			clk = "refused"
		case m.Clock != nil:
			clk = fmt.Sprintf("%+.1fms", float64(m.Clock.Offset)/1e6)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", id, dash(m.HTTPAddr), dash(m.GossipAddr), state, since, clk, own, st.HintsPending[m.ID])
	}
	// Hints for an id the node no longer lists (should not happen, but a
	// count must not go unseen).
	var extra []string
	for id, n := range st.HintsPending {
		if !seen[id] && n > 0 {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	for _, id := range extra {
		fmt.Fprintf(tw, "%s\t-\t-\tunknown\t-\t-\t-\t%d\n", id, st.HintsPending[id])
	}
	tw.Flush()
	fmt.Fprintf(w, "\n* the node that answered; SINCE is how long it has seen the member so; CLOCK is the member's clock minus its own; HINTS PENDING are writes it holds for that member\n")
	if st.ClockError != "" {
		fmt.Fprintf(w, "clock: %s\n", st.ClockError)
	}
	if st.Leave != "" {
		fmt.Fprintf(w, "leave of %s: %s\n", st.Self, st.Leave)
	}
	if len(st.Transfers) == 0 {
		fmt.Fprintln(w, "transfers: none")
		return
	}
	fmt.Fprintf(w, "transfers in flight: %d\n", len(st.Transfers))
	for _, raw := range st.Transfers {
		var t peer.Transfer
		if err := json.Unmarshal(raw, &t); err != nil || t.RangesTotal <= 0 {
			fmt.Fprintf(w, "  %s\n", bytes.TrimSpace(raw)) // a shape this build does not know
			continue
		}
		fmt.Fprintf(w, "  %s\n", transferLine(t))
	}
}

// transferLine renders one move with a progress bar, e.g.
// "n4 <- n1 [#####---------------] 12/48 ranges, 3.1MiB at 1.2MiB/s, ETA 36s, now (00f3.., 01a2..]".
func transferLine(t peer.Transfer) string {
	const width = 20
	filled := min(width, t.RangesDone*width/t.RangesTotal)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	s := fmt.Sprintf("%s <- %s [%s] %d/%d ranges, %s", t.To, t.From, bar, t.RangesDone, t.RangesTotal, compaction.FormatBytes(uint64(t.BytesDone)))
	if t.BytesTotal > 0 {
		s += " of ~" + compaction.FormatBytes(uint64(t.BytesTotal))
	}
	s += " at " + compaction.FormatBytes(uint64(t.Rate)) + "/s"
	if t.ETASeconds > 0 {
		s += fmt.Sprintf(", ETA %s", (time.Duration(t.ETASeconds) * time.Second).String())
	}
	s += ", now " + t.Range
	if t.LastError != "" {
		s += fmt.Sprintf("; %d failed attempts, last: %s", t.Attempts, oneLine(t.LastError))
	}
	return s
}

func printRing(w io.Writer, o *ringOwners) {
	fmt.Fprintf(w, "key    %q\ntoken  %s\n\n", o.Key, o.Token)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tOWNER\tHTTP ADDR\tROLE")
	for i, id := range o.Owners {
		addr := ""
		if i < len(o.Addrs) {
			addr = o.Addrs[i]
		}
		role := "replica"
		if i == 0 {
			role = "primary"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, id, dash(addr), role)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
