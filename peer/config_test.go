package peer

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestConfigEnsureDefaults: the zero value of each field becomes its
// documented default; explicit values, off values included, stay; a
// second call changes nothing.
func TestConfigEnsureDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	want := Config{
		RequestTimeout:      5 * time.Second,
		Replicas:            3,
		VNodes:              128,
		HedgeAfter:          100 * time.Millisecond,
		HintInterval:        2 * time.Second,
		MaxHintBytes:        1 << 30,
		MaxHintAge:          3 * time.Hour,
		TransferRate:        32 << 20,
		AntiEntropyInterval: 10 * time.Minute,
		AntiEntropyRate:     8 << 20,
		TombstoneGrace:      24 * time.Hour,
		PaxosHorizon:        24 * time.Hour,
	}
	if got := values(c); !reflect.DeepEqual(got, values(want)) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, values(want))
	}
	if c.Now == nil || c.Logger == nil || c.Clocks == nil || c.Clock == nil || c.Time == nil {
		t.Fatalf("Now, Logger, Clocks and Clock must be set: %+v", c)
	}
	if c.Clock.MaxOffset() != c.Clocks.Bound() || c.Clocks.Bound() != DefaultMaxClockOffset {
		t.Fatalf("Clock's bound %s, Clocks' %s: want both %s", c.Clock.MaxOffset(), c.Clocks.Bound(), DefaultMaxClockOffset)
	}
	again := c
	again.EnsureDefaults()
	if !reflect.DeepEqual(values(again), values(c)) {
		t.Fatalf("EnsureDefaults is not idempotent:\n%+v\n%+v", values(again), values(c))
	}

	set := Config{
		RequestTimeout: time.Second, Replicas: 2, VNodes: 8, HedgeAfter: time.Millisecond, HintInterval: time.Minute,
		MaxHintBytes: NoLimit, MaxHintAge: NoLimit, TransferRate: NoLimit, AntiEntropyInterval: Off,
		AntiEntropyRate: NoLimit, TombstoneGrace: NoGrace, PaxosHorizon: Off,
	}
	kept := set
	kept.EnsureDefaults()
	if !reflect.DeepEqual(values(kept), values(set)) {
		t.Fatalf("explicit values changed:\n got %+v\nwant %+v", values(kept), values(set))
	}
	if err := kept.Validate(); err != nil {
		t.Fatalf("explicit values and off values refused: %v", err)
	}
}

// values is c without its func and pointer fields, for reflect.DeepEqual.
func values(c Config) Config {
	c.Now, c.Logger, c.Clocks, c.Clock, c.Time = nil, nil, nil, nil, nil
	return c
}

// TestConfigValidate: each refused value is reported as a *ConfigError
// naming its field; the defaults and the off values pass.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*Config)
		field string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"node id at the limit", func(c *Config) { c.NodeID = string(make([]byte, MaxNodeIDLen)) }, ""},
		{"node id too long", func(c *Config) { c.NodeID = string(make([]byte, MaxNodeIDLen+1)) }, "NodeID"},
		{"replicas 0", func(c *Config) { c.Replicas = 0 }, "Replicas"},
		{"replicas max", func(c *Config) { c.Replicas = MaxReplicas }, ""},
		{"replicas above max", func(c *Config) { c.Replicas = MaxReplicas + 1 }, "Replicas"},
		{"vnodes negative", func(c *Config) { c.VNodes = -1 }, "VNodes"},
		{"vnodes above max", func(c *Config) { c.VNodes = MaxVNodes + 1 }, "VNodes"},
		{"request timeout 0", func(c *Config) { c.RequestTimeout = 0 }, "RequestTimeout"},
		{"request timeout -1ns is no off value", func(c *Config) { c.RequestTimeout = -1 }, "RequestTimeout"},
		{"hedge 0", func(c *Config) { c.HedgeAfter = 0 }, "HedgeAfter"},
		{"hint interval negative", func(c *Config) { c.HintInterval = -time.Second }, "HintInterval"},
		{"hint bytes off", func(c *Config) { c.MaxHintBytes = NoLimit }, ""},
		{"hint bytes -2", func(c *Config) { c.MaxHintBytes = -2 }, "MaxHintBytes"},
		{"hint age off", func(c *Config) { c.MaxHintAge = NoLimit }, ""},
		{"hint age -1s", func(c *Config) { c.MaxHintAge = -time.Second }, "MaxHintAge"},
		{"transfer rate 0", func(c *Config) { c.TransferRate = 0 }, "TransferRate"},
		{"transfer rate off", func(c *Config) { c.TransferRate = NoLimit }, ""},
		{"anti-entropy off", func(c *Config) { c.AntiEntropyInterval = Off }, ""},
		{"anti-entropy -1m", func(c *Config) { c.AntiEntropyInterval = -time.Minute }, "AntiEntropyInterval"},
		{"anti-entropy rate -5", func(c *Config) { c.AntiEntropyRate = -5 }, "AntiEntropyRate"},
		{"grace none", func(c *Config) { c.TombstoneGrace = NoGrace }, ""},
		{"grace 0", func(c *Config) { c.TombstoneGrace = 0 }, "TombstoneGrace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.EnsureDefaults()
			tc.set(&c)
			err := c.Validate()
			var ce *ConfigError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "":
			case !errors.As(err, &ce):
				t.Fatalf("err %v, want a *ConfigError for %s", err, tc.field)
			case ce.Field != tc.field:
				t.Fatalf("err %v names %s, want %s", err, ce.Field, tc.field)
			}
		})
	}
}

// TestConfigErrorMessages: the library's message names the Config field
// and the off value; Message names the caller's.
func TestConfigErrorMessages(t *testing.T) {
	c := Config{}
	c.EnsureDefaults()
	c.TransferRate = 0
	err := c.Validate()
	if got, want := err.Error(), "peer: Config.TransferRate (0B) must be positive, or peer.NoLimit"; got != want {
		t.Fatalf("Error() %q, want %q", got, want)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatal(err)
	}
	if got, want := ce.Message(func(string) string { return "--transfer-rate" }), "--transfer-rate (0B) must be positive"; got != want {
		t.Fatalf("Message %q, want %q", got, want)
	}
}
