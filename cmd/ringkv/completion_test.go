package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestCompletionFish asks fish for the completions of lines being typed.
func TestCompletionFish(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("no fish")
	}
	script := writeCompletion(t, "fish")
	for line, want := range map[string]string{
		"ringkv ser":                    "serve",
		"ringkv bench compaction --wri": "--writes",
		"ringkv bench --wor":            "--workload",
		"ringkv cluster ":               "leave remove ring status",
		"ringkv scan --af":              "--after --after-base64",
	} {
		out, err := exec.Command(fish, "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", script, line).Output()
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			w, _, _ := strings.Cut(l, "\t")
			got = append(got, w)
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("%q<TAB> completes to %q (%v), want %q", line, got, err, want)
		}
	}
}

// TestCompletionZsh runs the zsh function with _arguments and _describe
// stubbed to print what they are given.
func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh")
	}
	script := writeCompletion(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v %s", err, out)
	}
	for line, want := range map[string]string{
		"ringkv ser":                   "cmds",
		"ringkv bench compaction --wr": "--writes[writes per profile at most",
		"ringkv bench --wo":            "--workload[put, get, a]:value: ",
		"ringkv cluster st":            "1:command:(status ring remove leave)",
		"ringkv backup --t":            "--to[directory to create for the backup]:path:_files",
	} {
		stubs := `compdef() { :; }; _arguments() { print -rl -- "$@"; }; _describe() { print -rl -- "$@"; }; source $1; shift; words=("$@"); CURRENT=$#; _ringkv`
		out, err := exec.Command(zsh, append([]string{"-f", "-c", stubs, "zsh", script}, strings.Split(line, " ")...)...).CombinedOutput()
		// An argument is the flag, its help (cut at zsh's width) and its kind.
		if err != nil || !slices.ContainsFunc(strings.Split(string(out), "\n"), func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("%q<TAB>: zsh was asked %q (%v), want an argument %q", line, out, err, want)
		}
	}
}

func writeCompletion(t *testing.T, shell string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	out, _, code := cli(t, "", "completion", shell)
	if code != exitOK {
		t.Fatalf("completion %s: exit %d", shell, code)
	}
	script := filepath.Join(dir, "ringkv."+shell)
	if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return script
}
