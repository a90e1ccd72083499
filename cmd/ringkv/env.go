package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/joho/godotenv"
)

// environ is the process environment, with a .env file in the working
// directory filling in variables the real environment lacks (as go-kvstore
// did for NODE_ADDRESS).
type environ struct {
	vars   map[string]string
	dotenv map[string]string
	err    error // a .env file that exists but does not parse
}

func newEnviron() *environ {
	e := &environ{vars: map[string]string{}}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.vars[k] = v
		}
	}
	dot, err := godotenv.Read(".env")
	switch {
	case err == nil:
		e.dotenv = dot
	case errors.Is(err, fs.ErrNotExist):
	default:
		e.err = fmt.Errorf("cannot read .env: %w", err)
	}
	return e
}

// lookup returns a variable from the environment, else from .env.
func (e *environ) lookup(name string) (string, string, bool) {
	if v, ok := e.vars[name]; ok {
		return v, name, true
	}
	if v, ok := e.dotenv[name]; ok {
		return v, name + " in .env", true
	}
	return "", "", false
}

// envName is the environment variable that sets a flag: RINGKV_ then the
// flag name in upper case with dashes as underscores.
func envName(flagName string) string {
	return "RINGKV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs not given on the command line from its
// RINGKV_* variable. The error names the flag and the variable.
func applyEnv(fset *flag.FlagSet, env *environ) error {
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fset.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		if v, src, ok := env.lookup(envName(f.Name)); ok {
			if e := fset.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for --%s (from %s): %v", v, f.Name, src, unwrapFlagErr(e))
			}
		}
	})
	return err
}

// unwrapFlagErr strips the flag package's own prefix from a Set error.
func unwrapFlagErr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// printUsage prints a command's usage text and its flags, for -h. To a
// flagCollector it hands the FlagSet instead ('ringkv completion').
func printUsage(w io.Writer, usage string, fs *flag.FlagSet) int {
	if c, ok := w.(*flagCollector); ok {
		c.fs = fs
		return exitOK
	}
	fmt.Fprintln(w, usage)
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	return exitOK
}

// parseFlags parses args with flags and positional arguments in any order
// (ringkv get KEY --addr A and ringkv get --addr A KEY both work), returning
// the positional ones. Errors are one line naming the flag.
func parseFlags(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, flagError(err)
		}
		rest := fset.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagError rewords the flag package's errors to name flags as users type
// them (--memtable-size).
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s", strings.TrimPrefix(name, "-"))
	}
	msg = strings.Replace(msg, "for flag -", "for --", 1)
	if i := strings.Index(msg, " for -"); i >= 0 && !strings.Contains(msg, " for --") {
		msg = msg[:i] + " for --" + msg[i+len(" for -"):]
	}
	msg = strings.Replace(msg, "flag needs an argument: -", "flag needs an argument: --", 1)
	return errors.New(msg)
}
