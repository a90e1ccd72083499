package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/httpd"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/membership"
	"github.com/ringkv/ringkv/peer/transport"
	"github.com/ringkv/ringkv/sstable"
)

// serveConfig is every serve flag, bound in addFlags.
type serveConfig struct {
	httpAddr, gossipAddr, join, dataDir, nodeID string
	replicas, vnodes                            int
	sync, rowCacheWarm                          bool
	profile                                     string
	memtableSize, lbaseMaxBytes, targetFileSize int64
	blockCacheSize                              int64
	l0Compaction, l0Stop, maxCompactions, bloom int
	maxValueSize, rowCacheSize                  int64
	requestTimeout, tombstoneGrace              time.Duration
	transferRate, antiEntropyRate               int64
	antiEntropyInterval, maxClockOffset         time.Duration
	paxosHorizon                                time.Duration
	drain                                       bool
	profileOnStall, clusterSecret               string
	clusterName                                 string
	pprof                                       bool
	mutexProfileFraction                        int
	blockProfileRate                            time.Duration
	logLevel                                    string
	shutdownTimeout                             time.Duration
	minFreeSpace                                engine.FreeSpace

	// Client authentication and the admin plane (httpd/auth.go).
	authFile, clusterSecretFile       string
	metricsOpen, statusOpen, insecure bool
	kvstoreAddNodeGet                 bool
	// secretOnCmdline: --cluster-secret came as a flag, where ps shows it.
	secretOnCmdline bool
	// TLS (README.md, "TLS").
	tlsCertFile, tlsKeyFile, peerCertFile, peerKeyFile, peerCAFile, peerAddr string
	clientCAFile                                                             string
	// Limits (README.md, "Limits").
	limits limitFlags
	// Addresses peers reach this node at, and how it joins (README.md,
	// "Running a cluster", advertise.go).
	advertiseHTTPAddr, advertiseGossipAddr string
	bootstrapExpect                        int
	joinTimeout                            time.Duration
}

// defaultServeConfig is the flags' defaults: the libraries' own, so that
// each is written once (flags_test.go checks them).
func defaultServeConfig() serveConfig {
	return serveConfig{
		httpAddr: httpd.DefaultAddr, gossipAddr: "127.0.0.1:7946", dataDir: "./" + engine.DefaultDir,
		replicas: peer.DefaultReplicas, vnodes: peer.DefaultVNodes, sync: true, profile: string(compaction.Balanced),
		maxValueSize: httpd.DefaultMaxValueSize, rowCacheSize: engine.DefaultRowCacheSize, rowCacheWarm: true,
		requestTimeout: peer.DefaultRequestTimeout, tombstoneGrace: peer.DefaultTombstoneGrace,
		transferRate: peer.DefaultTransferRate, antiEntropyRate: peer.DefaultAntiEntropyRate,
		antiEntropyInterval: peer.DefaultAntiEntropyInterval,
		paxosHorizon:        peer.DefaultPaxosHorizon,
		maxClockOffset:      peer.DefaultMaxClockOffset,
		pprof:               true, logLevel: "info", shutdownTimeout: 30 * time.Second,
		clusterName: keyring.DefaultClusterName,
		limits:      defaultLimitFlags(),
	}
}

