package main

import (
	"errors"

	"github.com/ringkv/ringkv/compaction"
)

// knobFlags names the serve flag of each compaction.Tuning field.
var knobFlags = map[string]string{
	"Profile":                  "--compaction-profile",
	"MemTableSize":             "--memtable-size",
	"L0CompactionThreshold":    "--l0-compaction-threshold",
	"L0StopWritesThreshold":    "--l0-stop-writes-threshold",
	"LBaseMaxBytes":            "--lbase-max-bytes",
	"TargetFileSize":           "--target-file-size",
	"MaxConcurrentCompactions": "--max-concurrent-compactions",
	"BlockCacheSize":           "--block-cache-size",
	"BloomBitsPerKey":          "--bloom-bits-per-key",
}

// knobFlagError rewrites a compaction.KnobError in the names of the flags
// that set the knobs; other errors pass unchanged.
func knobFlagError(err error) error {
	var ke *compaction.KnobError
	if !errors.As(err, &ke) {
		return err
	}
	return errors.New(ke.Message(func(field string) string {
		if f, ok := knobFlags[field]; ok {
			return f
		}
		return field
	}))
}
