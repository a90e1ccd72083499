package peer

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/ringkv/ringkv/memtable"
)

// TestReadPlan runs the transcripts in testdata/readplan: each step feeds
// the plan a reply, a hedge tick or the timeout, and prints what the plan
// asks and its state after it (go test -run TestReadPlan -rewrite
// regenerates them).
//
//	plan self=n1 owners=(n1,n2,n3) need=2 [down=(n3)] [beyond=(n4,n5)] [replicas=3] [nodes=5]
//	reply from=n2 rec=5 [tomb] | none | err=fail|down|corrupt | pending[=(n4,...)] [rec=5]
//	hedge
//	timeout
func TestReadPlan(t *testing.T) {
	var p *readPlan
	var waiting []string // asked, not yet answered
	datadriven.RunTest(t, "testdata/readplan", func(t *testing.T, d *datadriven.TestData) string {
		var b strings.Builder
		switch d.Cmd {
		case "plan":
			p = newReadPlan(readEnvOf(t, d))
			fmt.Fprintf(&b, "order: %s\n", strings.Join(p.order, " "))
			first := p.start()
			waiting = slices.Clone(first)
			for i := len(first) - 1; i >= 0; i-- {
				fmt.Fprintf(&b, "ask %s\n", first[i])
			}
		case "reply":
			r := replyOf(t, d)
			i := slices.Index(waiting, r.id)
			if i < 0 {
				d.Fatalf(t, "a reply from %s, which is not asked or has answered", r.id)
			}
			waiting = slices.Delete(waiting, i, i+1)
			ask := p.onReply(r)
			waiting = append(waiting, ask...)
			printAsks(&b, ask)
		case "hedge":
			ask, rearm := p.onHedge()
			waiting = append(waiting, ask...)
			printAsks(&b, ask)
			if !rearm {
				b.WriteString("hedge timer stopped\n")
			}
		case "timeout":
			p.onTimeout()
		default:
			d.Fatalf(t, "unknown command %s", d.Cmd)
		}
		printReadState(&b, p)
		return b.String()
	})
}

func readEnvOf(t *testing.T, d *datadriven.TestData) readEnv {
	var env readEnv
	var down, beyond []string
	replicas, nodes := 3, 0
	d.ScanArgs(t, "self", &env.self)
	d.ScanArgs(t, "owners", &env.owners)
	d.ScanArgs(t, "need", &env.need)
	d.MaybeScanArgs(t, "down", &down)
	d.MaybeScanArgs(t, "beyond", &beyond)
	d.MaybeScanArgs(t, "replicas", &replicas)
	d.MaybeScanArgs(t, "nodes", &nodes)
	if nodes == 0 {
		nodes = len(env.owners) + len(beyond)
	}
	env.room = len(env.owners) + replicas + 2
	env.reachable = func(id string) bool { return !slices.Contains(down, id) }
	env.beyond = func() []string { return beyond }
	env.allOwners = nodes <= replicas
	return env
}

// testRec is the encoded record of a transcript's rec=TS: version (TS, 1),
// value vTS.
func testRec(ts uint64, tomb bool) []byte {
	r := memtable.Record{Version: memtable.Version{TS: ts, Node: 1}, Tombstone: tomb}
	if !tomb {
		r.Value = []byte(fmt.Sprint("v", ts))
	}
	return r.Append(nil)
}

func replyOf(t *testing.T, d *datadriven.TestData) reply {
	var r reply
	d.ScanArgs(t, "from", &r.id)
	if d.HasArg("rec") {
		var ts uint64
		d.ScanArgs(t, "rec", &ts)
		r.rec = testRec(ts, d.HasArg("tomb"))
	}
	if d.HasArg("err") {
		var e string
		d.ScanArgs(t, "err", &e)
		switch e {
		case "fail":
			r.err = errors.New("connection refused")
		case "down":
			r.err = errDown
		case "corrupt":
			r.err = fmt.Errorf("%w: damaged table 000042.sst", ErrCorruption)
		default:
			d.Fatalf(t, "unknown err=%s", e)
		}
	}
	if d.HasArg("pending") {
		var from []string
		for _, a := range d.CmdArgs {
			if a.Key == "pending" {
				from = a.Vals
			}
		}
		r.err = &PendingError{From: from}
	}
	return r
}

func printAsks(b *strings.Builder, ids []string) {
	for _, id := range ids {
		fmt.Fprintf(b, "ask %s\n", id)
	}
}

// recString shows an encoded record as its timestamp.
func recString(rec []byte) string {
	if rec == nil {
		return "none"
	}
	r, err := memtable.Decode(rec)
	if err != nil {
		return "corrupt"
	}
	if r.Tombstone {
		return strconv.FormatUint(r.TS, 10) + "(tomb)"
	}
	return strconv.FormatUint(r.TS, 10)
}

func repliesString(rs []reply) string {
	if len(rs) == 0 {
		return "-"
	}
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.id+"="+recString(r.rec))
	}
	return strings.Join(parts, " ")
}

func printReadState(b *strings.Builder, p *readPlan) {
	fmt.Fprintf(b, "asked %s; in flight %d; got %s; pending %s\n",
		strings.Join(p.order[:p.next], ","), p.inflight, repliesString(p.got), repliesString(p.pending))
	if !p.done {
		return
	}
	res := p.result
	switch {
	case res.err != nil:
		fmt.Fprintf(b, "done: %v\n", res.err)
	case res.rec == nil:
		b.WriteString("done: not found\n")
	default:
		repair := "-"
		if len(res.repair) > 0 {
			repair = strings.Join(res.repair, ",")
		}
		fmt.Fprintf(b, "done: newest %s; repair %s\n", recString(res.rec), repair)
	}
}
