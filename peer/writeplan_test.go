package peer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestWritePlan runs the transcripts in testdata/writeplan: each step
// feeds the plan an owner's answer or the timeout, and prints what is left
// to do and the plan's state after it (go test -run TestWritePlan -rewrite
// regenerates them).
//
//	plan self=n1 owners=(n1,n2,n3) need=2 [down=(n3)] [unchecked]
//	answer from=n2 ok | err=fail|clock|down|full
//	timeout
func TestWritePlan(t *testing.T) {
	var p *writePlan
	var waiting []string // owners whose answers are due
	datadriven.RunTest(t, "testdata/writeplan", func(t *testing.T, d *datadriven.TestData) string {
		var b strings.Builder
		switch d.Cmd {
		case "plan":
			var env writeEnv
			var down []string
			env.op = "put"
			d.ScanArgs(t, "self", &env.self)
			d.ScanArgs(t, "owners", &env.owners)
			d.ScanArgs(t, "need", &env.need)
			d.MaybeScanArgs(t, "down", &down)
			env.checked = !d.HasArg("unchecked")
			env.reachable = func(id string) bool { return !slices.Contains(down, id) }
			p = newWritePlan(env)
			waiting = nil
			for _, s := range p.start() {
				fmt.Fprintf(&b, "%s %s\n", [...]string{"send", "hint", "store"}[s.act], s.id)
				waiting = append(waiting, s.id)
			}
			if p.deferred {
				fmt.Fprintf(&b, "store %s after a replica accepts\n", env.self)
			}
		case "answer":
			var id string
			d.ScanArgs(t, "from", &id)
			i := slices.Index(waiting, id)
			if i < 0 {
				d.Fatalf(t, "an answer from %s, which owes none", id)
			}
			waiting = slices.Delete(waiting, i, i+1)
			err := writeErrOf(t, d)
			replica := id != p.env.self && !errors.Is(err, errDown)
			if replica {
				switch hint, refused := replicaFailure(err); {
				case hint:
					fmt.Fprintf(&b, "hint %s\n", id)
				case refused:
					fmt.Fprintf(&b, "clock refused by %s: no hint\n", id)
				}
			}
			if p.onAnswer(replica, err) {
				fmt.Fprintf(&b, "store %s\n", p.env.self)
				waiting = append(waiting, p.env.self)
			}
		case "timeout":
			p.onTimeout()
		default:
			d.Fatalf(t, "unknown command %s", d.Cmd)
		}
		deferred := ""
		if p.deferred {
			deferred = "; own copy deferred"
		}
		fmt.Fprintf(&b, "acks %d; fails %d%s\n", p.acks, p.fails, deferred)
		if p.done {
			if p.err != nil {
				fmt.Fprintf(&b, "done: %v\n", p.err)
			} else {
				b.WriteString("done: acknowledged\n")
			}
		}
		return b.String()
	})
}

func writeErrOf(t *testing.T, d *datadriven.TestData) error {
	if d.HasArg("ok") {
		return nil
	}
	var e string
	d.ScanArgs(t, "err", &e)
	switch e {
	case "fail":
		return errors.New("connection refused")
	case "down":
		return errDown
	case "clock":
		return fmt.Errorf("%w: key %q: record stamped 2s ahead", ErrClockOffset, "k")
	case "full":
		return errors.New("engine: disk full")
	}
	d.Fatalf(t, "unknown err=%s", e)
	return nil
}
