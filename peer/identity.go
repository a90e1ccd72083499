package peer

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/ringkv/ringkv/engine"
)

// nodeIDMeta is the engine metadata key of the node's identity.
const nodeIDMeta = "node-id"

// ErrNodeIDChanged is matched by ResolveNodeID's error for an id that
// contradicts the one stored in the data directory.
var ErrNodeIDChanged = errors.New("a node keeps its identity")

// ResolveNodeID returns the node's identity: id if given, else the one
// stored in eng, else HOST-PORT from the host name and httpAddr's port.
// It stores the result, and refuses an id that contradicts the stored
// one (ErrNodeIDChanged): a node that changed identity would look like a
// new node to the cluster.
func ResolveNodeID(eng *engine.Engine, id, httpAddr string) (string, error) {
	stored, err := eng.GetMeta(nodeIDMeta)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return "", err
	}
	switch {
	case id != "" && stored != nil && string(stored) != id:
		return "", fmt.Errorf("%q differs from %q stored in the data directory: %w", id, stored, ErrNodeIDChanged)
	case id == "" && stored != nil:
		return string(stored), nil
	case id == "":
		host, _ := os.Hostname()
		if host == "" {
			host = "ringkv"
		}
		_, port, _ := net.SplitHostPort(httpAddr)
		id = host + "-" + port
	}
	if stored == nil {
		if err := eng.SetMeta(nodeIDMeta, []byte(id)); err != nil {
			return "", err
		}
	}
	return id, nil
}

// Repairable refuses a start on tables that could not be read when no
// other replica can give their data back: a node alone in its ring (v
// has no other member, and it joins none) or one with a single replica.
func Repairable(eng *engine.Engine, v *View, replicas int, joining bool) error {
	var bad []engine.CorruptSpan
	for _, sp := range eng.Corruption() {
		if sp.Unreadable && sp.Data {
			bad = append(bad, sp)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	cluster := joining || (v != nil && len(v.Ring.Nodes()) > 1)
	if replicas > 1 && cluster {
		return nil
	}
	sp := bad[0]
	more := ""
	if len(bad) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(bad)-1)
	}
	return fmt.Errorf("cannot open engine at %q: damaged file %s%s (%s): %s; no other replica holds its data to repair it from: restore the data dir from a backup (`ringkv check --data-dir %s` lists every damaged file)",
		eng.Dir(), sp.File, more, sp.TokenSpan(), sp.Error, eng.Dir())
}