func (c *serveConfig) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.httpAddr, "http-addr", c.httpAddr, "client and internode HTTP address (also NODE_ADDRESS, or NODE_ADDRESS in .env)")
	fs.StringVar(&c.gossipAddr, "gossip-addr", c.gossipAddr, "memberlist gossip address, UDP and TCP (port 0 picks a free one)")
	fs.StringVar(&c.join, "join", c.join, "comma-separated gossip addresses of members to join, HOST:PORT, HOST a name (every address behind it is tried, e.g. a headless Service) or an IP; retried with backoff until one answers")
	fs.StringVar(&c.advertiseHTTPAddr, "advertise-http-addr", c.advertiseHTTPAddr, "HOST[:PORT] peers call this node's HTTP at (default: --http-addr, or this host's first private IP when bound to 0.0.0.0 or ::); a name stays a name, resolved by peers")
	fs.StringVar(&c.advertiseGossipAddr, "advertise-gossip-addr", c.advertiseGossipAddr, "HOST[:PORT] peers gossip with this node at (default: --gossip-addr, or this host's first private IP when bound to 0.0.0.0 or ::); a name is resolved at start")
	fs.IntVar(&c.bootstrapExpect, "bootstrap-expect", c.bootstrapExpect, "with --join, a brand-new node that finds no ring waits for this many members, then they form the initial ring together (0: the brand-new node of the lowest id among those that met founds it)")
	fs.DurationVar(&c.joinTimeout, "join-timeout", c.joinTimeout, "longest serve tries to join (--join, or the stored members) before it exits with an error (0: forever)")
	fs.StringVar(&c.dataDir, "data-dir", c.dataDir, "Pebble data directory")
	fs.StringVar(&c.nodeID, "node-id", c.nodeID, "stable node identity (default: the one stored in --data-dir, else HOST-PORT)")
	fs.IntVar(&c.replicas, "replicas", c.replicas, fmt.Sprintf("replicas per key N, 1 to %d, capped at the nodes in the ring", peer.MaxReplicas))
	fs.IntVar(&c.vnodes, "vnodes", c.vnodes, fmt.Sprintf("ring tokens per node, 1 to %d", peer.MaxVNodes))
	fs.BoolVar(&c.sync, "sync", c.sync, "fsync the WAL before acknowledging a write (concurrent writes share fsyncs)")
	fs.StringVar(&c.profile, "compaction-profile", c.profile, "compaction profile: balanced, write-heavy or read-heavy")
	fs.Var(sizeFlag{&c.memtableSize}, "memtable-size", "override the profile's memtable size (e.g. 64MiB)")
	fs.IntVar(&c.l0Compaction, "l0-compaction-threshold", 0, "override the profile's L0 sublevel count that starts a compaction")
	fs.IntVar(&c.l0Stop, "l0-stop-writes-threshold", 0, "override the profile's L0 sublevel count that stops writes")
	fs.Var(sizeFlag{&c.lbaseMaxBytes}, "lbase-max-bytes", "override the profile's size of the LSM's base level")
	fs.Var(sizeFlag{&c.targetFileSize}, "target-file-size", "override the profile's SSTable target size at L0 and Lbase")
	fs.IntVar(&c.maxCompactions, "max-concurrent-compactions", 0, "override the profile's most compactions run at once")
	fs.Var(sizeFlag{&c.blockCacheSize}, "block-cache-size", "override the profile's block cache size")
	fs.IntVar(&c.bloom, "bloom-bits-per-key", 0, "override the profile's bloom filter bits per key (0 disables)")
	fs.Var(sizeFlag{&c.maxValueSize}, "max-value-size", "largest value accepted")
	fs.Var(sizeFlag{&c.rowCacheSize}, "row-cache-size", "memory for the newest records of hot keys, whose reads then skip the LSM (0 disables)")
	fs.BoolVar(&c.rowCacheWarm, "row-cache-warm", c.rowCacheWarm, "at start, and after a range move empties it, fill the row cache from the store in the background (up to 90% of it; 75% at 32MiB or less)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", c.requestTimeout, "longest a coordinator waits for replicas (and a scan may take)")
	fs.DurationVar(&c.tombstoneGrace, "tombstone-grace", c.tombstoneGrace, "age after which a delete's tombstone (or an expired TTL record) may be dropped; in a cluster, only once anti-entropy shows every replica holds it")
	fs.Var(sizeFlag{&c.transferRate}, "transfer-rate", "bytes per second this node sends, all streams together, to nodes pulling ranges from it (moves and anti-entropy)")
	fs.DurationVar(&c.antiEntropyInterval, "anti-entropy-interval", c.antiEntropyInterval, "how often this node compares Merkle trees of its ranges with their other owners and pulls what differs")
	fs.DurationVar(&c.paxosHorizon, "paxos-horizon", c.paxosHorizon, "age after which a key's settled compare-and-set state is deleted; older ballots are then refused (0 keeps every state)")
	fs.Var(sizeFlag{&c.antiEntropyRate}, "anti-entropy-rate", "bytes per second anti-entropy may read from other nodes")
	fs.DurationVar(&c.maxClockOffset, "max-clock-offset", c.maxClockOffset, "the most any two nodes' clocks may differ: replicas refuse writes stamped further ahead of their clock, a node off from a majority of its peers by more coordinates no writes, and within it sequential writes never reorder")
	fs.BoolVar(&c.drain, "drain", c.drain, "on SIGTERM or SIGINT, leave the cluster (hand this node's ranges over) before exiting; a second signal stops waiting")
	fs.StringVar(&c.profileOnStall, "profile-on-stall", c.profileOnStall, "directory where each write stall leaves CPU and goroutine profiles and the LSM state")
	fs.StringVar(&c.clusterSecret, "cluster-secret", c.clusterSecret, "shared secret: required on internode calls, and encrypts gossip")
	fs.StringVar(&c.clusterSecretFile, "cluster-secret-file", c.clusterSecretFile, "file of cluster secrets, one a line, the primary first (# comments); re-read when it changes, for key rotation; prefer it, or RINGKV_CLUSTER_SECRET, to --cluster-secret, which ps shows")
	fs.StringVar(&c.clusterName, "cluster-name", c.clusterName, "the cluster's name, which salts the keys derived from its secret: the same on every node")
	fs.StringVar(&c.authFile, "auth-file", c.authFile, "client credentials, one a line: ROLE sha256:HEX [PREFIX] or ROLE cn:NAME [PREFIX], roles read, readwrite, admin, metrics; reloaded when it changes (none: every request is served, as on loopback)")
	fs.BoolVar(&c.metricsOpen, "metrics-open", c.metricsOpen, "with --auth-file, serve /metrics without a credential (else it needs the metrics or admin role)")
	fs.BoolVar(&c.statusOpen, "status-open", c.statusOpen, "with --auth-file, serve the status page / (and /v1/overview and /v1/lsm, which it reads) without a credential (else / and /v1/overview need admin)")
	fs.BoolVar(&c.kvstoreAddNodeGet, "kvstore-add-node-get", c.kvstoreAddNodeGet, "accept go-kvstore's GET /add-node (a web page can fire a GET; the default is POST only)")
	fs.BoolVar(&c.insecure, "insecure", c.insecure, "serve a non-loopback --http-addr without TLS or --auth-file, on purpose")
	fs.BoolVar(&c.pprof, "pprof", c.pprof, "serve /debug/pprof/")
	fs.IntVar(&c.mutexProfileFraction, "mutex-profile-fraction", c.mutexProfileFraction, "sample 1 in N mutex contention events for /debug/pprof/mutex (0: off)")
	fs.DurationVar(&c.blockProfileRate, "block-profile-rate", c.blockProfileRate, "sample goroutine blocking about once per this much time blocked, for /debug/pprof/block (0: off)")
	fs.StringVar(&c.logLevel, "log-level", c.logLevel, "log level: debug, info, warn or error")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", c.shutdownTimeout, "longest a SIGTERM waits for requests in flight, and then (up to 10s) for the memtable flush and the engine's close")
	fs.StringVar(&c.tlsCertFile, "tls-cert-file", c.tlsCertFile, "PEM certificate (chain) the client port serves HTTPS with; reloaded when the file changes")
	fs.StringVar(&c.tlsKeyFile, "tls-key-file", c.tlsKeyFile, "PEM private key of --tls-cert-file")
	fs.StringVar(&c.peerCertFile, "peer-tls-cert-file", c.peerCertFile, "PEM certificate of this node for internode calls, naming its node id as CN or DNS name (default: --tls-cert-file)")
	fs.StringVar(&c.peerKeyFile, "peer-tls-key-file", c.peerKeyFile, "PEM private key of --peer-tls-cert-file (default: --tls-key-file)")
	fs.StringVar(&c.peerCAFile, "peer-ca-file", c.peerCAFile, "PEM cluster CA: internode calls are mutual TLS, with certificates of this CA on both sides")
	fs.StringVar(&c.clientCAFile, "client-ca-file", c.clientCAFile, "PEM CA of client certificates: the client port asks for one (optional), and a certificate of this CA names its holder to --auth-file's cn: lines; reloaded when it changes")
	fs.StringVar(&c.peerAddr, "peer-addr", c.peerAddr, "a separate listener for internode calls (HOST:PORT), e.g. on a private interface; the client port then answers /internal/ with 404")
	fs.Var(freeSpaceFlag{&c.minFreeSpace}, "min-free-space", fmt.Sprintf("free space of --data-dir's filesystem below which writes are refused (507) so that flushes and compactions keep room: a size (512MiB), a share of the filesystem (2%%), or 0 for none; the default is the smaller of %s and %d%%", compaction.FormatSize(engine.DefaultMinFreeBytes), engine.DefaultMinFreePercent))
	c.limits.addFlags(fs)
}

