package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringkv/ringkv/httpd"
)

// TestStatusPageInBrowser loads the status page of a live cluster in
// headless Chromium and checks what the page RENDERED (the DOM after its
// script ran and refreshed), not the HTML the node sent: three nodes under
// a bounded load are joined by a fourth whose transfer is slowed by
// --transfer-rate, and the page of n1 must show every member alive, the
// fourth node's transfer in flight with a rate that changed between
// refreshes, the traffic, and no script error; at a phone's width it must
// fit the screen; once n2 is killed, it must say that n2 does not answer.
// It takes a screenshot, which RINGKV_UPDATE_SCREENSHOT=1 writes to
// docs/status-page.png.
func TestStatusPageInBrowser(t *testing.T) {
	browser := chromiumPath(t)
	ringkvBinary(t)
	// 32KiB/s on every donor: the joiner's pull of about 1.2 MB takes half
	// a minute, a long time for a page that refreshes every 1.5s.
	nodes := newCluster(t, 4, "--replicas", "3", "--transfer-rate", "32KiB", "--anti-entropy-interval", "1h")
	startJoined(t, nodes[:3])
	// Settled before the data comes: the only move is then n4's.
	poll(t, 60*time.Second, "n1, n2, n3 hold their ranges", func() (bool, string) {
		for _, c := range nodes[:3] {
			if st, err := status(c.http); err != nil || !st.Settled {
				return false, fmt.Sprint(c.id, " not settled ", err)
			}
		}
		return true, ""
	})

	// To update the screenshot, more data: a move long enough for the
	// page to show a minute of traffic while it runs.
	update := os.Getenv("RINGKV_UPDATE_SCREENSHOT") == "1"
	keys := 4000
	if update {
		keys = 16000
	}
	val := strings.Repeat("v", 400)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < keys; i += 4 {
				code, b, err := call(http.MethodPut, kvURL(nodes[i%3].http, fmt.Sprintf("sp/%05d", i), ""), val)
				if err != nil || code != http.StatusNoContent {
					errs <- fmt.Errorf("PUT: %d %s %v", code, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A bounded load (in time and rate) that the page's traffic shows.
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() {
		deadline := time.Now().Add(3 * time.Minute)
		for i := 0; time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("sp/%05d", i%keys)
			if i%5 == 0 {
				call(http.MethodPut, kvURL(nodes[i%3].http, key, ""), val)
			} else {
				call(http.MethodGet, kvURL(nodes[i%3].http, key, ""), "")
			}
			time.Sleep(5 * time.Millisecond) // pacing, not synchronization
		}
	})
	t.Cleanup(func() { close(stop); load.Wait() })

	n4 := nodes[3]
	n4.start("--join", nodes[0].gossip)
	poll(t, 60*time.Second, "n4's transfer under way with a range done", func() (bool, string) {
		st, err := status(n4.http)
		if err != nil || len(st.Transfers) == 0 {
			return false, fmt.Sprint(st.Transfers, err)
		}
		tr := st.Transfers[0]
		return tr.RangesDone >= 1 && tr.BytesDone > 0 && tr.RangesDone < tr.RangesTotal, fmt.Sprintf("%+v", tr)
	})

	page := "http://" + nodes[0].http + "/"
	b := startBrowser(t, browser)
	tab := b.open(page, 1400, 1000, false)
	// Real time, not a virtual-time budget: the page must see the
	// cluster change between its refreshes.
	excerpt := func(s string) string {
		if len(s) > 3000 {
			return s[:3000] + "..."
		}
		return s
	}
	// problems lists what the rendered page lacks. Polled: under load a
	// member may miss one gathering's 800ms, or be suspect for a moment.
	problems := func(dom string) (why []string) {
		check := func(what string, ok bool, detail string) {
			if !ok {
				why = append(why, what+": "+detail)
			}
		}
		attr := func(re string) []string {
			m := regexp.MustCompile(re).FindStringSubmatch(dom)
			if m == nil {
				return nil
			}
			return m[1:]
		}
		for _, c := range nodes {
			m := attr(`<tr data-member="` + c.id + `" data-state="(\w+)"`)
			check("member "+c.id+" alive", m != nil && m[0] == "alive", fmt.Sprint("state ", m))
		}
		tr := attr(`class="card transfer" data-node="n4" data-from="[^"]*" data-bytes="(\d+)" data-rate="(\d+)" data-rates="([\d ]*)"`)
		check("n4's transfer in flight", tr != nil, excerpt(textOf(dom, `id="movement"`)))
		if tr != nil {
			rates := strings.Fields(tr[2])
			changed := false
			for _, r := range rates {
				changed = changed || r != rates[0]
			}
			check("a transfer rate that changed between refreshes", len(rates) >= 2 && changed, "rates "+tr[2])
		}
		check("the traffic of every node", strings.Count(dom, `<tr data-op="get"`) >= 3, excerpt(textOf(dom, `id="traffic"`)))
		check("the LSM of every node", strings.Count(dom, `class="lsm"`) == 4, excerpt(textOf(dom, `id="storage"`)))
		check("the Pebble options behind a disclosure", strings.Contains(dom, `<summary>Pebble options</summary>`), "")
		check("the age of the data", regexp.MustCompile(`live · data [\d.]+ (µs|ms|s) old`).MatchString(dom), excerpt(textOf(dom, `id="live"`)))
		return why
	}
	poll(t, 90*time.Second, "the page, refreshed three times or more, shows the cluster", func() (bool, string) {
		refreshes, _ := strconv.Atoi(b.eval(tab, refreshesJS))
		if refreshes < 3 {
			return false, fmt.Sprint("refreshes ", refreshes)
		}
		dom := b.eval(tab, "document.documentElement.outerHTML")
		if m := regexp.MustCompile(`id="script-errors"[^>]*data-count="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "0" {
			t.Fatalf("script errors on the page: %v; %s", m, excerpt(textOf(dom, `id="script-errors"`)))
		}
		why := problems(dom)
		if len(why) == 0 {
			tr := regexp.MustCompile(`data-node="n4" data-from="[^"]*" data-bytes="(\d+)" data-rate="\d+" data-rates="([\d ]*)"`).FindStringSubmatch(dom)
			t.Logf("after %d refreshes: n4 pulled %s bytes, at a rate per refresh of %s B/s", refreshes, tr[1], tr[2])
			return true, ""
		}
		if st, err := status(n4.http); err != nil || len(st.Transfers) == 0 {
			t.Fatalf("the transfer ended (%v, %v) before the page showed everything: %s", st.Transfers, err, strings.Join(why, "; "))
		}
		return false, fmt.Sprintf("after %d refreshes: %s", refreshes, strings.Join(why, "; "))
	})
	if update {
		poll(t, 3*time.Minute, "a minute of history on n1", func() (bool, string) {
			code, body, err := call(http.MethodGet, "http://"+nodes[0].http+httpd.NodeScopeURI, "")
			var ns httpd.NodeSnapshot
			if err != nil || code != http.StatusOK || json.Unmarshal(body, &ns) != nil || ns.History == nil {
				return false, fmt.Sprint(code, err)
			}
			return ns.History.Seconds >= 60, fmt.Sprint(ns.History.Seconds, "s")
		})
		if st, err := status(n4.http); err != nil || len(st.Transfers) == 0 {
			t.Fatalf("the transfer ended before the screenshot (%v, %v)", st.Transfers, err)
		}
	}
	png := b.screenshot(tab)
	if len(png) < 10000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes", len(png))
	}
	if os.Getenv("RINGKV_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A phone's width: the page fits it (wide tables scroll in their box).
	phone := b.open(page, 390, 844, true)
	poll(t, 60*time.Second, "the phone's page rendered", func() (bool, string) {
		v := b.eval(phone, refreshesJS)
		return v != "0" && v != "", "data-refreshes=" + v
	})
	if fits := b.eval(phone, "document.body.dataset.fits"); fits != "true" {
		t.Errorf("at 390px wide the page is wider than the screen (data-fits=%q)", fits)
	}

	// A member killed: the page says so, and goes on showing the rest.
	nodes[1].kill9()
	poll(t, 30*time.Second, "the page says n2 does not answer", func() (bool, string) {
		dom := b.eval(tab, "document.documentElement.outerHTML")
		return strings.Contains(dom, `data-down="n2"`) && strings.Contains(dom, "n2 does not answer") &&
			strings.Count(dom, `class="lsm"`) == 3, excerpt(textOf(dom, `id="alerts"`))
	})
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// refreshesJS reads how often the page has refreshed ("" before its body
// exists: the tab may still be navigating).
const refreshesJS = `(document.body && document.body.dataset.refreshes) || ""`

// chromiumPath finds Debian's chromium; without one the test skips, but
// under CI=true (whose .ci/run installs it) it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium")
	}
	t.Skip("no chromium on PATH (apt-get install chromium; CI installs it)")
	return ""
}

