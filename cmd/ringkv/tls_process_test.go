package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/httpd/tlstest"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
)

// These tests run real ringkv processes with certificates of a CA made in
// the test: HTTPS clients, mutual TLS between nodes, a node of another CA
// refused, a certificate rotated on disk, a separate peer listener, and
// signed internode calls.

// pki is a test's CA and the files it issued, in one directory.
type pki struct {
	t      *testing.T
	dir    string
	ca     *tlstest.CA
	caFile string
	hc     *http.Client // trusts the CA, presents no certificate
}

// httpsKV is kvURL over HTTPS.
func httpsKV(addr, key, consistency string) string {
	return "https://" + strings.TrimPrefix(kvURL(addr, key, consistency), "http://")
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{t: t, dir: t.TempDir(), ca: tlstest.NewCA(t, "ringkv test CA")}
	p.caFile = p.ca.WriteCA(t, p.dir, "ca")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool()}}
	p.hc = &http.Client{Timeout: 15 * time.Second, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return p
}

// node issues a certificate for id and returns the serve flags that use
// it, with the CA for mutual TLS.
func (p *pki) node(id string) []string {
	cf, kf := p.ca.Issue(p.t, id).Write(p.t, p.dir, id)
	return []string{"--tls-cert-file", cf, "--tls-key-file", kf, "--peer-ca-file", p.caFile}
}