// validate checks what the flag types cannot. Errors name the flag.
func (c *serveConfig) validate() error {
	if err := c.validateAddrs(); err != nil {
		return err
	}
	switch {
	case c.dataDir == "":
		return errors.New("--data-dir must not be empty")
	case c.maxValueSize < 1 || c.maxValueSize > sstable.MaxValueSize:
		return fmt.Errorf("--max-value-size (%s) must be 1B to %s", compaction.FormatSize(c.maxValueSize), compaction.FormatSize(sstable.MaxValueSize))
	// peer's off values are -1 (-1ns as a duration): a negative flag
	// must not slip through Validate as "off". The flags that can turn a
	// thing off do it with 0.
	case c.tombstoneGrace < 0:
		return fmt.Errorf("--tombstone-grace (%s) must not be negative", c.tombstoneGrace)
	case c.paxosHorizon != 0 && c.paxosHorizon < time.Minute:
		return fmt.Errorf("--paxos-horizon (%s) must be 0 (off) or at least 1m, far longer than any request", c.paxosHorizon)
	case c.antiEntropyInterval < 0:
		return fmt.Errorf("--anti-entropy-interval (%s) must be positive", c.antiEntropyInterval)
	case c.maxClockOffset < time.Millisecond || c.maxClockOffset > time.Minute:
		return fmt.Errorf("--max-clock-offset (%s) must be 1ms to 1m", c.maxClockOffset)
	case c.rowCacheSize != 0 && c.rowCacheSize < engine.MinRowCacheSize:
		return fmt.Errorf("--row-cache-size (%s) must be 0 (off) or at least 32MiB", compaction.FormatSize(c.rowCacheSize))
	case c.shutdownTimeout <= 0:
		return fmt.Errorf("--shutdown-timeout (%s) must be positive", c.shutdownTimeout)
	case c.mutexProfileFraction < 0:
		return fmt.Errorf("--mutex-profile-fraction (%d) must not be negative", c.mutexProfileFraction)
	case c.blockProfileRate < 0:
		return fmt.Errorf("--block-profile-rate (%s) must not be negative", c.blockProfileRate)
	case c.bootstrapExpect < 0:
		return fmt.Errorf("--bootstrap-expect (%d) must not be negative", c.bootstrapExpect)
	case c.bootstrapExpect > 0 && c.join == "":
		return fmt.Errorf("--bootstrap-expect %d needs --join: the members to wait for", c.bootstrapExpect)
	case c.joinTimeout < 0:
		return fmt.Errorf("--join-timeout (%s) must not be negative", c.joinTimeout)
	}
	if c.clusterName == "" {
		return errors.New("--cluster-name must not be empty")
	}
	if err := c.limits.validate(); err != nil {
		return err
	}
	if strings.ContainsAny(c.nodeID, " \t\r\n") {
		return fmt.Errorf("--node-id %q must not contain spaces", c.nodeID)
	}
	pc := c.peerConfig()
	if err := pc.Validate(); err != nil {
		return fieldFlagError(err)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		return err
	}
	if c.profileOnStall != "" {
		if err := os.MkdirAll(c.profileOnStall, 0o755); err != nil {
			return fmt.Errorf("--profile-on-stall: %v", err)
		}
	}
	return c.validateSecretFile()
}

