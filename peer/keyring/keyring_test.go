package keyring

import (
	"bytes"
	"testing"
)

func TestDeriveKeys(t *testing.T) {
	a := Derive([]byte("s3cret"), "")
	if len(a.Gossip) != 32 || len(a.Internode) != 32 || len(a.Join) != 32 {
		t.Fatalf("key lengths %d %d %d, want 32", len(a.Gossip), len(a.Internode), len(a.Join))
	}
	if bytes.Equal(a.Gossip, a.Internode) || bytes.Equal(a.Gossip, a.Join) || bytes.Equal(a.Internode, a.Join) {
		t.Fatal("two purposes share a key")
	}
	if b := Derive([]byte("s3cret"), DefaultClusterName); !bytes.Equal(a.Gossip, b.Gossip) {
		t.Fatal("the empty cluster name is not the default name")
	}
	if c := Derive([]byte("s3cret"), "other"); bytes.Equal(a.Gossip, c.Gossip) || bytes.Equal(a.Internode, c.Internode) {
		t.Fatal("two clusters with one secret share keys")
	}
	if d := Derive([]byte("s3cret2"), ""); bytes.Equal(a.Gossip, d.Gossip) {
		t.Fatal("two secrets give one key")
	}
	for _, k := range [][]byte{a.Gossip, a.Internode, a.Join} {
		if bytes.Contains(k, []byte("s3cret")) {
			t.Fatal("a key contains the secret")
		}
	}
}

func TestSecretsRotate(t *testing.T) {
	var none *Keyring
	if none.Enabled() {
		t.Fatal("a nil keyring is enabled")
	}
	s := New("c", []byte("old"))
	changed := 0
	s.OnChange(func() { changed++ })
	old, _ := s.Primary()
	s.Set([]byte("old"), []byte("new"))
	if p, _ := s.Primary(); !bytes.Equal(p.Gossip, old.Gossip) || len(s.All()) != 2 {
		t.Fatal("adding a second secret changed the primary")
	}
	s.Set([]byte("new"))
	if p, _ := s.Primary(); bytes.Equal(p.Gossip, old.Gossip) || changed != 2 {
		t.Fatalf("after the switch: primary unchanged or %d change calls", changed)
	}
	s.Set()
	if s.Enabled() {
		t.Fatal("an empty keyring is enabled")
	}
}
