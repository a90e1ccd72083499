package peer

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/peer/kv"
)

// TestClientErr: a storage error, as Node's client-facing methods return
// it, matches the kv sentinel httpd maps to a status, keeps matching what
// it matched (the engine's sentinel, its typed error) and keeps its text.
func TestClientErr(t *testing.T) {
	full := &engine.DiskFullError{}
	for _, tc := range []struct {
		err     error
		storage error
		client  error
	}{
		{ErrNotFound, engine.ErrNotFound, kv.ErrNotFound},
		{fmt.Errorf("reading k: %w", engine.ErrNotFound), engine.ErrNotFound, kv.ErrNotFound},
		{&kv.UnavailableError{Op: "put", Needed: 2, Cause: full}, engine.ErrDiskFull, kv.ErrDiskFull},
		{fmt.Errorf("cannot read: %w", engine.ErrCorruption), engine.ErrCorruption, kv.ErrCorruption},
	} {
		got := clientErr(tc.err)
		if !errors.Is(got, tc.client) || !errors.Is(got, tc.storage) || got.Error() != tc.err.Error() {
			t.Errorf("clientErr(%v) = %v: matches %v %t, %v %t", tc.err, got, tc.client, errors.Is(got, tc.client), tc.storage, errors.Is(got, tc.storage))
		}
		var u *kv.UnavailableError
		if errors.As(tc.err, &u) && !errors.As(got, &u) {
			t.Errorf("clientErr(%v) lost its UnavailableError", tc.err)
		}
	}
	if clientErr(nil) != nil {
		t.Error("clientErr(nil) is not nil")
	}
	other := errors.New("other")
	if clientErr(other) != other {
		t.Error("an error that means no sentinel is changed")
	}
}