// validateAddrs checks the addresses, and the TLS files that go with
// them.
func (c *serveConfig) validateAddrs() error {
	if err := checkHostPort("http-addr", c.httpAddr); err != nil {
		return err
	}
	if err := checkHostPort("gossip-addr", c.gossipAddr); err != nil {
		return err
	}
	if c.peerAddr != "" {
		if err := checkHostPort("peer-addr", c.peerAddr); err != nil {
			return err
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	for _, a := range c.joinAddrs() {
		if err := checkHostPort("join", a); err != nil {
			return err
		}
	}
	return c.validateAdvertise()
}

// validateSecretFile reads --cluster-secret-file, which excludes
// --cluster-secret, and sets clusterSecret to its primary secret.
func (c *serveConfig) validateSecretFile() error {
	if c.clusterSecretFile == "" {
		return nil
	}
	if c.clusterSecret != "" {
		return errors.New("--cluster-secret and --cluster-secret-file: give one")
	}
	// One secret a line, the primary first (secretfile.go); the
	// keyring is built from the file itself, and it is re-read when
	// it changes.
	secs, err := readSecretFile(c.clusterSecretFile)
	if err != nil {
		return err
	}
	c.clusterSecret = string(secs[0])
	return nil
}

// secureStart is httpd.CheckExposure in flags: a node serving beyond
// loopback needs --tls-cert-file and --auth-file, or --insecure to serve
// without them on purpose.
func secureStart(httpAddr string, authOn, tlsOn, insecure bool) error {
	if insecure {
		return nil
	}
	var e *httpd.ExposedError
	err := httpd.CheckExposure(httpAddr, authOn, tlsOn)
	if err == nil || !errors.As(err, &e) {
		if err != nil {
			return fmt.Errorf("--http-addr %q: want HOST:PORT", httpAddr)
		}
		return nil
	}
	var missing []string
	if e.NoTLS {
		missing = append(missing, "--tls-cert-file and --tls-key-file")
	}
	if e.NoAuth {
		missing = append(missing, "--auth-file")
	}
	return fmt.Errorf("--http-addr %s is not loopback: set %s, or --insecure to serve it without them on purpose", httpAddr, strings.Join(missing, " and "))
}

// validateTLS checks that the TLS files come in pairs, and that a CA has
// a certificate to present.
func (c *serveConfig) validateTLS() error {
	switch {
	case c.tlsCertFile != "" && c.tlsKeyFile == "":
		return errors.New("--tls-cert-file needs --tls-key-file")
	case c.tlsKeyFile != "" && c.tlsCertFile == "":
		return errors.New("--tls-key-file needs --tls-cert-file")
	case c.peerCertFile != "" && c.peerKeyFile == "":
		return errors.New("--peer-tls-cert-file needs --peer-tls-key-file")
	case c.peerKeyFile != "" && c.peerCertFile == "":
		return errors.New("--peer-tls-key-file needs --peer-tls-cert-file")
	case c.peerCAFile != "" && c.peerCertFile == "" && c.tlsCertFile == "":
		return errors.New("--peer-ca-file needs the node's certificate: --peer-tls-cert-file or --tls-cert-file")
	case c.clientCAFile != "" && c.tlsCertFile == "":
		return errors.New("--client-ca-file needs --tls-cert-file")
	}
	return nil
}

// loadTLS loads the certificate files; errors name the flags.
func (c *serveConfig) loadTLS(lg *slog.Logger) (*httpd.NodeTLS, error) {
	nt, err := httpd.LoadNodeTLS(httpd.TLSFiles{
		CertFile: c.tlsCertFile, KeyFile: c.tlsKeyFile,
		PeerCertFile: c.peerCertFile, PeerKeyFile: c.peerKeyFile, PeerCAFile: c.peerCAFile,
		ClientCAFile: c.clientCAFile,
	}, c.peerAddr != "", lg)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file, --peer-tls-cert-file, --peer-ca-file or --client-ca-file: %v", err)
	}
	return nt, nil
}

func checkHostPort(name, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: want HOST:PORT", name, addr)
	}
	_ = host
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--%s %q: port must be 0 to 65535", name, addr)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// joinAddrs splits --join.
func (c *serveConfig) joinAddrs() []string { return splitAddrs(c.join) }

// tuning resolves the profile and the override flags that were given.
func (c *serveConfig) tuning(given map[string]bool) (compaction.Tuning, error) {
	p, err := compaction.ParseProfile(c.profile)
	if err != nil {
		return compaction.Tuning{}, fieldFlagError(err)
	}
	var o compaction.Overrides
	if given["memtable-size"] {
		o.MemTableSize = &c.memtableSize
	}
	if given["l0-compaction-threshold"] {
		o.L0CompactionThreshold = &c.l0Compaction
	}
	if given["l0-stop-writes-threshold"] {
		o.L0StopWritesThreshold = &c.l0Stop
	}
	if given["lbase-max-bytes"] {
		o.LBaseMaxBytes = &c.lbaseMaxBytes
	}
	if given["target-file-size"] {
		o.TargetFileSize = &c.targetFileSize
	}
	if given["max-concurrent-compactions"] {
		o.MaxConcurrentCompactions = &c.maxCompactions
	}
	if given["block-cache-size"] {
		o.BlockCacheSize = &c.blockCacheSize
	}
	if given["bloom-bits-per-key"] {
		o.BloomBitsPerKey = &c.bloom
	}
	t, err := compaction.Resolve(p, o)
	return t, fieldFlagError(err)
}

// parseServe parses serve's command line and environment into a config.
// It returns flag.ErrHelp for -h.
func parseServe(args []string, env *environ, stdout io.Writer) (serveConfig, compaction.Tuning, error) {
	c := defaultServeConfig()
	fs := flag.NewFlagSet("ringkv serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.addFlags(fs)
	// The flag package calls Usage on every parse error too: a bad flag
	// gets its one line on stderr, and only -h the usage.
	fs.Usage = func() {}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, "usage: ringkv serve [flags]\n\nEvery flag can also be set as RINGKV_<FLAG> (dashes as underscores).", fs)
		return c, compaction.Tuning{}, err
	}
	if err != nil {
		return c, compaction.Tuning{}, err
	}
	if len(pos) > 0 {
		return c, compaction.Tuning{}, fmt.Errorf("unexpected argument %q", pos[0])
	}
	if env.err != nil {
		return c, compaction.Tuning{}, env.err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	c.secretOnCmdline = explicit["cluster-secret"]
	// go-kvstore compatibility: NODE_ADDRESS names the HTTP address when
	// neither the flag nor RINGKV_HTTP_ADDR does.
	if !explicit["http-addr"] {
		if _, _, ok := env.lookup(envName("http-addr")); !ok {
			if v, src, ok := env.lookup("NODE_ADDRESS"); ok {
				addr := normalizeNodeAddress(v)
				if err := checkHostPort("http-addr", addr); err != nil {
					return c, compaction.Tuning{}, fmt.Errorf("%v (from %s)", err, src)
				}
				fs.Set("http-addr", addr)
			}
		}
	}
	if err := applyEnv(fs, env); err != nil {
		return c, compaction.Tuning{}, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := c.validate(); err != nil {
		return c, compaction.Tuning{}, err
	}
	t, err := c.tuning(given)
	if err != nil {
		return c, compaction.Tuning{}, err
	}
	return c, t, nil
}

// normalizeNodeAddress accepts go-kvstore's NODE_ADDRESS forms: a full URL
// ("http://localhost:8080"), HOST:PORT, or ":PORT".
func normalizeNodeAddress(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "http://")
	v = strings.TrimSuffix(v, "/")
	if strings.HasPrefix(v, ":") {
		v = "127.0.0.1" + v
	}
	return v
}

// serve runs a node until SIGTERM or SIGINT: it starts the node's parts in
// order (daemon.start), serves until a signal or a server error
// (daemon.run), then stops the parts in reverse (daemon.stop).
func serve(args []string, env *environ, stdout, stderr io.Writer) int {
	c, tuning, err := parseServe(args, env, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringkv serve: %v\n", err)
		return exitUsage
	}
	if err := secureStart(c.httpAddr, c.authFile != "", c.tlsCertFile != "", c.insecure); err != nil {
		fmt.Fprintf(stderr, "ringkv serve: %v\n", err)
		return exitUsage
	}
	level, _ := parseLevel(c.logLevel)
	lg := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if c.secretOnCmdline {
		lg.Warn("--cluster-secret is on the command line, where other users of this machine can read it (ps, /proc); use --cluster-secret-file or RINGKV_CLUSTER_SECRET")
	}
	// The sampling rates are the Go runtime's, one per process: set only
	// when asked, and put back on return (tests run nodes in-process).
	if c.mutexProfileFraction > 0 {
		prev := runtime.SetMutexProfileFraction(c.mutexProfileFraction)
		defer runtime.SetMutexProfileFraction(prev)
	}
	if c.blockProfileRate > 0 {
		runtime.SetBlockProfileRate(int(c.blockProfileRate.Nanoseconds()))
		defer runtime.SetBlockProfileRate(0)
	}

	d := &daemon{c: &c, lg: lg}
	defer d.closeAtExit()
	if err := d.start(tuning); err != nil {
		return d.fail(stderr, err)
	}
	return d.stop(d.run())
}

// daemon is a node as serve starts it, one step at a time: each step
// fills in its parts, and registers in undo what must close should a
// later step fail (on success, stop closes them in its own order).
type daemon struct {
	c  *serveConfig
	lg *slog.Logger // names the node once openEngine knows it
	// undo closes, newest first, what startup opened before it failed.
	undo []func()
	// atExit closes, newest first, what lives until serve returns,
	// whether startup failed or not: after stop, or after undo.
	atExit []func()
	// started is when the engine began to open: the startup time logged.
	started time.Time

	nodeTLS    *httpd.NodeTLS
	auth       *httpd.Auth
	ln, peerLn net.Listener // peerLn is nil without --peer-addr
	eng        *engine.Engine
	nodeID     string
	wall       func() time.Time
	secrets    *keyring.Keyring
	clocks     *peer.ClockMonitor
	clock      *memtable.Clock
	peerAddrs  *transport.PeerAddrs
	internode  *transport.Transport
	node       *peer.Node
	gossip     *membership.Gossip
	srv        *httpd.Server

	adv advertised

	stopJoining, stopHistory func()
	joined, historyDone      chan struct{}
	// joinFailed receives JoinUntil's error when --join-timeout ran out.
	joinFailed chan error
}

// startError is a startup step that failed: serve's exit code and the
// message it prints.
type startError struct {
	code int
	msg  string
}

func (e *startError) Error() string { return e.msg }

// startFailed is a startError with code and the message fmt.Sprintf makes.
func startFailed(code int, format string, args ...any) error {
	return &startError{code: code, msg: fmt.Sprintf(format, args...)}
}

// fail closes, newest first, what startup opened before it failed, prints
// err, and returns its exit code.
func (d *daemon) fail(stderr io.Writer, err error) int {
	for i := len(d.undo) - 1; i >= 0; i-- {
		d.undo[i]()
	}
	code := exitFailure
	var se *startError
	if errors.As(err, &se) {
		code = se.code
	}
	fmt.Fprintf(stderr, "ringkv serve: %v\n", err)
	return code
}

// closeAtExit runs atExit, newest first.
func (d *daemon) closeAtExit() {
	for i := len(d.atExit) - 1; i >= 0; i-- {
		d.atExit[i]()
	}
}

// start opens the node's parts, each step needing the ones before it: the
// certificate files, the auth file, then the ports (a bad flag fails fast,
// before Pebble opens); the engine; the secrets; the transport and the
// node; membership; the HTTP server. An error is a *startError.
func (d *daemon) start(tuning compaction.Tuning) error {
	for _, step := range []func() error{
		d.loadCredentials, d.listen, d.advertise,
		func() error { return d.openEngine(tuning) },
		d.loadSecrets, d.startNode, d.startMembership, d.startHTTP,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// loadCredentials loads the certificate files and the auth file; the auth
// file's watcher stops when serve returns.
func (d *daemon) loadCredentials() error {
	c, lg := d.c, d.lg
	nodeTLS, err := c.loadTLS(lg.With("component", "tls"))
	if err != nil {
		return startFailed(exitUsage, "%v", err)
	}
	d.nodeTLS = nodeTLS
	if c.authFile != "" {
		auth, err := httpd.NewAuth(httpd.AuthConfig{File: c.authFile, Logger: lg.With("component", "auth"), ClientIdentity: nodeTLS.ClientIdentity})
		if err != nil {
			return startFailed(exitUsage, "--auth-file: %v", err)
		}
		d.auth = auth
		d.atExit = append(d.atExit, func() { auth.Close() })
	}
	return nil
}

// listen opens the client port and, with --peer-addr, the internode one.
func (d *daemon) listen() error {
	c := d.c
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return startFailed(exitUsage, "cannot listen on --http-addr %s: %v", c.httpAddr, err)
	}
	d.ln = ln
	d.undo = append(d.undo, func() { ln.Close() })
	if c.peerAddr != "" {
		peerLn, err := net.Listen("tcp", c.peerAddr)
		if err != nil {
			return startFailed(exitUsage, "cannot listen on --peer-addr %s: %v", c.peerAddr, err)
		}
		d.peerLn = peerLn
		d.undo = append(d.undo, func() { peerLn.Close() })
	}
	return nil
}

// openEngine opens Pebble and resolves the node's identity from it; from
// then on the log names the node.
func (d *daemon) openEngine(tuning compaction.Tuning) error {
	d.started = time.Now()
	c, lg := d.c, d.lg
	eo := c.engineOptions(tuning)
	eo.Logger = lg.With("component", "engine")
	// Pebble cannot go on after a fatal error (the engine logged it):
	// exit, and let the supervisor restart the node, which replays its WAL.
	// d.lg is read when that happens, so the line names the node.
	eo.OnFatal = func(msg string) {
		d.lg.Error("pebble cannot continue: " + msg + "; exiting")
		os.Exit(exitFailure)
	}
	eng, err := engine.Open(eo)
	if err != nil {
		return startFailed(exitFailure, "%v", err)
	}
	d.eng = eng
	d.undo = append(d.undo, func() { eng.Close() })
	nodeID, err := peer.ResolveNodeID(eng, c.nodeID, d.ln.Addr().String())
	if errors.Is(err, peer.ErrNodeIDChanged) {
		return startFailed(exitUsage, "--node-id %v", err)
	}
	if err != nil {
		return startFailed(exitFailure, "--data-dir %s: %v", c.dataDir, err)
	}
	d.nodeID, d.lg = nodeID, lg.With("node", nodeID)
	sstable.RemoveStaleBackups(c.dataDir, d.lg)
	d.lg.Info("engine open", "dir", c.dataDir, "profile", tuning.Profile, "duration", time.Since(d.started))
	return nil
}

// loadSecrets reads the wall clock to use and the cluster's secrets; a
// --cluster-secret-file is watched until serve returns.
func (d *daemon) loadSecrets() error {
	c, lg := d.c, d.lg
	// wall is this process's wall clock: time.Now, except in a failpoints
	// build, where RINGKV_FAILPOINT_CLOCK_OFFSET offsets it (for tests).
	wall, err := failpointWall()
	if err != nil {
		return startFailed(exitUsage, "%v", err)
	}
	secrets, err := clusterSecrets(c.clusterName, c.clusterSecret, c.clusterSecretFile)
	if err != nil {
		return startFailed(exitUsage, "%v", err)
	}
	if c.clusterSecretFile != "" {
		// A change to the file reaches gossip's keyring and internode
		// signing (both read secrets) without a restart.
		stopWatch := keyring.Watch(c.clusterSecretFile, secrets, keyring.DefaultFilePoll, lg.With("component", "secrets"))
		d.atExit = append(d.atExit, stopWatch)
	}
	d.wall, d.secrets = wall, secrets
	return nil
}

// startNode starts the clocks, the internode transport and the node (the
// coordinator) on it.
func (d *daemon) startNode() error {
	c, lg, eng, nodeID, nodeTLS, wall, secrets := d.c, d.lg, d.eng, d.nodeID, d.nodeTLS, d.wall, d.secrets
	clocks := peer.NewClockMonitor(c.maxClockOffset, wall, lg.With("component", "clock"))
	clock := memtable.NewClockBound(wall, c.maxClockOffset)
	// Nodes of one cluster share --max-value-size, so a peer takes bodies
	// of 2*max-value-size+64KiB: batches of max-value-size+64KiB fit.
	// The HMAC keys of internode calls are secrets' (clusterSecrets).
	peerAddrs := transport.NewPeerAddrs()
	// The internode protocol, both ways: calls to the peers, and the
	// handler of theirs that srv mounts (for node, once it exists).
	limits := c.limits.httpd()
	internode, err := transport.New(transport.Config{
		NodeID: nodeID, Secrets: secrets, TLS: nodeTLS.Transport, PeerAddr: peerAddrs.Lookup,
		MaxBatchBytes:   int(c.maxValueSize) + 64<<10,
		RequirePeerCert: nodeTLS.MutualTLS,
		MaxScanBytes:    limits.MaxScanBytes, MaxConcurrentScans: limits.MaxConcurrentScans,
		Logger: lg.With("component", "internode"),
	})
	if err != nil {
		return startFailed(exitFailure, "%v", err)
	}
	d.internode = internode
	d.undo = append(d.undo, func() { internode.Close() })
	pc := c.peerConfig()
	pc.NodeID, pc.HTTPAddr, pc.Engine, pc.Logger = nodeID, d.adv.http, eng, lg
	pc.Now, pc.Clock, pc.Clocks, pc.Transport = wall, clock, clocks, internode
	node, err := peer.NewNode(pc)
	if err != nil {
		return startFailed(exitFailure, "%v", err)
	}
	d.node = node
	d.undo = append(d.undo, func() { node.Close() })
	internode.SetLocal(node.Local())
	d.clocks, d.clock, d.peerAddrs = clocks, clock, peerAddrs
	return nil
}

// startMembership starts gossip, which hands each new view to the
// transport and the node; refuses damaged tables no replica can repair;
// and joins --join in the background until it succeeds or serve stops.
func (d *daemon) startMembership() error {
	c, lg, eng, nodeID, secrets, adv := d.c, d.lg, d.eng, d.nodeID, d.secrets, d.adv
	wall, clock, clocks, peerAddrs, node := d.wall, d.clock, d.clocks, d.peerAddrs, d.node
	gossip, err := membership.Start(membership.Config{
		NodeID: nodeID, HTTPAddr: adv.http, BindAddr: adv.gossipBind, AdvertiseAddr: adv.gossip, Secrets: secrets,
		PeerAddr: adv.peer, Join: c.joinAddrs(), BootstrapExpect: c.bootstrapExpect,
		Replicas: c.replicas, VNodes: c.vnodes, Engine: eng, Clock: clock, OnView: func(v *peer.View) { peerAddrs.SetView(v); node.SetView(v) },
		Logger: lg.With("component", "gossip"), Now: wall, Offsets: clocks,
	})
	if errors.Is(err, peer.ErrGossipAddr) {
		return startFailed(exitUsage, "--gossip-addr: %v", err)
	}
	if err != nil {
		// The rest comes from the data: a stored member list that cannot
		// be read, or a node that has left.
		return startFailed(exitFailure, "--data-dir %s: %v", c.dataDir, err)
	}
	d.gossip = gossip
	d.undo = append(d.undo, func() { gossip.Close() })
	node.UseMembership(gossip)
	if err := peer.Repairable(eng, node.View(), c.replicas, len(c.joinAddrs()) > 0); err != nil {
		return startFailed(exitFailure, "%v", err)
	}
	eng.SetGCHorizon(node.AntiEntropy().GCHorizon) // tombstones go only once every replica has them
	d.startJoining()
	return nil
}

// startHTTP builds the metrics registry, samples it in the background for
// the status page, and builds the HTTP server (run starts it serving).
func (d *daemon) startHTTP() error {
	c, lg, eng, nodeID, peerLn, secrets := d.c, d.lg, d.eng, d.nodeID, d.peerLn, d.secrets
	nodeTLS, auth, internode, node := d.nodeTLS, d.auth, d.internode, d.node
	reg := prometheus.NewRegistry()
	reg.MustRegister(eng.Collector(), node.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The status page's sparklines: a sample of the registry a second.
	history := httpd.NewHistory(reg, 0)
	historyCtx, stopHistory := context.WithCancel(context.Background())
	historyDone := make(chan struct{})
	go func() { defer close(historyDone); history.Run(historyCtx) }()
	d.stopHistory, d.historyDone = stopHistory, historyDone
	d.undo = append(d.undo, func() { stopHistory(); <-historyDone })
	build := currentBuild()
	srv, err := httpd.New(httpd.Config{
		Addr:         d.adv.http,
		MaxValueSize: int(c.maxValueSize),
		Pprof:        c.pprof,
		Registry:     reg,
		Build:        build.metric(),
		Logger:       lg.With("component", "httpd"),
		NodeID:       nodeID,
		Secrets:      secrets,
		Internode:    internode,
		TLS:          nodeTLS.Client,
		PeerTLS:      nodeTLS.Peer,
		SeparatePeer: peerLn != nil,
		Backup:       sstable.BackupStream(eng, c.dataDir),

		Auth:              auth,
		MetricsOpen:       c.metricsOpen,
		StatusOpen:        c.statusOpen,
		KVStoreAddNodeGet: c.kvstoreAddNodeGet,
		JoinTLS:           nodeTLS.Transport,
		Limits:            c.limits.httpd(),
		Status:            httpd.StatusConfig{Version: build.String(), Peers: internode, History: history},
	}, node, readyOps{node, d.gossip})
	if err != nil {
		return startFailed(exitUsage, "%v", err)
	}
	d.srv = srv
	return nil
}

// run serves the ports until SIGTERM or SIGINT, or until a server stops;
// with --drain, a signal first hands the node's ranges over (drain). It
// returns the exit code so far.
func (d *daemon) run() int {
	c, lg, srv, ln, peerLn, nodeTLS, gossip := d.c, d.lg, d.srv, d.ln, d.peerLn, d.nodeTLS, d.gossip
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	// Stopped only when serve returns: until then a signal comes here,
	// rather than killing the process in the middle of stop.
	d.atExit = append(d.atExit, func() { signal.Stop(sigs) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if peerLn != nil {
		go func() { served <- srv.ServePeer(peerLn) }()
	}
	lg.Info("serving", "http_addr", ln.Addr().String(), "peer_addr", peerLnAddr(peerLn), "tls", nodeTLS.Client != nil, "mutual_tls", nodeTLS.MutualTLS, "gossip_addr", gossip.GossipAddr(), "sync", c.sync, "startup", time.Since(d.started))
	// The listeners are open and served: connections are answered.
	notifyReady(lg, "serving on "+ln.Addr().String())

	code := exitOK
	select {
	case sig := <-sigs:
		notifyStopping(lg, "stopping on "+sig.String())
		if c.drain {
			code = d.drain(sig, sigs)
		}
		lg.Info("shutting down", "signal", sig.String())
	case err := <-served:
		notifyStopping(lg, "http server stopped")
		lg.Error("http server stopped", "err", err)
		code = exitFailure
	case err := <-d.joinFailed:
		lg.Error(fmt.Sprintf("exiting: --join-timeout %s ran out: %v", c.joinTimeout, err))
		code = exitFailure
	}
	return code
}

// drain hands the node's ranges over while it still serves, after sig; a
// second signal on sigs stops waiting (the node then stays out of the
// ring, leaving). It returns exitFailure if the drain stopped short.
func (d *daemon) drain(sig os.Signal, sigs <-chan os.Signal) int {
	lg, node := d.lg, d.node
	lg.Info("draining: handing this node's ranges over before exiting", "signal", sig.String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	code := exitOK
	switch err := node.Rebalancer().Leave(ctx); {
	case errors.Is(err, peer.ErrOnlyMember):
		lg.Info("nothing to hand over: this node is the only member")
	case err != nil:
		lg.Error("drain stopped before every range was handed over", "err", err)
		code = exitFailure
	}
	cancel()
	return code
}

// stop stops the node's parts in reverse order of start, logging how long
// each step took. It returns code, or exitFailure if a step failed.
func (d *daemon) stop(code int) int {
	c, lg, srv, gossip, node, internode, eng := d.c, d.lg, d.srv, d.gossip, d.node, d.internode, d.eng
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	if err := srv.Shutdown(ctx); err != nil {
		lg.Error("http shutdown", "err", err)
		code = exitFailure
	}
	cancel()
	d.stopHistory()
	<-d.historyDone
	lg.Info("http stopped", "duration", time.Since(t0))
	t0 = time.Now()
	d.stopJoining()
	<-d.joined
	if err := gossip.Close(); err != nil {
		lg.Warn("gossip leave", "err", err)
	}
	node.Close() // waits for replica writes in flight
	internode.Close()
	lg.Info("cluster stopped", "duration", time.Since(t0))
	t0 = time.Now()
	closed := func() int {
		ec := closeEngine(lg, eng)
		lg.Info("engine closed", "duration", time.Since(t0))
		return ec
	}
	if stopEngine(lg, min(c.shutdownTimeout, maxEngineStop), closed) != exitOK {
		code = exitFailure
	}
	return code
}

// stopEngine runs stop, the engine's flush and close, and waits for it at
// most bound; past it, it returns exitFailure, leaving stop to the
// process's exit. A flush that keeps failing (an output file that cannot
// be created: the data directory gone, an I/O error) is retried by Pebble
// at once and without end, and Close waits for it: unbounded, SIGTERM
// would leave the process spinning. The WAL holds every acknowledged
// write.
func stopEngine(lg *slog.Logger, bound time.Duration, stop func() int) int {
	done := make(chan int, 1)
	go func() { done <- stop() }()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case code := <-done:
		return code
	case <-timer.C:
		lg.Error(fmt.Sprintf("the memtable flush and the engine's close did not end within %s: exiting without them; the WAL holds every acknowledged write", bound))
		return exitFailure
	}
}

// maxEngineStop bounds the wait for the engine's flush and close at
// shutdown (or --shutdown-timeout, if shorter), within the margins the
// README gives stop timeouts beyond --shutdown-timeout (docker stop -t 45,
// systemd 60s). A memtable not flushed in time is replayed from the WAL
// at the next start.
const maxEngineStop = 10 * time.Second

// closeEngine flushes the memtable, so a restart replays no WAL, and
// closes eng; it returns exitFailure if either failed.
func closeEngine(lg *slog.Logger, eng *engine.Engine) int {
	code := exitOK
	switch err := eng.Flush(); {
	case errors.Is(err, engine.ErrDiskFull):
		// A flush would find no room; the WAL holds every write.
		lg.Warn("memtable not flushed: the disk is full; the WAL holds every acknowledged write", "err", err)
	case err != nil:
		lg.Error("flush", "err", err)
		code = exitFailure
	}
	if err := eng.Close(); err != nil {
		lg.Error("close engine", "err", err)
		code = exitFailure
	}
	return code
}

// engineOptions is the engine's options as the flags set them; serve
// adds the logger and what to do on a fatal error. Where a flag's 0 means
// none (--tombstone-grace, --row-cache-size), the engine gets its explicit
// off value, since its zero value is the default.
func (c *serveConfig) engineOptions(tuning compaction.Tuning) engine.Options {
	return engine.Options{
		Dir:              c.dataDir,
		Tuning:           tuning,
		GC:               compaction.GC{TombstoneGrace: zeroMeans(c.tombstoneGrace, engine.NoGrace)},
		ProfileOnStall:   c.profileOnStall,
		RowCacheSize:     zeroMeans(c.rowCacheSize, engine.Off),
		SkipRowCacheWarm: !c.rowCacheWarm,
		MinFreeSpace:     c.minFreeSpace,
		// A table that cannot be read is repaired from the other
		// replicas; alone, the node refuses to start (peer.Repairable).
		KeepDamaged: true,
	}
}

// peerConfig is peer's defaults with the flags applied; serve adds the
// node's resolved id, its store, clocks and transport. It starts from the
// defaults, rather than leaving zero what no flag sets, so that validate
// can check it before any of those exist: a flag's 0 then reaches
// Validate as 0, refused where it means nothing, or as peer's off value
// where it means none.
func (c *serveConfig) peerConfig() peer.Config {
	var pc peer.Config
	pc.EnsureDefaults()
	pc.NodeID, pc.Sync = c.nodeID, c.sync
	pc.Replicas, pc.VNodes, pc.RequestTimeout = c.replicas, c.vnodes, c.requestTimeout
	pc.TransferRate, pc.TransferDir = c.transferRate, filepath.Clean(c.dataDir)+".transfers"
	pc.AntiEntropyInterval, pc.AntiEntropyRate = c.antiEntropyInterval, c.antiEntropyRate
	pc.TombstoneGrace = zeroMeans(c.tombstoneGrace, peer.NoGrace)
	pc.PaxosHorizon = zeroMeans(c.paxosHorizon, peer.Off)
	pc.MaxHintBytes, pc.MaxHintAge = c.limits.hintBounds()
	return pc
}

// zeroMeans maps a flag's 0 to a library's explicit value for it (an off
// value), since the libraries read 0 as their default.
func zeroMeans[T int64 | time.Duration](flag, zero T) T {
	if flag == 0 {
		return zero
	}
	return flag
}

// peerLnAddr is the --peer-addr listener's address, or "" without one.
func peerLnAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
