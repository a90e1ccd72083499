package main

import (
	"bufio"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The files of deploy/systemd, which these tests check against the
// binary's real flags.
const (
	unitFile     = "../../deploy/systemd/ringkv.service"
	envFile      = "../../deploy/systemd/ringkv.env"
	sysusersFile = "../../deploy/systemd/ringkv.sysusers"
)

// systemdTool returns the path of a systemd tool, skipping the test
// without it (failing under CI=true, whose .ci/run installs systemd).
func systemdTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no %s: .ci/run installs Debian's systemd", name)
	}
	t.Skipf("no %s (apt-get install systemd; CI installs it)", name)
	return ""
}

// unitAt copies the unit to a temporary directory with ExecStart's binary
// replaced by bin, which verify needs to exist, and returns its path.
func unitAt(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const exe = "ExecStart=/usr/local/bin/ringkv "
	if !strings.Contains(string(b), "\n"+exe) {
		t.Fatalf("%s: no %q line", unitFile, exe)
	}
	p := filepath.Join(t.TempDir(), "ringkv.service")
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), exe, "ExecStart="+bin+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSystemdUnitVerifies: systemd-analyze verify finds nothing to say
// about the unit (it exits 0 on an unknown or misspelt key, but says so),
// its hardening keeps systemd's exposure score at 2.0 ("OK") or below, and
// systemd-sysusers accepts the user file that makes its User.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := systemdTool(t, "systemd-analyze")
	unit := unitAt(t, ringkvBinary(t))
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security (exposure above 2.0?): %v\n%s", err, out)
	}

	sysusers := systemdTool(t, "systemd-sysusers")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(sysusersFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(sysusers, "--root="+root, "-")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	user := unitValues(t)["User"]
	if len(user) != 1 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(user[0])+`:`).Match(passwd) {
		t.Fatalf("the unit's User=%q is not a user that %s makes:\n%s", user, sysusersFile, passwd)
	}
}

// unitValues reads the unit's [Service] section: each key's values, in
// order.
func unitValues(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			vals[k] = append(vals[k], v)
		}
	}
	return vals
}

// TestSystemdConfig: the unit and its example environment file agree
// with the binary: every RINGKV_* variable of ringkv.env, set or
// commented out, is a serve flag's and its value parses; ExecStart's
// flags parse, and its --data-dir is the unit's StateDirectory; and
// TimeoutStopSec leaves at least 30s beyond --shutdown-timeout for the
// flush and close after it.
func TestSystemdConfig(t *testing.T) {
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := &environ{vars: map[string]string{}}
	assign := regexp.MustCompile(`^#?(RINGKV_[A-Z0-9_]+)=(.*)$`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := assign.FindStringSubmatch(line); m != nil {
			env.vars[m[1]] = m[2]
		}
	}
	if len(env.vars) < 10 {
		t.Fatalf("%s: only %d RINGKV_ variables found", envFile, len(env.vars))
	}
	c := defaultServeConfig()
	fs := flag.NewFlagSet("ringkv serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.addFlags(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[envName(f.Name)] = true })
	for v := range env.vars {
		if !names[v] {
			t.Errorf("%s sets %s, which is no flag of ringkv serve", envFile, v)
		}
	}

	unit := unitValues(t)
	execStart := unit["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("ExecStart = %q", execStart)
	}
	args := strings.Fields(execStart[0])
	if len(args) < 2 || args[1] != "serve" {
		t.Fatalf("ExecStart = %q: want BINARY serve FLAGS", execStart[0])
	}
	if _, err := parseFlags(fs, args[2:]); err != nil {
		t.Fatalf("ExecStart's flags: %v", err)
	}
	if err := applyEnv(fs, env); err != nil {
		t.Fatalf("%s: %v", envFile, err)
	}
	if state := unit["StateDirectory"]; len(state) != 1 || c.dataDir != "/var/lib/"+state[0] {
		t.Errorf("--data-dir %s is not the StateDirectory %q", c.dataDir, state)
	}
	stop, err := time.ParseDuration(strings.Join(unit["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec (write it as 90s, 2m): %v", err)
	}
	if stop < c.shutdownTimeout+30*time.Second {
		t.Errorf("TimeoutStopSec=%s leaves less than 30s beyond --shutdown-timeout %s", stop, c.shutdownTimeout)
	}
	if unit["Type"][0] != "notify" {
		t.Errorf("Type=%s: the node notifies (notify.go)", unit["Type"][0])
	}
}
