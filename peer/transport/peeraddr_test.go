package transport

import (
	"testing"

	"github.com/ringkv/ringkv/peer"
)

// TestPeerAddrs: Lookup follows the latest view; a member without a peer
// address, or not in the view, maps to "".
func TestPeerAddrs(t *testing.T) {
	p := NewPeerAddrs()
	if got := p.Lookup("a:1"); got != "" {
		t.Fatalf("before any view: %q", got)
	}
	p.SetView(&peer.View{Members: map[string]peer.Member{
		"a": {ID: "a", HTTPAddr: "a:1", PeerAddr: "a:2"},
		"b": {ID: "b", HTTPAddr: "b:1"},
	}})
	if got := p.Lookup("a:1"); got != "a:2" {
		t.Errorf("a: %q", got)
	}
	if got := p.Lookup("b:1"); got != "" {
		t.Errorf("b, without a peer address: %q", got)
	}
	p.SetView(&peer.View{Members: map[string]peer.Member{"b": {ID: "b", HTTPAddr: "b:1", PeerAddr: "b:2"}}})
	if got, gotB := p.Lookup("a:1"), p.Lookup("b:1"); got != "" || gotB != "b:2" {
		t.Errorf("after a new view: a %q, b %q", got, gotB)
	}
}