// do makes a request with the CA-trusting client.
func (p *pki) do(method, u, body string) (int, string, error) {
	var r io.Reader
	if body != "" || method == http.MethodPut {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return 0, "", err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startTLS starts c's process, as cnode.start does, and waits until it
// answers /healthz over HTTPS.
func (p *pki) startTLS(c *cnode, extra ...string) {
	p.t.Helper()
	args := []string{"serve", "--node-id", c.id, "--data-dir", c.dir, "--http-addr", c.http, "--gossip-addr", c.gossip}
	c.p = startProcIn(p.t, "", "", c.env, append(append(args, c.args...), extra...)...)
	c.all = append(c.all, c.p)
	poll(p.t, 30*time.Second, c.id+" healthy over HTTPS", func() (bool, string) {
		select {
		case <-c.p.done:
			p.t.Fatalf("%s exited: %v\n%s", c.id, c.p.err, c.p.logs)
		default:
		}
		code, b, err := p.do(http.MethodGet, "https://"+c.http+"/healthz", "")
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprint(code, b)
	})
}

// status is GET /v1/cluster over HTTPS.
func (p *pki) status(addr string) (peer.ClusterStatus, error) {
	var st peer.ClusterStatus
	code, b, err := p.do(http.MethodGet, "https://"+addr+"/v1/cluster", "")
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("GET /v1/cluster: %d %s", code, b)
	}
	return st, json.Unmarshal([]byte(b), &st)
}

func (p *pki) waitAllAlive(nodes []*cnode) {
	p.t.Helper()
	var ids []string
	for _, c := range nodes {
		ids = append(ids, c.id)
	}
	poll(p.t, 30*time.Second, "every node sees "+strings.Join(ids, ",")+" alive", func() (bool, string) {
		for _, c := range nodes {
			st, err := p.status(c.http)
			if err != nil {
				return false, err.Error()
			}
			if !allAlive(st, ids...) {
				return false, c.id + " sees " + memberStates(st)
			}
		}
		return true, ""
	})
}

// servedSerial is the serial of the certificate a new TLS connection to
// addr is served.
func (p *pki) servedSerial(addr string) (*big.Int, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestTLSClient: a node with --tls-cert-file serves HTTPS; the CLI and
// bench speak it with --cacert (and fail without it, the CA being
// unknown to the system); plain HTTP gets no answer; a certificate
// rotated on disk is served without a restart.
func TestTLSClient(t *testing.T) {
	ringkvBinary(t)
	p := newPKI(t)
	nodes := newCluster(t, 1)
	n1 := nodes[0]
	n1.args = p.node("n1")
	p.startTLS(n1)
	base := "https://" + n1.http

	if code, b, err := p.do(http.MethodPut, base+"/v1/kv/tls-key", "over TLS"); err != nil || code != 204 {
		t.Fatalf("PUT over HTTPS: %d %s %v", code, b, err)
	}
	if code, b, err := p.do(http.MethodGet, base+"/v1/kv/tls-key", ""); err != nil || code != 200 || b != "over TLS" {
		t.Fatalf("GET over HTTPS: %d %q %v", code, b, err)
	}
	if code, _, err := call(http.MethodGet, "http://"+n1.http+"/healthz", ""); err == nil && code == 200 {
		t.Fatal("plain HTTP to the TLS port answered 200")
	}

	// The CLI.
	if out, errs, code := runRingkv(t, "put", "cli-key", "cli-value", "--addr", base, "--cacert", p.caFile); code != 0 {
		t.Fatalf("ringkv put over HTTPS: exit %d %s %s", code, out, errs)
	}
	if out, errs, code := runRingkv(t, "get", "cli-key", "--addr", base, "--cacert", p.caFile); code != 0 || out != "cli-value" {
		t.Fatalf("ringkv get over HTTPS: exit %d %q %s", code, out, errs)
	}
	if out, errs, code := runRingkv(t, "cluster", "status", "--addr", base, "--cacert", p.caFile); code != 0 || !strings.Contains(out, "n1") {
		t.Fatalf("ringkv cluster status over HTTPS: exit %d %q %s", code, out, errs)
	}
	if _, errs, code := runRingkv(t, "get", "cli-key", "--addr", base, "--timeout", "5s"); code != 2 || !strings.Contains(errs, "certificate") {
		t.Fatalf("ringkv get over HTTPS without --cacert: exit %d %q, want 2 naming the certificate", code, errs)
	}
	if _, errs, code := runRingkv(t, "get", "cli-key", "--addr", base, "--cacert", p.dir+"/missing.crt"); code != 2 || !strings.Contains(errs, "--cacert") {
		t.Fatalf("ringkv get with a missing --cacert: exit %d %q", code, errs)
	}
	if out, errs, code := runRingkv(t, "backup", "--to", t.TempDir()+"/b", "--addr", base, "--cacert", p.caFile); code != 0 || !strings.Contains(out, "n1") {
		t.Fatalf("ringkv backup over HTTPS: exit %d %q %s", code, out, errs)
	}
	// The bench, briefly.
	out, errs, code := runRingkv(t, "bench", "--addr", base, "--cacert", p.caFile, "--workload", "put", "--duration", "500ms",
		"--concurrency", "2", "--keys", "50", "--out", t.TempDir())
	if code != 0 || !strings.Contains(out+errs, "requests") {
		t.Fatalf("ringkv bench over HTTPS: exit %d\n%s\n%s", code, out, errs)
	}

	// Rotation: new files in place; new connections get the new serial.
	old, err := p.servedSerial(n1.http)
	if err != nil {
		t.Fatal(err)
	}
	next := p.ca.Issue(t, "n1")
	next.Write(t, p.dir, "n1")
	poll(t, 20*time.Second, "the rotated certificate served", func() (bool, string) {
		s, err := p.servedSerial(n1.http)
		if err != nil {
			return false, err.Error()
		}
		return s.Cmp(next.Cert.SerialNumber) == 0, fmt.Sprintf("serial %x (old %x, want %x)", s, old, next.Cert.SerialNumber)
	})
	if !n1.running() || len(n1.all) != 1 {
		t.Fatal("the node restarted")
	}
	// A bad rotation keeps the good certificate.
	tlstest.WriteFile(t, p.dir+"/n1.crt", []byte("not a certificate"))
	poll(t, 20*time.Second, "the bad certificate logged", func() (bool, string) {
		p.servedSerial(n1.http) // a handshake looks at the files
		return strings.Contains(n1.p.logs.String(), "cannot load the changed certificate"), ""
	})
	if s, err := p.servedSerial(n1.http); err != nil || s.Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("after a bad rotation: serial %v, %v; want the last good one", s, err)
	}
}

// TestMutualTLSCluster: three nodes with certificates of the cluster CA
// replicate over mutual TLS (writes at consistency=all succeed); a node
// whose certificate is of another CA, though it holds the cluster secret
// and so gets into the gossip, is refused by the others: it gets no data
// and its internode calls fail.
func TestMutualTLSCluster(t *testing.T) {
	ringkvBinary(t)
	p := newPKI(t)
	nodes := newCluster(t, 4, "--replicas", "3", "--cluster-secret", "s3cret")
	for _, c := range nodes[:3] {
		c.args = append(c.args, p.node(c.id)...)
	}
	p.startTLS(nodes[0])
	for _, c := range nodes[1:3] {
		p.startTLS(c, "--join", nodes[0].gossip)
	}
	p.waitAllAlive(nodes[:3])
	n1, n2, rogue := nodes[0], nodes[1], nodes[3]

	for i := range 20 {
		k := fmt.Sprintf("mtls/%d", i)
		if code, b, err := p.do(http.MethodPut, httpsKV(n1.http, k, "all"), "v"+strconv.Itoa(i)); err != nil || code != 204 {
			t.Fatalf("PUT %s consistency=all: %d %s %v", k, code, b, err)
		}
	}
	for _, c := range nodes[:3] {
		for i := range 20 {
			k := fmt.Sprintf("mtls/%d", i)
			if code, b, err := p.do(http.MethodGet, httpsKV(c.http, k, "one"), ""); err != nil || code != 200 || b != "v"+strconv.Itoa(i) {
				t.Fatalf("GET %s at one from %s: %d %q %v", k, c.id, code, b, err)
			}
		}
	}

	// The rogue: a certificate of another CA (naming it, valid for
	// 127.0.0.1), trusting the cluster CA.
	other := tlstest.NewCA(t, "another CA")
	cf, kf := other.Issue(t, rogue.id).Write(t, p.dir, rogue.id)
	rogue.args = append(rogue.args, "--tls-cert-file", cf, "--tls-key-file", kf, "--peer-ca-file", p.caFile)
	rogueHC := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.Pool()}}}
	rogue.args = append(rogue.args, "--join", n1.gossip)
	rogue.p = startProcIn(t, "", "", nil, append([]string{"serve", "--node-id", rogue.id, "--data-dir", rogue.dir,
		"--http-addr", rogue.http, "--gossip-addr", rogue.gossip}, rogue.args...)...)
	rogue.all = append(rogue.all, rogue.p)
	rogueGet := func(k string) (int, string) {
		resp, err := rogueHC.Get("https://" + kvURL(rogue.http, k, "one")[len("http://"):])
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	poll(t, 30*time.Second, "the rogue serving and seeing the others (gossip has the secret)", func() (bool, string) {
		resp, err := rogueHC.Get("https://" + rogue.http + "/v1/cluster")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var st peer.ClusterStatus
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, err.Error()
		}
		return len(st.Members) == 4, memberStates(st)
	})
	// Writes through the real nodes at quorum go on; the rogue's share
	// of them fails at the handshake.
	for i := range 20 {
		k := fmt.Sprintf("after/%d", i)
		if code, b, err := p.do(http.MethodPut, httpsKV(n2.http, k, "quorum"), "w"); err != nil || code != 204 {
			t.Fatalf("PUT %s at quorum with the rogue in the ring: %d %s %v", k, code, b, err)
		}
	}
	for i := range 20 {
		for _, k := range []string{fmt.Sprintf("mtls/%d", i), fmt.Sprintf("after/%d", i)} {
			if code, b := rogueGet(k); code == 200 {
				t.Fatalf("the rogue read %s: %d %q", k, code, b)
			}
		}
	}
	// A direct internode call with the rogue's certificate is refused by
	// a real node's handshake.
	rp, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{rp}, ServerName: "ringkv-internode", InsecureSkipVerify: true}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+n1.http+"/internal/gossip", nil)
	req.Header.Set("X-Ringkv-Node", rogue.id)
	if resp, err := direct.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("n1 answered an internode call with a certificate of another CA: %d %s", resp.StatusCode, b)
	}
	// The rogue's own internode calls (it pulls the ranges it now owns)
	// are refused at the handshake.
	poll(t, 30*time.Second, "the rogue's internode calls refused", func() (bool, string) {
		return strings.Contains(rogue.p.logs.String(), "tls: bad certificate"), ""
	})
}

