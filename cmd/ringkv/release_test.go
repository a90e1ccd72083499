package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReleaseScript: deploy/release.sh builds a static, -trimpath binary
// stamped with the version it is given and the checkout's revision, and
// writes its checksum to SHA256SUMS; a version that would break -ldflags
// is refused with exit 2. (It builds the host's platform only: a cross
// build is the same command with another GOARCH.)
func TestReleaseScript(t *testing.T) {
	ringkvBinary(t) // skips under -short
	out := filepath.Join(t.TempDir(), "dist")
	script := "../../deploy/release.sh"
	cmd := exec.Command("bash", script, "v0.0.0-test")
	cmd.Env = append(os.Environ(), "OUT="+out, "PLATFORMS=linux/"+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	name := "ringkv-v0.0.0-test-linux-" + runtime.GOARCH
	bin := filepath.Join(out, name)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	sums, _ := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if want := hex.EncodeToString(sum[:]) + "  " + name + "\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}

	js, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var bi buildInfo
	if err := json.Unmarshal(js, &bi); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if bi.Version != "v0.0.0-test" {
		t.Errorf("version %q, want v0.0.0-test", bi.Version)
	}
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if want := strings.TrimSpace(string(head)); bi.Revision != want || bi.Time == "" {
			t.Errorf("revision %q at %q, want %q and its time", bi.Revision, bi.Time, want)
		}
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\tbuild\tCGO_ENABLED=0\n", "\tbuild\t-trimpath=true\n"} {
		if !strings.Contains(string(meta), want) {
			t.Errorf("go version -m lacks %q:\n%s", want, meta)
		}
	}

	cmd = exec.Command("bash", script, "v1 -X main.x=y")
	cmd.Env = append(os.Environ(), "OUT="+filepath.Join(t.TempDir(), "bad"))
	b, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(string(b), "\n") != 1 {
		t.Errorf("release.sh with a bad version: %v, %q; want exit 2 and one line", err, b)
	}
}