// browser is headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: JSON messages ended by NUL on fds 3
// and 4), so the test needs no websocket and no new dependency.
type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	w    io.WriteCloser
	msgs chan cdpMessage
	next int
	mu   sync.Mutex
	errs []string // exceptions and error-level log entries, from events
	done chan struct{}
}

type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	SessionID string          `json:"sessionId"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser starts Chromium; the test's cleanup closes it.
func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	inR, inW, err := os.Pipe() // the browser reads commands from fd 3
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe() // and writes answers to fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--remote-debugging-pipe",
		"--user-data-dir="+t.TempDir(), "about:blank")
	cmd.ExtraFiles = []*os.File{inR, outW}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	// Its renderers go with it if the test dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	b := &browser{t: t, cmd: cmd, w: inW, msgs: make(chan cdpMessage, 1024), done: make(chan struct{})}
	go func() {
		defer close(b.msgs)
		r := bufio.NewReader(outR)
		for {
			line, err := r.ReadBytes(0)
			if err != nil {
				return
			}
			var m cdpMessage
			if json.Unmarshal(line[:len(line)-1], &m) == nil {
				b.event(m)
				b.msgs <- m
			}
		}
	}()
	go func() { cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		inW.Close() // the browser exits when its pipe closes
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-b.done
		}
		for range b.msgs { // the reader ends at the pipe's EOF
		}
		outR.Close()
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", stderr.String())
		}
	})
	return b
}

// event records the page's exceptions and error log entries (a resource
// the Content-Security-Policy blocked is one).
func (b *browser) event(m cdpMessage) {
	var what string
	switch m.Method {
	case "Runtime.exceptionThrown":
		what = "exception: " + string(m.Params)
	case "Log.entryAdded":
		var p struct {
			Entry struct{ Level, Text, URL string }
		}
		if json.Unmarshal(m.Params, &p) == nil && p.Entry.Level == "error" {
			what = "log: " + p.Entry.Text + " " + p.Entry.URL
		}
	}
	if what != "" {
		b.mu.Lock()
		b.errs = append(b.errs, what)
		b.mu.Unlock()
	}
}

func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

// call sends one command (to a page's session, or the browser's with
// session "") and returns its result.
func (b *browser) call(session, method string, params any) json.RawMessage {
	b.t.Helper()
	b.next++
	id := b.next
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	out, err := json.Marshal(msg)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.w.Write(append(out, 0)); err != nil {
		b.t.Fatalf("chromium %s: %v", method, err)
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-b.msgs:
			if !ok {
				b.t.Fatalf("chromium exited during %s", method)
			}
			if m.ID != id {
				continue
			}
			if m.Error != nil {
				b.t.Fatalf("chromium %s: %s", method, m.Error.Message)
			}
			return m.Result
		case <-timeout:
			b.t.Fatalf("chromium %s: no answer within 60s", method)
		}
	}
}

// open opens url in a new tab of width x height CSS pixels and returns
// the tab's session.
func (b *browser) open(url string, width, height int, mobile bool) string {
	b.t.Helper()
	var target struct{ TargetID string }
	json.Unmarshal(b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}), &target)
	var att struct{ SessionID string }
	json.Unmarshal(b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &att)
	s := att.SessionID
	b.call(s, "Runtime.enable", map[string]any{})
	b.call(s, "Log.enable", map[string]any{})
	b.call(s, "Page.enable", map[string]any{})
	b.call(s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
	b.call(s, "Page.navigate", map[string]any{"url": url})
	return s
}

// eval returns the string value of a JavaScript expression in the tab.
func (b *browser) eval(session, expr string) string {
	b.t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails json.RawMessage `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(b.call(session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r); err != nil {
		b.t.Fatal(err)
	}
	if r.ExceptionDetails != nil {
		b.t.Fatalf("evaluating %s: %s", expr, r.ExceptionDetails)
	}
	if r.Result.Value == nil {
		return ""
	}
	return fmt.Sprint(r.Result.Value)
}

// screenshot returns a PNG of the tab's viewport.
func (b *browser) screenshot(session string) []byte {
	b.t.Helper()
	var r struct{ Data []byte } // base64 in JSON: []byte decodes it
	if err := json.Unmarshal(b.call(session, "Page.captureScreenshot", map[string]any{"format": "png"}), &r); err != nil {
		b.t.Fatal(err)
	}
	return r.Data
}

// textOf returns the text of the element whose start tag has marker (its
// tags dropped), for a failure message.
func textOf(dom, marker string) string {
	i := strings.Index(dom, marker)
	if i < 0 {
		return "(no " + marker + ")"
	}
	s := dom[i:]
	if len(s) > 20000 {
		s = s[:20000]
	}
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, " ")), " ")
}
