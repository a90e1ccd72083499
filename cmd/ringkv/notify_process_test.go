package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify: under a service manager (NOTIFY_SOCKET set, as
// systemd sets it for Type=notify), the node says READY=1 once it serves,
// so /healthz answers at once, and STOPPING=1 when SIGTERM begins its
// shutdown; it still exits 0.
func TestSystemdNotify(t *testing.T) {
	ringkvBinary(t) // skips under -short
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := startProc(t, "", []string{"NOTIFY_SOCKET=" + sock}, "serve", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t))

	got := readNotify(t, conn, p)
	if want := "READY=1\nSTATUS=serving on " + p.addr; got != want {
		t.Fatalf("first notification %q, want %q", got, want)
	}
	resp, err := http.Get("http://" + p.addr + "/healthz")
	if err != nil {
		t.Fatalf("READY=1 sent, but /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("READY=1 sent, but /healthz = %s", resp.Status)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, conn, p); !strings.HasPrefix(got, "STOPPING=1\n") {
		t.Fatalf("after SIGTERM, notification %q, want STOPPING=1", got)
	}
	if code := p.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.logs)
	}
}

// readNotify returns the next datagram on conn, failing the test if none
// comes within a minute (the node's startup on a loaded machine).
func readNotify(t *testing.T, conn *net.UnixConn, p *proc) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v\n%s", err, p.logs)
	}
	return string(buf[:n])
}
