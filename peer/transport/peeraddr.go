package transport

import (
	"sync/atomic"

	"github.com/ringkv/ringkv/peer"
)

// PeerAddrs maps the members' HTTP addresses to the addresses they take
// internode calls at (their --peer-addr), from the latest view: Lookup
// is a Config.PeerAddr, SetView follows membership. It is safe for
// concurrent use; a member without a peer address maps to "".
type PeerAddrs struct {
	m atomic.Pointer[map[string]string]
}

// NewPeerAddrs returns a PeerAddrs that maps nothing until SetView.
func NewPeerAddrs() *PeerAddrs {
	p := &PeerAddrs{}
	p.m.Store(&map[string]string{})
	return p
}

// SetView replaces the map with v's members'.
func (p *PeerAddrs) SetView(v *peer.View) {
	m := map[string]string{}
	for _, mem := range v.Members {
		if mem.PeerAddr != "" {
			m[mem.HTTPAddr] = mem.PeerAddr
		}
	}
	p.m.Store(&m)
}

// Lookup returns the peer address of the member at httpAddr, or "".
func (p *PeerAddrs) Lookup(httpAddr string) string { return (*p.m.Load())[httpAddr] }
