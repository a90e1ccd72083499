package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// The WAL tail. Pebble replays each WAL at open until its records end. In
// the newest WAL it takes a record it cannot read (a checksum mismatch, a
// short chunk) for the tail of a write torn by a crash and stops there
// without an error: that is right for a write the crash cut short (it was
// never fsynced, so never acknowledged), but bytes flipped in an fsynced
// record read the same way, and then the writes from there on are dropped.
// Pebble says nothing above Logger.Infof ("WAL ... stopped reading at
// offset ..."), so the engine looks at what follows that offset: nothing,
// zeros (preallocated space), or a chunk of another log (a recycled file,
// or the end-of-log trailer) is a clean end; anything else is logged at
// WARN with the file and offset.

// WALTail is a WAL whose replay stopped before bytes that do not read as
// records of that log.
type WALTail struct {
	File string `json:"file"`
	// Offset is where replay stopped; Size the file's size.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
}

// walStopped is the start of the format of Pebble's replay-end log line.
const walStopped = "[JOB %d] WAL %s stopped reading at offset: %s;"

// walTailOf inspects a replay-end log line's arguments and returns the
// unread tail it reports, if any.
func walTailOf(fs vfs.FS, format string, args []any) (WALTail, bool) {
	if fs == nil || !strings.HasPrefix(format, walStopped) || len(args) < 3 {
		return WALTail{}, false
	}
	off, ok := args[2].(wal.Offset)
	if !ok || off.PhysicalFile == "" {
		return WALTail{}, false
	}
	// The log's number leads its file's name: 000002.log, or
	// 000002-001.log for a segment written after a failover.
	base := filepath.Base(off.PhysicalFile)
	digits := base[:len(base)-len(strings.TrimLeft(base, "0123456789"))]
	logNum, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return WALTail{}, false
	}
	f, err := fs.Open(off.PhysicalFile)
	if err != nil {
		return WALTail{}, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= off.Physical {
		return WALTail{}, false
	}
	// Enough to see the next chunk, or that it is all zeros.
	n := min(st.Size()-off.Physical, 1<<20)
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off.Physical); err != nil && err != io.EOF {
		return WALTail{}, false
	}
	if cleanWALEnd(b, uint32(logNum)) {
		return WALTail{}, false
	}
	return WALTail{File: off.PhysicalFile, Offset: off.Physical, Size: st.Size()}, true
}

// cleanWALEnd reports whether b, the bytes after where replay of log
// logNum stopped, are a clean end: zeros, or a chunk of another log.
func cleanWALEnd(b []byte, logNum uint32) bool {
	if len(bytes.Trim(b, "\x00")) == 0 {
		return true
	}
	// A chunk: checksum (4), length (2), type (1), then for the
	// recyclable and WAL-sync formats (types 5 to 12) the log number (4).
	const recyclableHeader = 11
	if len(b) >= recyclableHeader && b[6] >= 5 && b[6] <= 12 {
		return binary.LittleEndian.Uint32(b[7:11]) != logNum
	}
	return false
}

// warnWALTail logs a WAL tail that replay did not read.
func warnWALTail(lg *slog.Logger, t WALTail) {
	lg.Warn("WAL replay stopped before the end of the newest WAL: the bytes after the offset do not read as records and were dropped; "+
		"a write cut short by a crash was never acknowledged, but damaged fsynced records lose acknowledged writes on this node (in a cluster the other replicas hold them)",
		"file", t.File, "offset", t.Offset, "size", t.Size, "unread_bytes", t.Size-t.Offset)
}

// String renders t for the check report.
func (t WALTail) String() string {
	return fmt.Sprintf("%s: replay stopped at offset %d of %d; the %d bytes after it do not read as records (a write torn by a crash, or damage: writes there are lost on this node)",
		t.File, t.Offset, t.Size, t.Size-t.Offset)
}