// TestPeerAddr: with --peer-addr, internode calls go to the peers' own
// listeners (over mutual TLS here): a cluster of two replicates at
// consistency=all, and the client port answers /internal/ with 404.
func TestPeerAddr(t *testing.T) {
	ringkvBinary(t)
	p := newPKI(t)
	nodes := newCluster(t, 2, "--replicas", "2")
	taken := map[string]bool{}
	peerAddrs := map[string]string{}
	for _, c := range nodes {
		peerAddrs[c.id] = freeGossipAddr(t, taken)
		c.args = append(c.args, p.node(c.id)...)
		c.args = append(c.args, "--peer-addr", peerAddrs[c.id])
	}
	p.startTLS(nodes[0])
	p.startTLS(nodes[1], "--join", nodes[0].gossip)
	p.waitAllAlive(nodes)
	for i := range 10 {
		k := fmt.Sprintf("peer/%d", i)
		if code, b, err := p.do(http.MethodPut, httpsKV(nodes[0].http, k, "all"), "v"); err != nil || code != 204 {
			t.Fatalf("PUT %s at all: %d %s %v", k, code, b, err)
		}
		if code, b, err := p.do(http.MethodGet, httpsKV(nodes[1].http, k, "one"), ""); err != nil || code != 200 || b != "v" {
			t.Fatalf("GET %s at one from n2: %d %q %v", k, code, b, err)
		}
	}
	st, err := p.status(nodes[0].http)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.PeerAddr != peerAddrs[m.ID] {
			t.Errorf("n1 has %s's peer address as %q, want %q", m.ID, m.PeerAddr, peerAddrs[m.ID])
		}
	}
	if code, b, err := p.do(http.MethodGet, "https://"+nodes[0].http+"/internal/gossip", ""); err != nil || code != 404 {
		t.Fatalf("GET /internal/gossip on the client port: %d %s %v, want 404", code, b, err)
	}
	// The peer listener wants a certificate of the CA.
	if code, _, err := p.do(http.MethodGet, "https://"+peerAddrs["n1"]+"/healthz", ""); err == nil {
		t.Fatalf("the peer listener answered a client without a certificate: %d", code)
	}
}

