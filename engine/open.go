package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// openPebble opens Pebble on e.opts.Dir and reads every table's footer and
// properties, so that a damaged file stops the start with an error naming
// it rather than a panic, or a node that serves and then fails on it.
// Pebble can panic inside Open on some damage; the panic is recovered here
// (no engine lock is held, and nothing was opened yet that must be
// closed) and returned as an error.
func (e *Engine) openPebble(po *pebble.Options) (db *pebble.DB, err error) {
	dir := e.opts.Dir
	defer func() {
		if r := recover(); r != nil {
			db = nil
			err = fmt.Errorf("cannot open engine at %q: pebble failed reading the store: %s; run `ringkv check --data-dir %s` to list damaged files", dir, firstLine(fmt.Sprint(r)), dir)
		}
	}()
	db, err = pebble.Open(dir, po)
	if err != nil {
		return nil, e.openError(err)
	}
	// Opening every table reads its footer, index and properties: what
	// Pebble's table-stats collection does in the background at start
	// anyway, done before the node serves.
	if _, err := db.SSTables(pebble.WithProperties()); err != nil {
		db.Close()
		return nil, e.openError(err)
	}
	return db, nil
}

// openError describes an error of opening the store in one line, naming
// the damaged file when Pebble says which.
func (e *Engine) openError(err error) error {
	dir := e.opts.Dir
	hint := fmt.Sprintf("; run `ringkv check --data-dir %s` to list damaged files", dir)
	if errors.Is(err, pebble.ErrDBDoesNotExist) || strings.Contains(err.Error(), "lock") {
		hint = ""
	}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		sp := spanOfCorruption(*info, e.now())
		return &openError{msg: fmt.Sprintf("cannot open engine at %q: damaged file %s (%s, %s): %s%s",
			dir, sp.File, sp.Kind, sp.TokenSpan(), oneLine(sp.Error), hint), err: err, corrupt: true}
	}
	if hint != "" {
		if m := manifestName(e.opts.FS, dir); m != "" {
			hint = fmt.Sprintf("; %s, or a file it names, may be damaged", m) + hint
		}
	}
	return &openError{msg: fmt.Sprintf("cannot open engine at %q: %s%s", dir, oneLine(err.Error()), hint), err: err, corrupt: pebble.IsCorruptionError(err)}
}

// manifestName returns the name of the store's current MANIFEST, or "".
func manifestName(fs vfs.FS, dir string) string {
	names, err := fs.List(dir)
	if err != nil {
		return ""
	}
	const marker = "marker.manifest."
	for _, n := range names {
		if i := strings.Index(n, ".MANIFEST-"); strings.HasPrefix(n, marker) && i >= 0 {
			return n[i+1:]
		}
	}
	return ""
}

// openError is Open's error: one line, Pebble's error wrapped;
// errors.Is(err, ErrCorruption) holds for a damaged store.
type openError struct {
	msg     string
	err     error
	corrupt bool
}

func (e *openError) Error() string        { return e.msg }
func (e *openError) Is(target error) bool { return e.corrupt && target == ErrCorruption }
func (e *openError) Unwrap() error        { return e.err }

// oneLine joins the lines of a Pebble error message, dropping the
// placeholder line of its corruption-detail carrier.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "<corruption detail carrier>" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// firstLine returns the first non-empty line of s.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return s
}
