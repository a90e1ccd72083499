package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The layout rules of DESIGN.md, checked on the module's import graph as
// `go list` reports it: non-test imports, but for fasthttp, which not even
// a test outside httpd and peer/transport needs.
const (
	module   = "github.com/ringkv/ringkv"
	fasthttp = "github.com/valyala/fasthttp"
	pebble   = "github.com/cockroachdb/pebble"
)

// goPackage is what the layout test reads of `go list -json`.
type goPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// listModule returns every package of the module with its direct imports
// and its transitive dependencies.
func listModule(t *testing.T) map[string]goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports,Deps", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]goPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list's output: %v", err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

// within reports whether the module-relative package p is one of dirs or
// below one.
func within(p string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return p == d || strings.HasPrefix(p, d+"/") })
}

// imports reports whether one of paths is lib or a package of it.
func imports(paths []string, lib string) bool {
	return slices.ContainsFunc(paths, func(p string) bool { return p == lib || strings.HasPrefix(p, lib+"/") })
}

// TestLayout: httpd is a thin front end (none of the storage layer, the
// ring, the coordinator or the internode transport among its
// dependencies); the client links none of the server; the ring is pure (nothing of ringkv); fasthttp is
// imported only by httpd and the internode transport, Pebble only by the
// storage layer.
func TestLayout(t *testing.T) {
	pkgs := listModule(t)
	for _, front := range []string{"httpd", "peer/kv", "peer/keyring", "peer/transport/connwatch"} {
		p, ok := pkgs[front]
		if !ok {
			t.Errorf("no package %s", front)
			continue
		}
		for _, d := range p.Deps {
			rel, ours := strings.CutPrefix(d, module+"/")
			if ours && (within(rel, "engine", "memtable", "sstable", "compaction", "ring") || rel == "peer" || rel == "peer/transport" || rel == "peer/membership") {
				t.Errorf("%s depends on %s", front, rel)
			}
		}
		if imports(p.Deps, pebble) {
			t.Errorf("%s depends on Pebble", front)
		}
	}
	// The public client links only its own framing and the API's leaf
	// vocabulary, never the server.
	for _, cl := range []string{"client", "client/batchwire"} {
		for _, d := range pkgs[cl].Deps {
			if rel, ours := strings.CutPrefix(d, module+"/"); ours && !within(rel, "client", "peer/kv") {
				t.Errorf("%s depends on %s", cl, rel)
			}
		}
	}
	for _, d := range pkgs["ring"].Deps {
		if strings.HasPrefix(d, module+"/") {
			t.Errorf("ring depends on %s", d)
		}
	}
	for rel, p := range pkgs {
		// bench/baseline is the yardstick ringkv is measured against, a
		// bare fasthttp server on Pebble, and none of ringkv.
		if within(rel, "bench/baseline", "bench/internal/yardstick") {
			continue
		}
		all := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		if imports(all, fasthttp) && !within(rel, "httpd", "peer/transport") {
			t.Errorf("%s or its tests import fasthttp: only httpd and peer/transport may", rel)
		}
		// peertest, the in-memory cluster of tests, keeps its engines in
		// Pebble's in-memory file system.
		if imports(p.Imports, pebble) && !within(rel, "engine", "memtable", "sstable", "compaction", "peer/peertest") {
			t.Errorf("%s imports Pebble: only the storage layer may", rel)
		}
	}
}