// TestSignedInternodeCalls: with --cluster-secret, an internode call
// needs a signature of the documented form (computed here from the
// secret, independently of the node's code); a missing, wrong or stale
// one, or the raw secret in the old header, gets 401.
func TestSignedInternodeCalls(t *testing.T) {
	ringkvBinary(t)
	nodes := newCluster(t, 1, "--cluster-secret", "s3cret")
	n1 := nodes[0]
	n1.start()
	key := keyring.Derive([]byte("s3cret"), "").Internode
	signed := func(key []byte, method, uri, node string, at time.Time, body string) http.Header {
		ms := strconv.FormatInt(at.UnixMilli(), 10)
		sum := sha256.Sum256([]byte(body))
		m := hmac.New(sha256.New, key)
		io.WriteString(m, strings.Join([]string{"ringkv-internode-v1", method, uri, ms, node, hex.EncodeToString(sum[:])}, "\n"))
		return http.Header{"X-Ringkv-Node": {node}, "X-Ringkv-Time": {ms}, "X-Ringkv-Signature": {"v1=" + hex.EncodeToString(m.Sum(nil))}}
	}
	const uri = "/internal/gossip"
	now := time.Now()
	for _, tc := range []struct {
		what string
		h    http.Header
		want int
	}{
		{"no signature", nil, 401},
		{"the raw secret", http.Header{"X-Ringkv-Secret": {"s3cret"}}, 401},
		{"another secret's key", signed(keyring.Derive([]byte("other"), "").Internode, "GET", uri, "n9", now, ""), 401},
		{"a minute old", signed(key, "GET", uri, "n9", now.Add(-time.Minute), ""), 401},
		{"another path", signed(key, "GET", "/internal/span?lo=0&hi=0", "n9", now, ""), 401},
		{"a good signature", signed(key, "GET", uri, "n9", now, ""), 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n1.http+uri, nil)
		for k, v := range tc.h {
			req.Header[k] = v
		}
		resp, err := chc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.what, resp.StatusCode, b, tc.want)
		}
	}
}
