package peer

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// Config configures a Node. Every field documents its default: the zero
// value of a field means its default, and EnsureDefaults fills them in.
// A bound or a background pass is turned off by an explicit value (NoLimit,
// Off, NoGrace), never by the zero value.
type Config struct {
	// NodeID is this node's stable identity; required, at most MaxNodeIDLen bytes.
	NodeID string
	// HTTPAddr is the address clients and peers reach this node at.
	HTTPAddr string
	// Engine is the local store; required.
	Engine *engine.Engine
	// Clock stamps writes. The default is a Clock on Now, bounded by
	// Clocks' offset bound.
	Clock *memtable.Clock
	// Sync makes a write wait for its WAL fsync before it is acknowledged.
	// The zero value is false; ringkv serve sets it from --sync (default true).
	Sync bool
	// RequestTimeout bounds a request's work: the wait for replicas, and a
	// scan. The default value is DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Replicas is N, the number of nodes that hold each key (capped at the
	// number of nodes in the ring), at most MaxReplicas. The default value
	// is DefaultReplicas.
	Replicas int
	// VNodes is the number of ring tokens per node, at most MaxVNodes. The
	// default value is DefaultVNodes.
	VNodes int
	// Transport reaches the other nodes. nil means this node never talks to
	// another: it must then stay the only member of its ring.
	Transport Transport
	// HedgeAfter is how long a read waits for its replicas before it also
	// asks the next owner. The default value is DefaultHedgeAfter.
	HedgeAfter time.Duration
	// HintInterval is how often queued hints are retried for members that
	// are alive. The default value is DefaultHintInterval.
	HintInterval time.Duration
	// MaxHintBytes bounds the hints kept for one member: past it, new
	// hints for that member are dropped (the write still succeeds as far
	// as its consistency allows) and anti-entropy catches the replica up.
	// The default value is DefaultMaxHintBytes; NoLimit means no bound.
	MaxHintBytes int64
	// MaxHintAge is the oldest a hint is kept: older ones are dropped,
	// as is a new hint for a write stamped longer ago, and anti-entropy
	// repairs instead. The default value is DefaultMaxHintAge; NoLimit
	// means no bound.
	MaxHintAge time.Duration
	// TransferRate bounds the bytes a second this node sends, all streams
	// together, when others pull ranges from it (for a move or for
	// anti-entropy). The default value is DefaultTransferRate; NoLimit
	// means no bound.
	TransferRate int64
	// TransferDir is where pulled ranges are staged as SSTables before
	// they are merged in; it must be on the engine's filesystem. The
	// default is the engine's directory with ".transfers" appended.
	TransferDir string
	// AntiEntropyInterval is how often the node compares Merkle trees of
	// its ranges with their other owners and pulls what differs. The
	// default value is DefaultAntiEntropyInterval; Off disables it.
	AntiEntropyInterval time.Duration
	// AntiEntropyRate bounds the bytes a second anti-entropy reads from
	// peers. The default value is DefaultAntiEntropyRate; NoLimit means no
	// bound.
	AntiEntropyRate int64
	// PaxosHorizon is the age past which a key's settled Paxos state (no
	// conditional write in flight) is swept, and below which ballots are
	// refused (paxosgc.go): it must be far longer than any round. The
	// default value is DefaultPaxosHorizon; Off keeps every state.
	PaxosHorizon time.Duration
	// TombstoneGrace is the age past which garbage collection may delete a
	// tombstone (or expired record); anti-entropy leaves such records out
	// of its comparisons. It should equal the engine's grace. The default
	// value is DefaultTombstoneGrace; NoGrace means none.
	TombstoneGrace time.Duration
	// Now reads wall time for TTLs and expiry. The default is time.Now.
	Now func() time.Time
	// Time is where the coordinator reads the time for its deadlines and
	// arms its timers (request timeouts, read hedges, commit waits), so
	// tests can drive them. The default is RealTime.
	Time TimeSource
	// Clocks measures the clock offsets to peers (the gossip layer feeds
	// it) and bounds them; see clock.go. The default is a monitor of
	// DefaultMaxClockOffset on Now. Clock's bound should be the same.
	Clocks *ClockMonitor
	// Logger is the node's logger. The default is slog.Default().
	Logger *slog.Logger
}

