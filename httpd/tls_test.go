package httpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/httpd/tlstest"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/ring"
)

// TestCertReloader: a changed pair is served from the next look at the
// files, at most once a second; a pair that does not load (garbage, a
// certificate without its key, a file gone) is logged and the old one
// kept.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	a := ca.Issue(t, "n1")
	cf, kf := a.Write(t, dir, "node")
	var logs syncBuf
	r, err := NewCertReloader(cf, kf, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.w.now = func() time.Time { return now }
	r.w.mu.next = now.Add(time.Second)
	tick := func() { now = now.Add(time.Second) }
	serial := func() *big.Int {
		t.Helper()
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber
	}
	want := func(what string, p tlstest.Pair) {
		t.Helper()
		if got := serial(); got.Cmp(p.Cert.SerialNumber) != 0 {
			t.Fatalf("%s: serving serial %x, want %x\nlogs:\n%s", what, got, p.Cert.SerialNumber, logs.String())
		}
	}
	want("at start", a)

	b := ca.Issue(t, "n1")
	b.Write(t, dir, "node")
	want("within the second", a)
	tick()
	want("a second later", b)

	tlstest.WriteFile(t, cf, []byte("garbage"))
	tick()
	want("after a garbage certificate", b)
	if !strings.Contains(logs.String(), "cannot load the changed certificate") {
		t.Fatalf("a bad certificate is not logged:\n%s", logs.String())
	}
	c := ca.Issue(t, "n1")
	tlstest.WriteFile(t, cf, c.CertPEM) // its key not yet there
	tick()
	want("with a certificate whose key is not there yet", b)
	tlstest.WriteFile(t, kf, c.KeyPEM)
	tick()
	want("with its key", c)
	if err := os.Remove(cf); err != nil {
		t.Fatal(err)
	}
	tick()
	want("with the certificate file gone", c)
	if !strings.Contains(logs.String(), "cannot check certificate") {
		t.Fatalf("a missing file is not logged:\n%s", logs.String())
	}
	d := ca.Issue(t, "n1")
	d.Write(t, dir, "node")
	tick()
	want("once the file is back", d)

	if _, err := NewCertReloader(cf, filepath.Join(dir, "missing.key"), nil); err == nil {
		t.Fatal("a pair without its key file loads")
	}
}

// tlsNode is one node's certificate files under a CA.
type tlsNode struct {
	id        string
	nt        *NodeTLS
	tr        *Transport
	cert, key string
}

