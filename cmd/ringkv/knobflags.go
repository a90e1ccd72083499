package main

import "errors"

// fieldFlags names the serve flag that sets each library Config field:
// the libraries' errors name their fields (compaction.KnobError,
// peer.ConfigError, engine.OptionsError), and serve's errors its flags.
// Fields of the same name in two Configs (peer's and membership's
// Replicas) are set by the same flag.
var fieldFlags = map[string]string{
	// compaction.Tuning
	"Profile":                  "--compaction-profile",
	"MemTableSize":             "--memtable-size",
	"L0CompactionThreshold":    "--l0-compaction-threshold",
	"L0StopWritesThreshold":    "--l0-stop-writes-threshold",
	"LBaseMaxBytes":            "--lbase-max-bytes",
	"TargetFileSize":           "--target-file-size",
	"MaxConcurrentCompactions": "--max-concurrent-compactions",
	"BlockCacheSize":           "--block-cache-size",
	"BloomBitsPerKey":          "--bloom-bits-per-key",
	// peer.Config and membership.Config
	"NodeID":              "--node-id",
	"Replicas":            "--replicas",
	"VNodes":              "--vnodes",
	"RequestTimeout":      "--request-timeout",
	"TransferRate":        "--transfer-rate",
	"AntiEntropyInterval": "--anti-entropy-interval",
	"AntiEntropyRate":     "--anti-entropy-rate",
	"TombstoneGrace":      "--tombstone-grace",
	"PaxosHorizon":        "--paxos-horizon",
	"MaxHintBytes":        "--max-hint-bytes",
	"MaxHintAge":          "--max-hint-age",
	// engine.Options
	"GC.TombstoneGrace": "--tombstone-grace",
	"RowCacheSize":      "--row-cache-size",
	"MinFreeSpace":      "--min-free-space",
}

// fieldError is a library error that can say itself in the caller's
// names for the fields it mentions.
type fieldError interface {
	error
	Message(name func(field string) string) string
}

// fieldFlagError rewrites a library's field error in the names of the flags
// that set the fields; other errors pass unchanged.
func fieldFlagError(err error) error {
	var fe fieldError
	if !errors.As(err, &fe) {
		return err
	}
	return errors.New(fe.Message(func(field string) string {
		if f, ok := fieldFlags[field]; ok {
			return f
		}
		return field
	}))
}
