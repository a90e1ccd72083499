package peer

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/engine"
)

// TestResolveNodeID: an id given is stored and kept; none given reads the
// stored one, or derives HOST-PORT and stores it; an id that contradicts
// the stored one is refused.
func TestResolveNodeID(t *testing.T) {
	open := func() *engine.Engine {
		e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	e := open()
	if id, err := ResolveNodeID(e, "n1", "127.0.0.1:8080"); err != nil || id != "n1" {
		t.Fatalf("a given id: %q, %v", id, err)
	}
	if id, err := ResolveNodeID(e, "", "127.0.0.1:9090"); err != nil || id != "n1" {
		t.Fatalf("none given, n1 stored: %q, %v", id, err)
	}
	if id, err := ResolveNodeID(e, "n1", "127.0.0.1:9090"); err != nil || id != "n1" {
		t.Fatalf("the stored id given again: %q, %v", id, err)
	}
	if _, err := ResolveNodeID(e, "n2", "127.0.0.1:8080"); !errors.Is(err, ErrNodeIDChanged) || !strings.Contains(err.Error(), `"n1"`) {
		t.Fatalf("a changed id: %v, want ErrNodeIDChanged naming the stored id", err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "ringkv"
	}
	e2 := open()
	if id, err := ResolveNodeID(e2, "", "127.0.0.1:7070"); err != nil || id != host+"-7070" {
		t.Fatalf("derived: %q, %v; want %q", id, err, host+"-7070")
	}
	if id, err := ResolveNodeID(e2, "", "127.0.0.1:1"); err != nil || id != host+"-7070" {
		t.Fatalf("the derived id is not kept: %q, %v", id, err)
	}
}
