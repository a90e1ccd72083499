package httpd

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/httpd/tlstest"
	"github.com/ringkv/ringkv/peer/keyring"
)

// helloServer starts a cluster test server on loopback TCP whose Addr is
// its real address, with the keyring of secrets (none: no secret).
func helloServer(t *testing.T, id string, cfg Config, secrets ...string) (*testServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = ln.Addr().String()
	}
	cfg.NodeID = id
	var keys [][]byte
	for _, s := range secrets {
		keys = append(keys, []byte(s))
	}
	cfg.Secrets = keyring.New("test", keys...)
	return startTestServer(t, cfg, ln, true), ln.Addr().String()
}

// recorder is a host that is not a ringkv member: it records every
// request's headers and answers with answer.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
	paths   []string
}

func newRecorder(t *testing.T, answer http.HandlerFunc) (*recorder, string) {
	r := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.paths = append(r.paths, req.URL.Path)
		r.mu.Unlock()
		answer(w, req)
	}))
	t.Cleanup(srv.Close)
	return r, strings.TrimPrefix(srv.URL, "http://")
}

// credentialHeaders are the headers of r's requests that could carry a
// credential of the cluster or of a client.
func (r *recorder) credentialHeaders() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, h := range r.headers {
		for k, v := range h {
			lk := strings.ToLower(k)
			if strings.Contains(lk, "secret") || strings.Contains(lk, "auth") || strings.Contains(lk, "signature") || strings.Contains(lk, "token") || strings.Contains(lk, "cookie") {
				out = append(out, k+": "+strings.Join(v, ","))
			}
		}
	}
	return out
}

const helloSecret = "0123456789abcdef0123456789abcdef"

// addNode asks the server at addr to POST /add-node?address=target as
// the admin of testTokens.
func addNodeCall(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/add-node?address="+url.QueryEscape(target), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(RequestHeader, "1")
	req.Header.Set("Authorization", "Bearer tok-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func authFor(t *testing.T) *Auth {
	a, err := NewStaticAuth([]byte(testAuthFile()))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAddNodeNonMember: /add-node to hosts that are not members of the
// cluster sends them no credential, reads a bounded answer, quotes none of
// it, and joins nothing.
func TestAddNodeNonMember(t *testing.T) {
	_, other := helloServer(t, "node-x", Config{}, "another secret entirely, 32 byte")
	tests := []struct {
		name   string
		answer http.HandlerFunc
		want   string
	}{
		{"html", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html>EVIL-BYTES</html>")
		}, "its answer is not a membership proof"},
		{"huge", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2000000000")
			for range 1000 {
				if _, err := w.Write([]byte(strings.Repeat("EVIL-BYTES", 1000))); err != nil {
					return
				}
			}
		}, "its answer is larger than 4096 bytes"},
		{"chunked", func(w http.ResponseWriter, r *http.Request) {
			for range 1000 {
				if _, err := w.Write([]byte(strings.Repeat("EVIL-BYTES", 1000))); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}, "its answer is larger than 4096 bytes"},
		{"header", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Evil", strings.Repeat("EVIL-BYTES", 1000))
		}, "its answer's header is larger than 4096 bytes"},
		{"forged", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"id":"EVIL-BYTES","addr":"`+r.Host+`","mac":"`+strings.Repeat("00", 32)+`"}`)
		}, "its proof does not verify under this cluster's secret"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+other+r.URL.RequestURI(), http.StatusFound)
		}, "/internal/hello answered 302"},
		{"no secret", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":"EVIL-BYTES"}`, http.StatusNotImplemented)
		}, "/internal/hello answered 501"},
	}
	a, aAddr := helloServer(t, "node-a", Config{Auth: authFor(t)}, helloSecret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, addr := newRecorder(t, tt.answer)
			code, body := addNodeCall(t, aAddr, addr)
			if code != http.StatusBadGateway || !strings.Contains(body, tt.want) || !strings.Contains(body, "did not prove it is a member") {
				t.Errorf("POST /add-node to a non-member: %d %q; want 502 with %q", code, body, tt.want)
			}
			if strings.Contains(body, "EVIL") {
				t.Errorf("the answer quotes the target's bytes: %q", body)
			}
			if h := rec.credentialHeaders(); len(h) > 0 {
				t.Errorf("the non-member received credentials: %q", h)
			}
			if rec.paths[0] != helloPath || len(rec.paths) != 1 {
				t.Errorf("the non-member was asked %q, want only %s", rec.paths, helloPath)
			}
		})
	}
	// A ringkv node of another cluster (another secret) is no member.
	code, body := addNodeCall(t, aAddr, other)
	if code != http.StatusBadGateway || !strings.Contains(body, "its proof does not verify") {
		t.Errorf("POST /add-node to a node of another cluster: %d %q", code, body)
	}
	if log := a.cl.log(); log != "added: []\nremoved: []\n" {
		t.Errorf("joined non-members: %s", log)
	}
}

