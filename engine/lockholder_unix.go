//go:build linux || darwin || freebsd

package engine

import (
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder names the process that holds the fcntl lock on the file at
// path (Pebble's LOCK), as the OS tells: its pid, and its command line
// where /proc shows it; "" when it cannot tell.
func lockHolder(path string) string {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return ""
	}
	// NB: closing f would drop this process's fcntl locks on the file,
	// but it holds none: it failed to take the lock.
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK || lk.Pid <= 0 {
		return ""
	}
	pid := strconv.Itoa(int(lk.Pid))
	b, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")); err == nil && cmd != "" {
		if len(cmd) > 200 {
			cmd = cmd[:200] + "..."
		}
		return "process " + pid + " (" + cmd + ")"
	}
	return "process " + pid
}
