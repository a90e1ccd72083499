package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/engine"
)

// TestNewBuildInfo: the version comes from -X, else the module version
// Go stamps, else "devel" with the revision; -X revision facts win over
// Go's VCS stamp; Pebble's version is its module's (or its replacement's).
func TestNewBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	stamped := func(mainVersion string, replace bool) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/ringkv/ringkv", Version: mainVersion}}
		dep := &debug.Module{Path: pebbleModule, Version: "v2.1.7"}
		if replace {
			dep.Replace = &debug.Module{Path: "../pebble", Version: "v2.1.8-fork"}
		}
		bi.Deps = []*debug.Module{{Path: "github.com/other/mod", Version: "v9.9.9"}, dep}
		bi.Settings = []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}
		return bi
	}
	for _, c := range []struct {
		name string
		ld   ldStamp
		bi   *debug.BuildInfo
		want buildInfo
	}{
		{"no build info", ldStamp{}, nil, buildInfo{Version: "devel", Pebble: "unknown"}},
		{"-X version wins", ldStamp{version: "v1.2.3"}, stamped("v0.0.0-20261201100000-0123456789ab+dirty", false),
			buildInfo{Version: "v1.2.3", Revision: rev, Time: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.99", Pebble: "v2.1.7"}},
		{"module version", ldStamp{}, stamped("v0.4.0", false),
			buildInfo{Version: "v0.4.0", Revision: rev, Time: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.99", Pebble: "v2.1.7"}},
		{"devel with revision", ldStamp{}, stamped("(devel)", true),
			buildInfo{Version: "devel-0123456789ab", Revision: rev, Time: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.99", Pebble: "v2.1.8-fork"}},
		{"-X revision wins", ldStamp{version: "v2.0.0", revision: "feedface", time: "2026-12-02T00:00:00Z"}, stamped("(devel)", false),
			buildInfo{Version: "v2.0.0", Revision: "feedface", Time: "2026-12-02T00:00:00Z", GoVersion: "go1.99", Pebble: "v2.1.7"}},
	} {
		got := newBuildInfo(c.ld, c.bi)
		c.want.PebbleFormat, c.want.Platform = engine.FormatMajorVersion, got.Platform
		if c.want.GoVersion == "" {
			c.want.GoVersion = got.GoVersion // runtime.Version()
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

// TestVersionCommand: 'ringkv version' prints every fact, --json the same
// as an object; anything else is a usage error.
func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("version: exit %d %s", code, errb.String())
	}
	for _, want := range []string{"ringkv ", "revision:", "time:", "go:", "pebble:", "format major version"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"version", "--json"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("version --json: exit %d %s", code, errb.String())
	}
	var b buildInfo
	if err := json.Unmarshal(out.Bytes(), &b); err != nil || b != currentBuild() {
		t.Fatalf("version --json = %s (%v), want %+v", out.String(), err, currentBuild())
	}
	for _, args := range [][]string{{"version", "extra"}, {"version", "--jsn"}} {
		errb.Reset()
		if code := run(args, nil, &out, &errb); code != exitUsage || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line", args, code, errb.String())
		}
	}
}

// TestVersionStamped: a binary built as the release recipe builds it
// (-ldflags -X) reports the stamped version and revision, in 'ringkv
// version --json' and in ringkv_build_info on /metrics.
func TestVersionStamped(t *testing.T) {
	ringkvBinary(t) // skips under -short
	bin := filepath.Join(t.TempDir(), "ringkv")
	ld := "-X main.version=v9.8.7 -X main.revision=feedfacecafe -X main.revisionTime=2026-12-02T00:00:00Z -X main.modified=true"
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var b buildInfo
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b.Version != "v9.8.7" || b.Revision != "feedfacecafe" || b.Time != "2026-12-02T00:00:00Z" || !b.Modified || b.Pebble == "unknown" {
		t.Fatalf("version --json = %+v", b)
	}
	p := startProcIn(t, "", bin, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t))
	p.waitHealthy()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `ringkv_build_info{goversion="` + b.GoVersion + `",revision="feedfacecafe",version="v9.8.7"} 1`
	if !strings.Contains(string(body), want+"\n") {
		t.Fatalf("/metrics lacks %s", want)
	}
}