// TestAddNodeMember: a member of the same cluster proves it, and the node
// joins it at the address it resolved; during a rotation (the asker's
// keyring holds the member's secret second) too.
func TestAddNodeMember(t *testing.T) {
	_, bAddr := helloServer(t, "node-b", Config{}, helloSecret)
	a, aAddr := helloServer(t, "node-a", Config{Auth: authFor(t)}, "the new secret, rotated in first", helloSecret)
	code, body := addNodeCall(t, aAddr, "http://"+strings.Replace(bAddr, "127.0.0.1", "localhost", 1)+"/")
	if code != http.StatusOK {
		t.Fatalf("POST /add-node to a member: %d %q", code, body)
	}
	if log := a.cl.log(); !strings.Contains(log, `added: ["`+bAddr+`"]`) {
		t.Errorf("cluster log %q, want %s added by its resolved address", log, bAddr)
	}

	// A member configured with an unspecified address signs the local
	// address of the connection too, which is the one dialled.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	startTestServer(t, Config{NodeID: "node-c", Addr: "0.0.0.0:" + port, Secrets: keyring.New("test", []byte(helloSecret))}, ln, true)
	if code, body := addNodeCall(t, aAddr, ln.Addr().String()); code != http.StatusOK {
		t.Errorf("POST /add-node to a member on 0.0.0.0: %d %q", code, body)
	}
}

// TestAddNodeRelay: a host that relays the challenge to a real member gets
// back a proof of the member's address, not its own, and is refused.
func TestAddNodeRelay(t *testing.T) {
	_, bAddr := helloServer(t, "node-b", Config{}, helloSecret)
	rec, relay := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get("http://" + bAddr + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	a, aAddr := helloServer(t, "node-a", Config{Auth: authFor(t)}, helloSecret)
	code, body := addNodeCall(t, aAddr, relay)
	if code != http.StatusBadGateway || !strings.Contains(body, "its proof is for other addresses") {
		t.Errorf("POST /add-node to a relay: %d %q", code, body)
	}
	if h := rec.credentialHeaders(); len(h) > 0 {
		t.Errorf("the relay received credentials: %q", h)
	}
	if log := a.cl.log(); log != "added: []\nremoved: []\n" {
		t.Errorf("joined a relay: %s", log)
	}
}

// TestAddNodeNoSecret: without a cluster secret no proof is possible;
// /add-node is then served to loopback clients only.
func TestAddNodeNoSecret(t *testing.T) {
	ts := newClusterTestServer(t, Config{})
	raw := rawRequest("POST", "/add-node?address=h:1", nil, RequestHeader+": 1")
	if resp := ts.roundTripFrom(t, "10.1.2.3", raw, false); resp.StatusCode() != 403 || !strings.Contains(string(resp.Body()), "only to loopback clients") {
		t.Errorf("from 10.1.2.3: %d %q", resp.StatusCode(), resp.Body())
	}
	if resp := ts.roundTripFrom(t, "::1", raw, false); resp.StatusCode() != 200 {
		t.Errorf("from ::1: %d %q", resp.StatusCode(), resp.Body())
	}
}

func TestHelloHandler(t *testing.T) {
	ts := newClusterTestServer(t, Config{Addr: "10.0.0.1:8080", Secrets: keyring.New("test", []byte(helloSecret))})
	for _, tt := range []struct {
		target string
		code   int
	}{
		{"/internal/hello", 400},
		{"/internal/hello?nonce=zz", 400},
		{"/internal/hello?nonce=" + strings.Repeat("ab", 15), 400},
		{"/internal/hello?nonce=" + strings.Repeat("ab", 65), 400},
		{"/internal/hello?nonce=" + strings.Repeat("ab", 16), 200},
	} {
		resp := ts.roundTrip(t, rawRequest("GET", tt.target, nil), false)
		wantStatus(t, tt.target, resp, tt.code)
	}
	resp := ts.roundTrip(t, rawRequest("POST", "/internal/hello?nonce="+strings.Repeat("ab", 16), nil), false)
	wantStatus(t, "POST /internal/hello", resp, 405)
}

func TestSameNodeAddr(t *testing.T) {
	tests := []struct {
		signed, named, dial string
		want                bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "localhost:8080", "127.0.0.1:8080", true},
		{"db1.example:8080", "DB1.example:8080", "10.0.0.1:8080", true},
		{"[::1]:8080", "[0:0::1]:8080", "[::1]:8080", true},
		{"0.0.0.0:8080", "db1:8080", "10.0.0.1:8080", false},
		{"[::]:8080", "db1:8080", "10.0.0.1:8080", false},
		{"0.0.0.0:8080", "0.0.0.0:8080", "0.0.0.0:8080", true}, // as named: the caller's choice
		{"0.0.0.0:8080", "db1:8081", "10.0.0.1:8081", false},
		{"10.0.0.2:8080", "relay:8080", "10.0.0.9:8080", false},
		{"127.0.0.1:8080", "127.0.0.1:9090", "127.0.0.1:9090", false},
		{"garbage", "h:1", "10.0.0.1:1", false},
	}
	for _, tt := range tests {
		if got := sameNodeAddr(tt.signed, tt.named, tt.dial); got != tt.want {
			t.Errorf("sameNodeAddr(%q, %q, %q) = %v, want %v", tt.signed, tt.named, tt.dial, got, tt.want)
		}
	}
}

