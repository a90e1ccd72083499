package membership

import (
	"errors"
	"testing"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
)

// TestConfigDefaults: the zero value of each defaulted field becomes its
// documented default, the ring's shape the same as peer.Config's; explicit
// values stay.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	if c.Replicas != peer.DefaultReplicas || c.VNodes != peer.DefaultVNodes ||
		c.ReconnectInterval != DefaultReconnectInterval || c.LivenessInterval != DefaultLivenessInterval ||
		c.Logger == nil || c.Now == nil {
		t.Fatalf("defaults: %+v", c)
	}
	set := Config{Replicas: 1, VNodes: 8, ReconnectInterval: time.Millisecond, LivenessInterval: time.Minute}
	set.EnsureDefaults()
	if set.Replicas != 1 || set.VNodes != 8 || set.ReconnectInterval != time.Millisecond || set.LivenessInterval != time.Minute {
		t.Fatalf("explicit values changed: %+v", set)
	}
}

// TestConfigValidate: each refused value is reported as a
// *peer.ConfigError naming its field.
func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{NodeID: "n1", HTTPAddr: "127.0.0.1:8080", BindAddr: "127.0.0.1:0", Engine: new(engine.Engine), Clock: memtable.NewClock(nil), OnView: func(*peer.View) {}}
		c.EnsureDefaults()
		return c
	}
	for _, tc := range []struct {
		name  string
		set   func(*Config)
		field string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no node id", func(c *Config) { c.NodeID = "" }, "NodeID"},
		{"node id too long", func(c *Config) { c.NodeID = string(make([]byte, peer.MaxNodeIDLen+1)) }, "NodeID"},
		{"no bind address", func(c *Config) { c.BindAddr = "" }, "BindAddr"},
		{"no engine", func(c *Config) { c.Engine = nil }, "Engine"},
		{"no clock", func(c *Config) { c.Clock = nil }, "Clock"},
		{"no OnView", func(c *Config) { c.OnView = nil }, "OnView"},
		{"replicas above max", func(c *Config) { c.Replicas = peer.MaxReplicas + 1 }, "Replicas"},
		{"vnodes 0", func(c *Config) { c.VNodes = 0 }, "VNodes"},
		{"reconnect negative", func(c *Config) { c.ReconnectInterval = -time.Second }, "ReconnectInterval"},
		{"liveness 0", func(c *Config) { c.LivenessInterval = 0 }, "LivenessInterval"},
		// Peers cannot call every interface: a node bound there
		// advertises a specific address (Advertise).
		{"http addr unspecified", func(c *Config) { c.HTTPAddr = "0.0.0.0:8080" }, "HTTPAddr"},
		{"http addr unspecified v6", func(c *Config) { c.HTTPAddr = "[::]:8080" }, "HTTPAddr"},
		{"http addr no host", func(c *Config) { c.HTTPAddr = ":8080" }, "HTTPAddr"},
		{"http addr a name", func(c *Config) { c.HTTPAddr = "ringkv-0.ringkv:8080" }, ""},
		{"http addr v6", func(c *Config) { c.HTTPAddr = "[fd00::1]:8080" }, ""},
		{"peer addr unspecified", func(c *Config) { c.PeerAddr = "0.0.0.0:8081" }, "PeerAddr"},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7946" }, "AdvertiseAddr"},
		{"advertise a name", func(c *Config) { c.AdvertiseAddr = "ringkv-0:7946" }, "AdvertiseAddr"},
		{"advertise v6", func(c *Config) { c.AdvertiseAddr = "[fd00::1]:7946" }, ""},
		{"bootstrap expect negative", func(c *Config) { c.BootstrapExpect = -1 }, "BootstrapExpect"},
		{"join retry max below min", func(c *Config) { c.JoinRetryMin, c.JoinRetryMax = time.Second, time.Millisecond }, "JoinRetryMax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.set(&c)
			err := c.Validate()
			var ce *peer.ConfigError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "":
			case !errors.As(err, &ce) || ce.Field != tc.field || ce.Config != "membership.Config":
				t.Fatalf("err %v, want a *peer.ConfigError for membership.Config.%s", err, tc.field)
			}
		})
	}
}
