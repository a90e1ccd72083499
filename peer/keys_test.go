package peer

import (
	"bytes"
	"testing"
)

func TestDeriveKeys(t *testing.T) {
	a := DeriveKeys([]byte("s3cret"), "")
	if len(a.Gossip) != 32 || len(a.Internode) != 32 || len(a.Join) != 32 {
		t.Fatalf("key lengths %d %d %d, want 32", len(a.Gossip), len(a.Internode), len(a.Join))
	}
	if bytes.Equal(a.Gossip, a.Internode) || bytes.Equal(a.Gossip, a.Join) || bytes.Equal(a.Internode, a.Join) {
		t.Fatal("two purposes share a key")
	}
	if b := DeriveKeys([]byte("s3cret"), DefaultClusterName); !bytes.Equal(a.Gossip, b.Gossip) {
		t.Fatal("the empty cluster name is not the default name")
	}
	if c := DeriveKeys([]byte("s3cret"), "other"); bytes.Equal(a.Gossip, c.Gossip) || bytes.Equal(a.Internode, c.Internode) {
		t.Fatal("two clusters with one secret share keys")
	}
	if d := DeriveKeys([]byte("s3cret2"), ""); bytes.Equal(a.Gossip, d.Gossip) {
		t.Fatal("two secrets give one key")
	}
	for _, k := range [][]byte{a.Gossip, a.Internode, a.Join} {
		if bytes.Contains(k, []byte("s3cret")) {
			t.Fatal("a key contains the secret")
		}
	}
}
