package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionHasEveryFlag: each shell's script names every command,
// every cluster and bench subcommand, and every flag of the commands'
// own flag sets (serve's built here independently of the command).
func TestCompletionHasEveryFlag(t *testing.T) {
	t.Chdir(t.TempDir())
	serveFlags := flag.NewFlagSet("serve", flag.ContinueOnError)
	c := defaultServeConfig()
	c.addFlags(serveFlags)
	var want []string
	serveFlags.VisitAll(func(f *flag.Flag) { want = append(want, "--"+f.Name, "-l "+f.Name) })
	for _, cmd := range commands() {
		want = append(want, cmd.name)
	}
	for _, cmd := range clusterCommands() {
		want = append(want, cmd.name)
	}
	sc := scanConfig{}
	scanFlags(newEnviron(), &sc).VisitAll(func(f *flag.Flag) { want = append(want, "--"+f.Name) })
	want = append(want, "compaction", "--writes", "--profiles", "--nodes", "--wait", "--data-dir", "--cacert")
	for _, sh := range completionShells() {
		out, errs, code := cli(t, "", "completion", sh)
		if code != exitOK || errs != "" {
			t.Fatalf("completion %s: exit %d %q", sh, code, errs)
		}
		for _, w := range want {
			if strings.HasPrefix(w, "-l ") != (sh == "fish") && strings.HasPrefix(w, "-") {
				continue // fish names long flags -l NAME; the others --NAME
			}
			if !strings.Contains(out, w) {
				t.Errorf("completion %s lacks %q", sh, w)
			}
		}
	}
	if _, errs, code := cli(t, "", "completion", "tcsh"); code != exitUsage || !strings.Contains(errs, "bash, zsh, fish") {
		t.Errorf("completion tcsh: exit %d %q", code, errs)
	}
}

// TestCompletionBash runs the bash script's function on command lines
// being typed.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	out, _, _ := cli(t, "", "completion", "bash")
	script := filepath.Join(dir, "ringkv.bash")
	if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "backups"), 0o755)
	for line, want := range map[string]string{
		"ringkv ser":                      "serve",
		"ringkv serve --data-d":           "--data-dir",
		"ringkv cluster ":                 "status ring remove leave",
		"ringkv cluster status --ti":      "--timeout",
		"ringkv bench compaction --wri":   "--writes",
		"ringkv bench --wor":              "--workload",
		"ringkv scan --after-":            "--after-base64",
		"ringkv backup --to back":         "backups",
		"ringkv completion z":             "zsh",
		"ringkv get k --addr 1.2.3.4 --c": "--cacert --cert --consistency",
	} {
		words := strings.Split(line, " ")
		args := append([]string{"--norc", "-c", `source "$0"; COMP_WORDS=("${@}"); COMP_CWORD=$(( $# - 1 )); _ringkv; echo "${COMPREPLY[*]}"`, script}, words...)
		cmd := exec.Command(bash, args...)
		cmd.Stderr = io.Discard
		got, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%q<TAB> completes to %q (%v), want %q", line, strings.TrimSpace(string(got)), err, want)
		}
	}
}
