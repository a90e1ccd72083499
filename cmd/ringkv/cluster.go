package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/compaction"
)

const clusterUsage = `usage: ringkv cluster COMMAND [--addr HOST[:PORT]] [--timeout D] [--json] [--wait D]

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

// clusterCommand is one command of 'ringkv cluster'.
type clusterCommand struct {
	name string
	arg  string // its argument's name, if it takes one
	run  func(cc *clusterCmdCtx, args []string) int
}

// clusterCommands are the commands of 'ringkv cluster'.
func clusterCommands() []clusterCommand {
	return []clusterCommand{
		{"status", "", (*clusterCmdCtx).status},
		{"ring", "KEY", (*clusterCmdCtx).ring},
		{"remove", "ID", (*clusterCmdCtx).remove},
		{"leave", "", (*clusterCmdCtx).leave},
	}
}

// clusterConfig holds the flags of 'ringkv cluster'.
type clusterConfig struct {
	node nodeFlags
	wait time.Duration // leave: how long to follow the handover
	json bool
}

func clusterFlags(env *environ, c *clusterConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("ringkv cluster", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.node.add(fs, env, "node HTTP address")
	fs.BoolVar(&c.json, "json", false, "print the node's JSON answer")
	fs.DurationVar(&c.wait, "wait", 30*time.Minute, "leave: follow the handover this long (0: start it and return)")
	return fs
}

// cluster runs 'ringkv cluster'.
func cluster(args []string, env *environ, stdout, stderr io.Writer) int {
	fail := failer(stderr, "ringkv cluster")
	var c clusterConfig
	fs := clusterFlags(env, &c)
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
	sub, rest := pos[0], pos[1:]
	cmds := clusterCommands()
	i := slices.IndexFunc(cmds, func(c clusterCommand) bool { return c.name == sub })
	if i < 0 {
		return fail("unknown command %q: want status, ring, remove or leave", sub)
	}
	if n := len(strings.Fields(cmds[i].arg)); len(rest) != n {
		return fail("%s wants %d argument(s), got %d", sub, n, len(rest))
	}
	if len(rest) == 1 && rest[0] == "" {
		return fail("%s: the argument must not be empty", sub)
	}
	cl, err := c.node.client()
	if err != nil {
		return fail("%v", err)
	}
	defer cl.CloseIdleConnections()
	cc := &clusterCmdCtx{ctx: context.Background(), cl: cl, c: c, sub: sub, stdout: stdout, stderr: stderr}
	return cmds[i].run(cc, rest)
}

// clusterCmdCtx is what a cluster command works with.
type clusterCmdCtx struct {
	ctx    context.Context
	cl     *client.Client
	c      clusterConfig
	sub    string
	stdout io.Writer
	stderr io.Writer
}

// fail prints err as the command's one-line error and returns its exit
// code (see exitCode).
func (cc *clusterCmdCtx) fail(err error) int {
	fmt.Fprintf(cc.stderr, "ringkv cluster: %s: %s\n", cc.sub, oneLine(err.Error()))
	return exitCode(err)
}

func (cc *clusterCmdCtx) status(_ []string) int {
	st, err := cc.cl.ClusterStatus(cc.ctx)
	switch {
	case err != nil:
		return cc.fail(err)
	case cc.c.json:
		return writeJSON(cc.stdout, st.Raw)
	}
	printStatus(cc.stdout, &st, time.Now())
	return exitOK
}

func (cc *clusterCmdCtx) ring(args []string) int {
	o, err := cc.cl.Owners(cc.ctx, args[0])
	switch {
	case err != nil:
		return cc.fail(err)
	case cc.c.json:
		return writeJSON(cc.stdout, o.Raw)
	}
	printRing(cc.stdout, &o)
	return exitOK
}

func (cc *clusterCmdCtx) remove(args []string) int {
	ch, err := cc.cl.RemoveNode(cc.ctx, args[0])
	switch {
	case err != nil:
		return cc.fail(err)
	case cc.c.json:
		return writeJSON(cc.stdout, ch.Raw)
	}
	fmt.Fprintf(cc.stdout, "removed %s from the ring; its ranges fall to the next nodes on the ring\n", args[0])
	return exitOK
}

func (cc *clusterCmdCtx) leave(_ []string) int {
	ch, err := cc.cl.Leave(cc.ctx)
	switch {
	case err != nil:
		return cc.fail(err)
	case cc.c.json:
		return writeJSON(cc.stdout, ch.Raw)
	}
	return cc.waitLeft(cc.c.wait, leavePollGrace)
}

// waitLeft follows a leave on GET /v1/cluster, printing each change of
// its progress, until the node says it has left (exit 0), the leave failed
// (1), wait is over (1), or the node has not answered for grace (the
// poll's own code: 2 if it cannot be reached).
func (cc *clusterCmdCtx) waitLeft(wait, grace time.Duration) int {
	addr := cc.cl.Addrs()[0]
	fmt.Fprintf(cc.stdout, "%s is leaving the cluster\n", addr)
	if wait <= 0 {
		return exitOK
	}
	deadline := time.Now().Add(wait)
	last := ""
	var failing time.Time // start of a run of failed polls
	for ; ; time.Sleep(200 * time.Millisecond) {
		polled := time.Now()
		st, err := cc.cl.ClusterStatus(cc.ctx)
		if err != nil {
			// A node busy handing its ranges over may miss a poll; the
			// leave goes on, so only a run of failures ends the wait.
			if failing.IsZero() {
				failing = polled
			}
			if code, done := cc.pollFailed(err, time.Since(failing) >= grace, time.Now().After(deadline), wait); done {
				return code
			}
			continue
		}
		failing = time.Time{}
		if st.Leave != last && st.Leave != "" {
			fmt.Fprintf(cc.stdout, "  %s\n", st.Leave)
			last = st.Leave
		}
		if code, done := cc.leaveState(st.Leave, addr, time.Now().After(deadline), wait); done {
			return code
		}
	}
}

// pollFailed decides what a failed poll of a leave means: the end of the
// wait when --wait is over (exit 1, as for any leave not done within it),
// or the node has not answered for the grace (the error's own code).
func (cc *clusterCmdCtx) pollFailed(err error, graceOver, waitOver bool, wait time.Duration) (int, bool) {
	switch {
	case waitOver:
		fmt.Fprintf(cc.stderr, "ringkv cluster: leave: %s (not done after %s; the leave goes on in the background)\n", oneLine(err.Error()), wait)
		return exitFailure, true
	case graceOver:
		return cc.fail(err), true
	}
	return 0, false
}

// leaveState decides what a leave's progress means.
func (cc *clusterCmdCtx) leaveState(leave, addr string, waitOver bool, wait time.Duration) (int, bool) {
	switch {
	case leave == "left":
		fmt.Fprintf(cc.stdout, "%s has left: its ranges are held by the other members; stop it now\n", addr)
		return exitOK, true
	case strings.HasPrefix(leave, "failed"):
		fmt.Fprintf(cc.stderr, "ringkv cluster: leave: %s\n", oneLine(leave))
		return exitFailure, true
	case waitOver:
		fmt.Fprintf(cc.stderr, "ringkv cluster: leave: not done after %s (%s); it goes on in the background\n", wait, oneLine(leave))
		return exitFailure, true
	}
	return 0, false
}

// leavePollGrace is how long 'cluster leave' keeps polling a node that
// does not answer before it gives up following the leave.
const leavePollGrace = 30 * time.Second

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

func printStatus(w io.Writer, st *client.ClusterStatus, now time.Time) {
	states := map[client.MemberState]int{}
	for _, m := range st.Members {
		states[m.State]++
	}
	var counts []string
	for _, s := range []client.MemberState{client.Alive, client.Suspect, client.Dead, client.Left} {
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
		fmt.Fprintln(tw, memberRow(st, m, now))
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
	printTransfers(w, st.Transfers)
}

// memberRow is the status table's row of m, tab-separated.
func memberRow(st *client.ClusterStatus, m client.Member, now time.Time) string {
	id := m.ID
	if id == st.Self {
		id += " *"
	}
	own := "-"
	if f, ok := st.Ownership[m.ID]; ok {
		own = fmt.Sprintf("%.1f%%", 100*f)
	}
	state := string(m.State)
	if m.Leaving {
		state += ",leaving"
	}
	since := "-"
	if !m.Since.IsZero() {
		since = formatAge(now.Sub(m.Since))
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
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d", id, dash(m.HTTPAddr), dash(m.GossipAddr), state, since, clk, own, st.HintsPending[m.ID])
}

func printTransfers(w io.Writer, ts []client.Transfer) {
	if len(ts) == 0 {
		fmt.Fprintln(w, "transfers: none")
		return
	}
	fmt.Fprintf(w, "transfers in flight: %d\n", len(ts))
	for _, t := range ts {
		if t.RangesTotal <= 0 {
			fmt.Fprintf(w, "  %s <- %s, now %s\n", t.To, t.From, t.Range) // no plan yet
			continue
		}
		fmt.Fprintf(w, "  %s\n", transferLine(t))
	}
}

// transferLine renders one move with a progress bar, e.g.
// "n4 <- n1 [#####---------------] 12/48 ranges, 3.1MiB at 1.2MiB/s, ETA 36s, now (00f3.., 01a2..]".
func transferLine(t client.Transfer) string {
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

func printRing(w io.Writer, o *client.RingOwners) {
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