// TestAddNodeTLS: with JoinTLS the proof is asked over HTTPS and the
// target's certificate must verify.
func TestAddNodeTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "cluster CA"), tlstest.NewCA(t, "other CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	cert := ca.Issue(t, "node-b").TLS(t)
	startTestServer(t, Config{NodeID: "node-b", Addr: ln.Addr().String(), Secrets: keyring.New("test", []byte(helloSecret)),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, ln, true)
	bAddr := ln.Addr().String()

	a, aAddr := helloServer(t, "node-a", Config{Auth: authFor(t), JoinTLS: &tls.Config{RootCAs: ca.Pool()}}, helloSecret)
	if code, body := addNodeCall(t, aAddr, strings.Replace(bAddr, "127.0.0.1", "localhost", 1)); code != http.StatusOK {
		t.Fatalf("POST /add-node over TLS: %d %q", code, body)
	}
	if log := a.cl.log(); !strings.Contains(log, bAddr) {
		t.Errorf("cluster log %q", log)
	}
	_, cAddr := helloServer(t, "node-c", Config{Auth: authFor(t), JoinTLS: &tls.Config{RootCAs: other.Pool()}}, helloSecret)
	if code, body := addNodeCall(t, cAddr, bAddr); code != http.StatusBadGateway || !strings.Contains(body, "its TLS certificate does not verify") {
		t.Errorf("POST /add-node to a certificate of another CA: %d %q", code, body)
	}
}

// TestAuthPeerStatus: with --auth-file, a peer's signed GET /v1/cluster
// (Transport.Status: anti-entropy, a leave's handover) is answered, and an
// unsigned or wrongly signed one needs a client credential.
func TestAuthPeerStatus(t *testing.T) {
	_, addr := helloServer(t, "node-b", Config{Auth: authFor(t)}, helloSecret)
	ctx := t.Context()
	peerTr := mustTransport(t, TransportConfig{NodeID: "node-a", Secrets: keyring.New("test", []byte(helloSecret))})
	defer peerTr.Close()
	if st, err := peerTr.Status(ctx, addr); err != nil || len(st.Members) == 0 { // the fakeCluster's status
		t.Errorf("a peer's signed status read: %+v, %v", st, err)
	}
	strangerTr := mustTransport(t, TransportConfig{NodeID: "node-a", Secrets: keyring.New("test", []byte("not the cluster's secret, 32 by"))})
	defer strangerTr.Close()
	if _, err := strangerTr.Status(ctx, addr); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a status read signed with another secret: %v, want 401", err)
	}
	unsignedTr := mustTransport(t, TransportConfig{NodeID: "node-a"})
	defer unsignedTr.Close()
	if _, err := unsignedTr.Status(ctx, addr); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("an unsigned status read: %v, want 401", err)
	}
}