func newTLSNode(t *testing.T, ca *tlstest.CA, caFile, dir, id string, separatePeer bool) *tlsNode {
	t.Helper()
	cf, kf := ca.Issue(t, id).Write(t, dir, id)
	nt, err := LoadNodeTLS(TLSFiles{CertFile: cf, KeyFile: kf, PeerCAFile: caFile}, separatePeer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsNode{id: id, nt: nt, cert: cf, key: kf}
}

func (n *tlsNode) transport(t *testing.T, claim string, peerAddr func(string) string) *Transport {
	tr := mustTransport(t, TransportConfig{NodeID: claim, TLS: n.nt.Transport, PeerAddr: peerAddr})
	t.Cleanup(tr.Close)
	return tr
}

// TestMutualTLS: on a shared port, internode calls need a certificate of
// the cluster CA that names the node the call claims; a node of another
// CA is refused at the handshake (either way round); clients need no
// certificate for the client API.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cluster")
	caFile := ca.WriteCA(t, dir, "ca")
	n1 := newTLSNode(t, ca, caFile, dir, "n1", false)
	n2 := newTLSNode(t, ca, caFile, dir, "n2", false)
	ts, addr := newTCPClusterTestServerPeerCert(t, Config{NodeID: "n1", TLS: n1.nt.Client}, n1.nt.MutualTLS)
	if !n1.nt.MutualTLS || n1.nt.Peer != nil {
		t.Fatalf("NodeTLS %+v: want mutual TLS on the shared port", n1.nt)
	}
	ctx := testCtx(t, 10*time.Second)

	good := n2.transport(t, "n2", nil)
	if err := good.Apply(ctx, addr, testMutations("k", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := good.Read(ctx, addr, []byte("k0000")); err != nil {
		t.Fatal(err)
	}
	if _, err := good.GossipAddrs(ctx, addr); err != nil {
		t.Fatal(err)
	}
	rc, err := good.OpenSpan(ctx, addr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if _, err := good.Status(ctx, addr); err != nil {
		t.Fatal(err)
	}

	other := tlstest.NewCA(t, "other")
	otherFile := other.WriteCA(t, dir, "other-ca")
	liar := newTLSNode(t, other, otherFile, dir, "n4", false)
	liarTrusting := newTLSNode(t, other, caFile, dir, "n5", false) // trusts the cluster CA; its own cert is not of it
	for _, tc := range []struct {
		what string
		tr   *Transport
		want string
	}{
		{"a certificate naming another node", n2.transport(t, "n3", nil), "401"},
		{"a certificate of another CA", liar.transport(t, "n4", nil), "certificate"},
		// Under TLS 1.3 the caller hears of the refusal as a closed connection.
		{"a certificate of another CA, trusting ours", liarTrusting.transport(t, "n5", nil), ""},
		{"plain HTTP", mustTransport(t, TransportConfig{NodeID: "n2"}), ""},
	} {
		if err := tc.tr.Apply(ctx, addr, testMutations("x", 1, 1)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Apply: %v, want an error mentioning %q", tc.what, err, tc.want)
		}
		if _, err := tc.tr.OpenSpan(ctx, addr, 0, 0); err == nil {
			t.Errorf("%s: OpenSpan: no error", tc.what)
		}
		tc.tr.Close()
	}
	if applies, _ := ts.cl.counts(); applies != 1 {
		t.Errorf("%d applies reached the node, want the good one only", applies)
	}

	// A client trusting the CA, without a certificate: the client API
	// answers, /internal/ does not.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer hc.CloseIdleConnections()
	for target, want := range map[string]int{"/healthz": 200, "/internal/gossip": 401} {
		resp, err := hc.Get("https://" + addr + target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a client certificate: %d, want %d", target, resp.StatusCode, want)
		}
	}
	// Plain HTTP to a TLS port gets nothing.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP to the TLS port answered 200")
		}
	}
}

// TestPeerListener: with SeparatePeer, /internal/ is on the peer listener
// only (404 on the client port), the peer listener has nothing else but
// /v1/cluster and /healthz, requires a certificate of the CA, and
// internode calls go to a member's peer address (TransportConfig.PeerAddr).
func TestPeerListener(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cluster")
	caFile := ca.WriteCA(t, dir, "ca")
	n1 := newTLSNode(t, ca, caFile, dir, "n1", true)
	n2 := newTLSNode(t, ca, caFile, dir, "n2", true)
	ts, addr := newTCPClusterTestServerPeerCert(t, Config{NodeID: "n1", TLS: n1.nt.Client, PeerTLS: n1.nt.Peer,
		SeparatePeer: true}, n1.nt.MutualTLS)
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	paddr := pln.Addr().String()
	peerServed := make(chan error, 1)
	go func() { peerServed <- ts.ServePeer(pln) }()
	defer func() {
		ts.stop(t)
		if err := <-peerServed; err != nil {
			t.Errorf("ServePeer: %v", err)
		}
	}()
	ctx := testCtx(t, 10*time.Second)

	direct := n2.transport(t, "n2", nil)
	if err := direct.Apply(ctx, addr, testMutations("k", 1, 1)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Apply to the client port: %v, want 404", err)
	}
	viaPeer := n2.transport(t, "n2", func(a string) string {
		if a == addr {
			return paddr
		}
		return ""
	})
	if err := viaPeer.Apply(ctx, addr, testMutations("k", 1, 1)); err != nil {
		t.Fatalf("Apply to the peer address: %v", err)
	}
	if _, err := viaPeer.Status(ctx, addr); err != nil {
		t.Fatalf("Status at the peer address: %v", err)
	}
	rc, err := viaPeer.OpenSpan(ctx, addr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()

	cert := n2.nt.Transport.GetClientCertificate
	c, _ := cert(nil)
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{*c}}}}
	defer withCert.CloseIdleConnections()
	for _, tc := range []struct {
		addr, target string
		want         int
	}{
		{addr, "/internal/gossip", 404},
		{addr, "/healthz", 200},
		{paddr, "/v1/kv/k", 404},
		{paddr, "/healthz", 200},
		{paddr, "/internal/gossip", 401}, // no node header
	} {
		resp, err := withCert.Get("https://" + tc.addr + tc.target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s%s: %d, want %d", tc.addr, tc.target, resp.StatusCode, tc.want)
		}
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer noCert.CloseIdleConnections()
	if resp, err := noCert.Get("https://" + paddr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("the peer listener answers a client without a certificate: %d", resp.StatusCode)
	}
}