// Defaults of Config, as documented on its fields (DefaultMaxHintBytes and
// DefaultMaxHintAge are beside the hints, in hints.go).
const (
	DefaultRequestTimeout      = 5 * time.Second
	DefaultReplicas            = ring.DefaultReplicas
	DefaultVNodes              = ring.DefaultVNodes
	DefaultHedgeAfter          = 100 * time.Millisecond
	DefaultHintInterval        = 2 * time.Second
	DefaultTransferRate        = 32 << 20
	DefaultAntiEntropyInterval = 10 * time.Minute
	DefaultAntiEntropyRate     = 8 << 20
	DefaultTombstoneGrace      = engine.DefaultTombstoneGrace
	DefaultPaxosHorizon        = 24 * time.Hour
)

// Limits of Config that Validate enforces. A ring precomputes the owner
// list of every token (nodes × VNodes × Replicas names), so these keep a
// ring's memory and build time small at any plausible cluster size.
const (
	MaxReplicas = 16
	MaxVNodes   = 4096
)

// The explicit "off" values of Config's bounds and background passes.
// The zero value means the default, so turning a thing off needs a value
// of its own; Validate accepts these and refuses every other negative one.
const (
	// NoLimit, as MaxHintBytes, MaxHintAge, TransferRate or
	// AntiEntropyRate, removes that bound.
	NoLimit = -1
	// Off, as AntiEntropyInterval, turns anti-entropy off; as
	// PaxosHorizon, the sweep of Paxos states.
	Off = -1
	// NoGrace, as TombstoneGrace, gives tombstones no grace: garbage
	// collection may drop one as soon as the GC horizon allows.
	NoGrace = engine.NoGrace
)

