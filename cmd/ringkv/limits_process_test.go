package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// setNofile sets the open-file limit (soft and hard) of process pid.
func setNofile(t *testing.T, pid int, n uint64) {
	t.Helper()
	rl := syscall.Rlimit{Cur: n, Max: n}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&rl)), 0, 0, 0); errno != 0 {
		t.Skipf("cannot set the node's open-file limit: %v", errno)
	}
}

// flood opens n connections to addr from this process, as one client
// would, and holds them until the returned function closes them all.
// Connections the node refuses or closes are counted, not retried.
func flood(t *testing.T, addr string, n int) (opened int, release func()) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	// Leave room for the test's own files and the other client.
	n = min(n, int(rl.Cur)-500)
	if n < 2000 {
		t.Skipf("open-file limit %d is too low to flood", rl.Cur)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			d := net.Dialer{Timeout: 2 * time.Second}
			for next.Add(1) <= int64(n) {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue // the backlog full: what a flood does
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(conns), func() {
		for _, c := range conns {
			c.Close()
		}
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip, so that the per-IP cap counts it apart from a flood from
// 127.0.0.1.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	// A new connection a request: a connection opened before the flood
	// would prove nothing.
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// TestFloodOfSockets: one client opening ~20,000 sockets neither stops the
// node nor keeps it from serving another client: past --max-conns-per-ip
// its connections are answered 429 and closed at once. And a node that
// runs out of file descriptors (EMFILE on accept) backs off and serves
// again once they are freed, where it used to exit.
func TestFloodOfSockets(t *testing.T) {
	t.Run("per-ip", func(t *testing.T) {
		p := startNode(t, t.TempDir(), "--max-conns-per-ip", "200", "--max-conns", "2000")
		p.waitHealthy()
		other := clientFrom("127.0.0.2")
		if _, err := other.Get("http://" + p.addr + "/healthz"); err != nil {
			t.Skipf("cannot connect from 127.0.0.2: %v", err)
		}
		stop := make(chan struct{})
		var served, failed atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := "other-" + strconv.Itoa(i%50)
				req, _ := http.NewRequest(http.MethodPut, p.url(k), strings.NewReader("v"))
				resp, err := other.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusNoContent {
					if failed.Add(1) <= 3 {
						t.Logf("the other client's PUT: %v %v", err, resp)
					}
					continue
				}
				served.Add(1)
			}
		})
		opened, release := flood(t, p.addr, 20000)
		t.Logf("flood: %d sockets connected", opened)
		// The node still answers the other client, and is still there.
		before := served.Load()
		wait.For(t, time.Minute, func() bool { return served.Load() >= before+20 }, "the other client served during the flood")
		close(stop)
		wg.Wait()
		release()
		if f := failed.Load(); f > 0 {
			t.Errorf("%d of the other client's requests failed during the flood", f)
		}
		select {
		case <-p.done:
			t.Fatalf("ringkv exited under the flood: %v\n%s", p.err, p.logs)
		default:
		}
	})

	t.Run("emfile", func(t *testing.T) {
		p := startNode(t, t.TempDir(), "--max-conns-per-ip", "0", "--max-conns", "10000")
		p.waitHealthy()
		setNofile(t, p.cmd.Process.Pid, 256)
		opened, release := flood(t, p.addr, 3000)
		t.Logf("flood: %d sockets connected", opened)
		wait.For(t, time.Minute, func() bool {
			select {
			case <-p.done:
				t.Fatalf("ringkv exited when accept failed: %v\n%s", p.err, lastLines(p.logs.String(), 10))
			default:
			}
			return strings.Contains(p.logs.String(), "cannot accept a connection; retrying")
		}, "accept to fail with EMFILE")
		release()
		// Freed, the node serves again; it never exited.
		p.waitHealthy()
		p.put("after-emfile", "v")
		if v, code := p.get("after-emfile"); code != 200 || v != "v" {
			t.Fatalf("GET after the flood: %d %q", code, v)
		}
		if n := metric(t, p.addr, "ringkv_http_accept_errors_total"); n < 1 {
			t.Errorf("ringkv_http_accept_errors_total = %v after EMFILE", n)
		}
		if !strings.Contains(p.logs.String(), "too many open files") {
			t.Errorf("the accept error logged is not EMFILE:\n%s", lastLines(p.logs.String(), 20))
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// peakRSS is the high-water mark of pid's resident set, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(line, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// TestScanMemoryBound: 8 concurrent scans of a store of large values,
// each asking for 10,000 items a page, stay within the documented bound
// (max-concurrent-scans × 3 × max-scan-bytes on one node, plus the Go
// heap's slack): the node's peak RSS grows by far less than the data each
// scan would otherwise answer at once.
func TestScanMemoryBound(t *testing.T) {
	const (
		values   = 256
		valSize  = 256 << 10 // 64 MiB in all
		scanCap  = 1 << 20
		scanners = 8
	)
	p := startNode(t, t.TempDir(), "--sync=false", "--max-scan-bytes", "1MiB", "--max-concurrent-scans", "8",
		"--row-cache-size", "0", "--block-cache-size", "8MiB", "--max-value-size", "1MiB")
	p.waitHealthy()
	val := bytes.Repeat([]byte("a"), valSize)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := next.Add(1); i <= values; i = next.Add(1) {
				req, _ := http.NewRequest(http.MethodPut, p.url(fmt.Sprint("big-", i)), bytes.NewReader(val))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	base := peakRSS(t, p.cmd.Process.Pid)

	scanAll := func() (keys, pages int, err error) {
		after := ""
		for {
			u := "http://" + p.addr + "/v1/kv?limit=10000&after=" + url.QueryEscape(after)
			resp, err := http.Get(u)
			if err != nil {
				return keys, pages, err
			}
			var page struct {
				Items []struct{ Key string }
				Next  *string
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				continue
			}
			if err != nil {
				return keys, pages, fmt.Errorf("status %d: %v", resp.StatusCode, err)
			}
			keys += len(page.Items)
			pages++
			if page.Next == nil {
				return keys, pages, nil
			}
			after = *page.Next
		}
	}
	for range scanners {
		wg.Go(func() {
			for range 2 {
				keys, pages, err := scanAll()
				if err != nil || keys != values {
					t.Errorf("scan: %d keys in %d pages, %v; want %d", keys, pages, err, values)
					return
				}
				if pages < values*valSize/scanCap/2 {
					t.Errorf("scan of %d MiB in %d pages: not capped at 1MiB", values*valSize>>20, pages)
				}
			}
		})
	}
	wg.Wait()
	grew := peakRSS(t, p.cmd.Process.Pid) - base
	// Documented: about scans × 3 × max-scan-bytes; allow the Go heap's
	// doubling and allocator slack on top.
	bound := int64(scanners*3*scanCap)*2 + 64<<20
	t.Logf("peak RSS grew by %d MiB during %d concurrent scans (bound %d MiB)", grew>>20, scanners, bound>>20)
	if grew > bound {
		t.Errorf("peak RSS grew by %d MiB, above the bound of %d MiB", grew>>20, bound>>20)
	}

}
