// Package casmodel is the porcupine model the linearizability checks of
// conditional writes share (peer's in-memory Paxos simulation and
// cmd/ringkv's process test): a register per key, whose value is the last
// applied write's ("" while absent), changed only by compare-and-sets.
package casmodel

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Input is one operation: a serial read (Kind "read"), or a write of Next
// if the key's value is Expect, Kind naming it in descriptions ("cas",
// "create", "delete").
type Input struct {
	Kind, Key    string
	Expect, Next string
}

// Output is an operation's answer. At most one of Applied, CondFailed,
// NotApplied and Unknown is set; none on a read that answered.
type Output struct {
	Value      string // a read's value; a failed condition's current one when Known
	Known      bool
	Applied    bool // the write was applied
	CondFailed bool // the write's condition did not hold (412)
	NotApplied bool // the node's word that nothing was applied (a 503 saying so)
	// Unknown: a write that may or may not have been applied, at any
	// time after its call, or a read that answered nothing.
	Unknown bool
}

func (o Output) String() string {
	switch {
	case o.Applied:
		return "applied"
	case o.CondFailed && o.Known:
		return fmt.Sprintf("condition-failed (is %q)", o.Value)
	case o.CondFailed:
		return "condition-failed"
	case o.NotApplied:
		return "not-applied"
	case o.Unknown:
		return "unknown"
	}
	return fmt.Sprintf("%q", o.Value)
}

// Model partitions a history by key and checks each key as a register.
var Model = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(Input).Key
			if by[k] == nil {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(Input), output.(Output)
		switch {
		case in.Kind == "read" && out.Unknown, out.NotApplied:
			return []any{s}
		case in.Kind == "read":
			if out.Value == s {
				return []any{s}
			}
			return nil
		case out.Unknown:
			if s == in.Expect {
				return []any{s, in.Next}
			}
			return []any{s}
		case out.Applied:
			if s == in.Expect {
				return []any{in.Next}
			}
			return nil
		case out.CondFailed:
			if s != in.Expect && (!out.Known || s == out.Value) {
				return []any{s}
			}
			return nil
		}
		return nil // an answer the model does not know
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		if in.Kind == "read" {
			return fmt.Sprintf("read(%s) -> %s", in.Key, out)
		}
		return fmt.Sprintf("%s(%s, %q -> %q) -> %s", in.Kind, in.Key, in.Expect, in.Next, out)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}).ToModel()
