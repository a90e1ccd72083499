package casmodel

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestModel: the histories a register allows and those it does not, for
// each kind of answer.
func TestModel(t *testing.T) {
	op := func(client int, call, ret int64, in Input, out Output) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	create := Input{Kind: "create", Key: "k", Expect: "", Next: "a"}
	read := Input{Kind: "read", Key: "k"}
	for _, tc := range []struct {
		name string
		h    []porcupine.Operation
		ok   bool
	}{
		{"applied then read", []porcupine.Operation{op(0, 0, 1, create, Output{Applied: true}), op(1, 2, 3, read, Output{Value: "a"})}, true},
		{"read misses an applied write", []porcupine.Operation{op(0, 0, 1, create, Output{Applied: true}), op(1, 2, 3, read, Output{Value: ""})}, false},
		{"not applied, yet read", []porcupine.Operation{op(0, 0, 1, create, Output{NotApplied: true}), op(1, 2, 3, read, Output{Value: "a"})}, false},
		{"unknown, seen later", []porcupine.Operation{op(0, 0, 1<<40, create, Output{Unknown: true}), op(1, 2, 3, read, Output{Value: "a"})}, true},
		{"unknown, never applied", []porcupine.Operation{op(0, 0, 1<<40, create, Output{Unknown: true}), op(1, 2, 3, read, Output{Value: ""})}, true},
		{"condition failed on the value it names", []porcupine.Operation{op(0, 0, 1, create, Output{Applied: true}),
			op(1, 2, 3, create, Output{CondFailed: true, Known: true, Value: "a"})}, true},
		{"condition failed naming another value", []porcupine.Operation{op(0, 0, 1, create, Output{Applied: true}),
			op(1, 2, 3, create, Output{CondFailed: true, Known: true, Value: "b"})}, false},
		{"condition failed though it held", []porcupine.Operation{op(1, 0, 1, create, Output{CondFailed: true})}, false},
		{"two creates applied", []porcupine.Operation{op(0, 0, 1, create, Output{Applied: true}),
			op(1, 2, 3, Input{Kind: "create", Key: "k", Next: "b"}, Output{Applied: true})}, false},
		{"keys apart", []porcupine.Operation{op(0, 0, 1, create, Output{Applied: true}),
			op(1, 2, 3, Input{Kind: "create", Key: "j", Next: "b"}, Output{Applied: true})}, true},
	} {
		if got := porcupine.CheckOperations(Model, tc.h); got != tc.ok {
			t.Errorf("%s: linearizable %v, want %v", tc.name, got, tc.ok)
		}
	}
}
