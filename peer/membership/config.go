package membership

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
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
	// AdvertiseAddr is the IP:port the other members reach this node's
	// gossip at (memberlist's AdvertiseAddr and AdvertisePort), when not
	// BindAddr (see Advertise). The default is BindAddr when its host is a
	// specific IP, else the address memberlist picks (the host's first
	// private IP) with BindAddr's port.
	AdvertiseAddr string
	// Join lists the members to join (--join): HOST:PORT each, HOST a
	// name (every address behind it is tried: a headless Service's name
	// gives all its pods) or an IP. A brand-new node with Join does not
	// found a ring of its own: it waits, out of the ring, until it meets
	// a ring to enter or, with BootstrapExpect, until the initial ring's
	// members are all there. Without Join a brand-new node founds a ring.
	// The default is none.
	Join []string
	// BootstrapExpect, when above 0, is the size of the initial ring
	// (--bootstrap-expect): a brand-new node with Join that meets no ring
	// waits until it sees that many members, then they form the ring
	// together. 0: the member of the lowest id among brand-new ones that
	// met founds the ring, and the others enter it.
	BootstrapExpect int
	// Resolve resolves Join's names, on every attempt (a name's pods
	// change). The default is DefaultResolver.
	Resolve Resolver
	// JoinRetryMin and JoinRetryMax bound JoinUntil's backoff between
	// attempts (jittered, doubling from min to max). The defaults are
	// DefaultJoinRetryMin and DefaultJoinRetryMax.
	JoinRetryMin, JoinRetryMax time.Duration
	// Secrets, when it holds any secret, encrypts gossip with the keys
	// derived from them (memberlist's keyring, the primary secret's key
	// first) and refuses unencrypted gossip; a Set installs the new keys
	// while the node runs. nil or empty: no encryption.
	Secrets *peer.Secrets
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

// DefaultJoinRetryMin and DefaultJoinRetryMax are Config.JoinRetryMin's
// and Config.JoinRetryMax's defaults.
const (
	DefaultJoinRetryMin = time.Second
	DefaultJoinRetryMax = 30 * time.Second
)

// DefaultLivenessInterval is Config.LivenessInterval's default.
const DefaultLivenessInterval = time.Second

// EnsureDefaults replaces every zero field but the required ones (NodeID,
// HTTPAddr, BindAddr, Engine, Clock, OnView) and those whose zero value
// means none (PeerAddr, AdvertiseAddr, Join, BootstrapExpect, Secrets,
// Tune, Offsets) with its default.
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
	if c.Resolve == nil {
		c.Resolve = DefaultResolver
	}
	if c.JoinRetryMin == 0 {
		c.JoinRetryMin = DefaultJoinRetryMin
	}
	if c.JoinRetryMax == 0 {
		c.JoinRetryMax = max(DefaultJoinRetryMax, c.JoinRetryMin)
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
	case c.BootstrapExpect < 0:
		return &peer.ConfigError{Config: "membership.Config", Field: "BootstrapExpect", Value: fmt.Sprint(c.BootstrapExpect), Want: "must not be negative"}
	case c.JoinRetryMin <= 0 || c.JoinRetryMax < c.JoinRetryMin:
		return &peer.ConfigError{Config: "membership.Config", Field: "JoinRetryMax", Value: c.JoinRetryMin.String() + ".." + c.JoinRetryMax.String(), Want: "must be positive, at least JoinRetryMin"}
	}
	return c.validateAddrs()
}

// validateAddrs refuses what peers cannot call: an HTTP or advertised
// gossip address on every interface (0.0.0.0, ::). A node bound there
// advertises a specific address (Advertise).
func (c *Config) validateAddrs() error {
	check := func(field, addr string, ipOnly bool) error {
		host, _, err := net.SplitHostPort(addr)
		switch {
		case err != nil:
			return &peer.ConfigError{Config: "membership.Config", Field: field, Value: addr, Want: "must be HOST:PORT"}
		case unspecified(host):
			return &peer.ConfigError{Config: "membership.Config", Field: field, Value: addr, Want: "must be an address peers can call, not every interface"}
		case ipOnly && net.ParseIP(host) == nil:
			return &peer.ConfigError{Config: "membership.Config", Field: field, Value: addr, Want: "must be an IP address"}
		}
		return nil
	}
	if err := check("HTTPAddr", c.HTTPAddr, false); err != nil {
		return err
	}
	if c.PeerAddr != "" {
		if err := check("PeerAddr", c.PeerAddr, false); err != nil {
			return err
		}
	}
	if c.AdvertiseAddr != "" {
		return check("AdvertiseAddr", c.AdvertiseAddr, true)
	}
	return nil
}
