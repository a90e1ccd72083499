package membership

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/peer/keyring"
)

// newGossipKeyring returns memberlist's keyring of every secret's gossip
// key, the primary secret's first (the one it encrypts with).
func newGossipKeyring(s *keyring.Keyring) (*memberlist.Keyring, error) {
	all := s.All()
	others := make([][]byte, 0, len(all))
	for _, k := range all[1:] {
		others = append(others, k.Gossip)
	}
	kr, err := memberlist.NewKeyring(others, all[0].Gossip)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	return kr, nil
}

// rotateKeys makes memberlist's keyring hold exactly the gossip keys of
// the current secrets, in the order that keeps every step readable by
// the members that have not caught up yet: new keys are added first (a
// packet under any of them is read from now on), then the primary is
// switched (this node encrypts with it), and only then are dropped keys
// removed. A keyring cannot become empty while memberlist runs, nor
// appear: turning encryption on or off takes a restart.
func (g *Gossip) rotateKeys(kr *memberlist.Keyring) {
	all := g.cfg.Secrets.All()
	switch {
	case kr == nil && len(all) == 0:
		return
	case kr == nil:
		g.cfg.Logger.Error("cluster secrets were added, but gossip was started without encryption: restart the node to encrypt gossip")
		return
	case len(all) == 0:
		g.cfg.Logger.Error("every cluster secret was removed; gossip keeps its keys until the node restarts (it cannot run unencrypted beside encrypted members)")
		return
	}
	for _, k := range all {
		if err := kr.AddKey(k.Gossip); err != nil {
			g.cfg.Logger.Error("cannot install a gossip key", "err", err)
			return
		}
	}
	if err := kr.UseKey(all[0].Gossip); err != nil {
		g.cfg.Logger.Error("cannot switch the primary gossip key", "err", err)
		return
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(all, func(k keyring.Keys) bool { return bytes.Equal(k.Gossip, old) }) {
			if err := kr.RemoveKey(old); err != nil {
				g.cfg.Logger.Error("cannot remove a gossip key", "err", err)
			}
		}
	}
	g.cfg.Logger.Info("gossip keys installed", "keys", len(all))
}
