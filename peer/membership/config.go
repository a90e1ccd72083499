package membership

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
)

// Config configures Gossip. The zero value of every field but the
// required ones means its default; EnsureDefaults fills them in.
type Config struct {
	// NodeID, HTTPAddr: this node's identity and client address; required.
	NodeID   string
	HTTPAddr string
	// PeerAddr is where this node takes internode calls, when not at
	// HTTPAddr (--peer-addr); the default is none.
	PeerAddr string
	// BindAddr is the host:port memberlist listens on (UDP and TCP); required.
	BindAddr string
	// Secrets, when it holds any secret, encrypts gossip with the keys
	// derived from them (memberlist's keyring, the primary secret's key
	// first) and refuses unencrypted gossip; a Set installs the new keys
	// while the node runs. nil or empty: no encryption.
	Secrets *keyring.Keyring
	// Replicas and VNodes shape the ring, as peer.Config's fields of those
	// names do, with the same defaults (peer.DefaultReplicas and
	// peer.DefaultVNodes) and limits; a node's two Configs should agree.
	Replicas, VNodes int
	// Engine keeps the member list durably; required.
	Engine *engine.Engine
	// Clock stamps member-list changes; required.
	Clock *memtable.Clock
	// OnView receives every new view, from one goroutine; required.
	OnView func(*peer.View)
	// Logger receives membership's logs. The default is slog.Default().
	Logger *slog.Logger
	// Tune, if set, adjusts memberlist's configuration (tests shorten its
	// intervals, and may give it a transport of their own).
	Tune func(*memberlist.Config)
	// ReconnectInterval is how often each member of the ring that failure
	// detection reports dead is contacted again at its stored gossip
	// address, so a partition heals once the network does. The default
	// value is DefaultReconnectInterval.
	ReconnectInterval time.Duration
	// LivenessInterval is how often memberlist's suspect states are read
	// (it does not announce them) and clocks are pinged. The default value
	// is DefaultLivenessInterval.
	LivenessInterval time.Duration
	// Now reads wall time for the members' "since" and the clock that
	// probes' acks carry. The default is time.Now.
	Now func() time.Time
	// Offsets, if set, receives the clock offset each probe of a peer
	// measures.
	Offsets *peer.ClockMonitor
}

// DefaultReconnectInterval is Config.ReconnectInterval's default: two
// rounds of it (the first makes the far side refute its death, the second
// carries the refutation back) fit in the 10s a heal may take.
const DefaultReconnectInterval = 2 * time.Second

// DefaultLivenessInterval is Config.LivenessInterval's default.
const DefaultLivenessInterval = time.Second

// EnsureDefaults replaces every zero field but the required ones (NodeID,
// HTTPAddr, BindAddr, Engine, Clock, OnView) and those whose zero value
// means none (PeerAddr, Secrets, Tune, Offsets) with its default.
func (c *Config) EnsureDefaults() {
	if c.Replicas == 0 {
		c.Replicas = peer.DefaultReplicas
	}
	if c.VNodes == 0 {
		c.VNodes = peer.DefaultVNodes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.LivenessInterval == 0 {
		c.LivenessInterval = DefaultLivenessInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first field Start cannot run with, as a
// *peer.ConfigError. It expects EnsureDefaults to have run.
func (c *Config) Validate() error {
	required := []struct {
		field string
		unset bool
	}{
		{"NodeID", c.NodeID == ""},
		{"BindAddr", c.BindAddr == ""},
		{"Engine", c.Engine == nil},
		{"Clock", c.Clock == nil},
		{"OnView", c.OnView == nil},
	}
	for _, r := range required {
		if r.unset {
			return &peer.ConfigError{Config: "membership.Config", Field: r.field, Value: "unset", Want: "is required"}
		}
	}
	switch {
	case len(c.NodeID) > peer.MaxNodeIDLen:
		return &peer.ConfigError{Config: "membership.Config", Field: "NodeID", Value: fmt.Sprintf("%d bytes", len(c.NodeID)), Want: fmt.Sprintf("must be at most %d bytes", peer.MaxNodeIDLen)}
	case c.Replicas < 1 || c.Replicas > peer.MaxReplicas:
		return &peer.ConfigError{Config: "membership.Config", Field: "Replicas", Value: fmt.Sprint(c.Replicas), Want: fmt.Sprintf("must be 1 to %d", peer.MaxReplicas)}
	case c.VNodes < 1 || c.VNodes > peer.MaxVNodes:
		return &peer.ConfigError{Config: "membership.Config", Field: "VNodes", Value: fmt.Sprint(c.VNodes), Want: fmt.Sprintf("must be 1 to %d", peer.MaxVNodes)}
	case c.ReconnectInterval <= 0:
		return &peer.ConfigError{Config: "membership.Config", Field: "ReconnectInterval", Value: c.ReconnectInterval.String(), Want: "must be positive"}
	case c.LivenessInterval <= 0:
		return &peer.ConfigError{Config: "membership.Config", Field: "LivenessInterval", Value: c.LivenessInterval.String(), Want: "must be positive"}
	}
	return nil
}