// TestTransportSendsNoSecret: every kind of internode call carries a
// signature that verifies against what went on the wire, and never the
// raw secret.
func TestTransportSendsNoSecret(t *testing.T) {
	const secret = "the-raw-cluster-secret"
	secrets := keyring.New("", []byte(secret))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	type captured struct {
		raw []byte
		req *http.Request
		bod []byte
	}
	got := make(chan captured, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var raw bytes.Buffer
				br := bufio.NewReader(io.TeeReader(c, &raw))
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					got <- captured{bytes.Clone(raw.Bytes()), req, body}
					raw.Reset()
					io.WriteString(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	defer func() { ln.Close(); <-done }()
	addr := ln.Addr().String()
	tr := mustTransport(t, TransportConfig{NodeID: "n7", Secrets: secrets})
	defer tr.Close()
	ctx := testCtx(t, 10*time.Second)
	calls := map[string]func(){
		"Apply":       func() { tr.Apply(ctx, addr, testMutations("k", 3, 1)) },
		"Read":        func() { tr.Read(ctx, addr, []byte("k")) },
		"Scan":        func() { tr.Scan(ctx, addr, peer.LocalScan{Limit: 1}) },
		"GossipAddrs": func() { tr.GossipAddrs(ctx, addr) },
		"OpenSpan": func() {
			if rc, err := tr.OpenSpan(ctx, addr, 0x10, 0x20); err == nil {
				rc.Close()
			}
		},
		"Merkle": func() { tr.Merkle(ctx, addr, ring.Range{Start: 1, End: 2}, 3) },
	}
	for name, call := range calls {
		call()
		c := <-got
		if bytes.Contains(c.raw, []byte(secret)) {
			t.Errorf("%s sent the raw secret:\n%s", name, c.raw)
		}
		h := c.req.Header
		err := verifySignature(secrets.All(), []byte(c.req.Method), []byte(c.req.RequestURI), []byte(h.Get(NodeHeader)),
			[]byte(h.Get(TimeHeader)), []byte(h.Get(SignatureHeader)), c.bod, time.Now(), DefaultSignatureWindow)
		if err != nil || h.Get(NodeHeader) != "n7" {
			t.Errorf("%s: node %q, signature does not verify against what was sent: %v\n%s", name, h.Get(NodeHeader), err, c.raw)
		}
	}
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSharedPortPeerCertificate: on a shared port whose client
// certificate is not of the cluster CA (a public one, say), internode
// calls ask for the peer certificate by server name and get it; other
// clients get the client certificate.
func TestSharedPortPeerCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cluster")
	caFile := ca.WriteCA(t, dir, "ca")
	public := tlstest.NewCA(t, "public")
	pub := public.Issue(t, "n1")
	cf, kf := pub.Write(t, dir, "public")
	pcf, pkf := ca.Issue(t, "n1").Write(t, dir, "n1")
	nt, err := LoadNodeTLS(TLSFiles{CertFile: cf, KeyFile: kf, PeerCertFile: pcf, PeerKeyFile: pkf, PeerCAFile: caFile}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := newTCPClusterTestServerPeerCert(t, Config{NodeID: "n1", TLS: nt.Client}, nt.MutualTLS)
	n2 := newTLSNode(t, ca, caFile, dir, "n2", false)
	if err := n2.transport(t, "n2", nil).Apply(testCtx(t, 10*time.Second), addr, testMutations("k", 1, 1)); err != nil {
		t.Fatalf("internode call to a port with a public client certificate: %v", err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: public.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a client trusting the public CA: %v", err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(pub.Cert.SerialNumber) != 0 {
		t.Fatalf("a client is served serial %x, want the client certificate's %x", got, pub.Cert.SerialNumber)
	}
}
