//go:build linux

package engine

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestOpenNamesLockHolder: opening or checking a data directory whose
// LOCK another process holds names that process, pid and command line.
func TestOpenNamesLockHolder(t *testing.T) {
	if path := os.Getenv("RINGKV_TEST_HOLD_LOCK"); path != "" {
		holdLock(t, path)
		return
	}
	dir := t.TempDir()
	e, err := Open(Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	holder := exec.Command(os.Args[0], "-test.run=^TestOpenNamesLockHolder$")
	holder.Env = append(os.Environ(), "RINGKV_TEST_HOLD_LOCK="+filepath.Join(dir, "LOCK"))
	in, _ := holder.StdinPipe()
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	defer in.Close() // the holder exits when its stdin closes
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	_, err = Open(Options{Dir: dir, GCInterval: -1})
	want := "in use by process " + strconv.Itoa(holder.Process.Pid) + " (" + os.Args[0]
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a locked dir: %v; want it to say %q", err, want)
	}
	if _, err := Check(dir, nil); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "held by process "+strconv.Itoa(holder.Process.Pid)) {
		t.Fatalf("Check of a locked dir: %v; want ErrLocked naming process %d", err, holder.Process.Pid)
	}
}

// holdLock takes the fcntl lock Pebble takes on path, says "locked", and
// holds it until stdin closes.
func holdLock(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
}