// EnsureDefaults replaces every zero field but NodeID, HTTPAddr, Engine,
// Sync and Transport with its default. It leaves the off values (NoLimit,
// Off, NoGrace) and any invalid value as they are, for Validate.
func (c *Config) EnsureDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Time == nil {
		c.Time = RealTime{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clocks == nil {
		c.Clocks = NewClockMonitor(0, c.Now, c.Logger)
	}
	if c.Clock == nil {
		c.Clock = memtable.NewClockBound(c.Now, c.Clocks.Bound())
	}
	c.RequestTimeout = orDefault(c.RequestTimeout, DefaultRequestTimeout)
	c.Replicas = orDefault(c.Replicas, DefaultReplicas)
	c.VNodes = orDefault(c.VNodes, DefaultVNodes)
	c.HedgeAfter = orDefault(c.HedgeAfter, DefaultHedgeAfter)
	c.HintInterval = orDefault(c.HintInterval, DefaultHintInterval)
	c.MaxHintBytes = orDefault(c.MaxHintBytes, DefaultMaxHintBytes)
	c.MaxHintAge = orDefault(c.MaxHintAge, DefaultMaxHintAge)
	c.TransferRate = orDefault(c.TransferRate, DefaultTransferRate)
	c.AntiEntropyInterval = orDefault(c.AntiEntropyInterval, DefaultAntiEntropyInterval)
	c.AntiEntropyRate = orDefault(c.AntiEntropyRate, DefaultAntiEntropyRate)
	c.TombstoneGrace = orDefault(c.TombstoneGrace, DefaultTombstoneGrace)
	c.PaxosHorizon = orDefault(c.PaxosHorizon, DefaultPaxosHorizon)
	if c.TransferDir == "" && c.Engine != nil {
		c.TransferDir = c.Engine.Dir() + ".transfers"
	}
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Validate reports the first field whose value NewNode cannot run with, as
// a *ConfigError. It expects EnsureDefaults to have run, so a zero field
// is refused. It checks values only, not that the required NodeID and
// Engine are set (NewNode does): a caller can validate its settings before
// it has opened the store and learned the node's id (ringkv serve checks
// its flags so).
func (c *Config) Validate() error {
	if len(c.NodeID) > MaxNodeIDLen {
		return &ConfigError{Config: "peer.Config", Field: "NodeID", Value: fmt.Sprintf("%d bytes", len(c.NodeID)), Want: fmt.Sprintf("must be at most %d bytes", MaxNodeIDLen)}
	}
	if c.Replicas < 1 || c.Replicas > MaxReplicas {
		return c.fieldErr("Replicas", c.Replicas, fmt.Sprintf("must be 1 to %d", MaxReplicas))
	}
	if c.VNodes < 1 || c.VNodes > MaxVNodes {
		return c.fieldErr("VNodes", c.VNodes, fmt.Sprintf("must be 1 to %d", MaxVNodes))
	}
	durations := []struct {
		field string
		v     time.Duration
		off   string // the field's off value, if it takes one
	}{
		{"RequestTimeout", c.RequestTimeout, ""},
		{"HedgeAfter", c.HedgeAfter, ""},
		{"HintInterval", c.HintInterval, ""},
		{"MaxHintAge", c.MaxHintAge, "NoLimit"},
		{"AntiEntropyInterval", c.AntiEntropyInterval, "Off"},
		{"TombstoneGrace", c.TombstoneGrace, "NoGrace"},
		{"PaxosHorizon", c.PaxosHorizon, "Off"},
	}
	for _, d := range durations {
		if d.v <= 0 && (d.off == "" || d.v != NoLimit) {
			return &ConfigError{Config: "peer.Config", Field: d.field, Value: d.v.String(), Want: "must be positive", Off: d.off}
		}
	}
	sizes := []struct {
		field string
		v     int64
	}{
		{"MaxHintBytes", c.MaxHintBytes},
		{"TransferRate", c.TransferRate},
		{"AntiEntropyRate", c.AntiEntropyRate},
	}
	for _, s := range sizes {
		if s.v <= 0 && s.v != NoLimit {
			return &ConfigError{Config: "peer.Config", Field: s.field, Value: compaction.FormatSize(s.v), Want: "must be positive", Off: "NoLimit"}
		}
	}
	return nil
}

func (c *Config) fieldErr(field string, v int, want string) error {
	return &ConfigError{Config: "peer.Config", Field: field, Value: fmt.Sprint(v), Want: want}
}

// A ConfigError says which field of a Config (peer's, or another package's
// that builds on it, such as membership's) holds a value its Validate
// refuses, and why. Its message calls the field by its Go name; a caller
// that sets fields from names of its own (ringkv serve's flags) gets the
// message in those from Message.
type ConfigError struct {
	Config string // the struct, e.g. "peer.Config"
	Field  string // the field at fault, e.g. "Replicas"
	Value  string // the value refused, as a person writes it: "0", "5s", "1KiB"
	Want   string // what is accepted, e.g. "must be 1 to 16"
	// Off names the field's off value (NoLimit, Off, NoGrace), which it
	// also accepts; "" if it has none.
	Off string
}

func (e *ConfigError) Error() string {
	pkg, typ, _ := strings.Cut(e.Config, ".")
	msg := pkg + ": " + e.Message(func(f string) string { return typ + "." + f })
	if e.Off != "" {
		msg += ", or peer." + e.Off
	}
	return msg
}

// Message is the error with the field called name(Field). It leaves the
// off value out: a caller with names of its own turns things off its own
// way (ringkv serve's flags with 0, where they can).
func (e *ConfigError) Message(name func(field string) string) string {
	return fmt.Sprintf("%s (%s) %s", name(e.Field), e.Value, e.Want)
}
