package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/matrix"
)

// tlsSetups are the node's three setups: plain HTTP, HTTPS, and HTTPS
// with --auth-file and a bearer token on every request.
var tlsSetups = []string{"plain", "tls", "auth"}

// tlsRuns are the six runs of a round, in tls.sh's order: "get:plain" ...
func tlsRuns() []string {
	var out []string
	for _, op := range []string{"get", "put"} {
		for _, s := range tlsSetups {
			out = append(out, op+":"+s)
		}
	}
	return out
}

// tlsRun is one wrk run: a line of tls.sh's output.
type tlsRun struct {
	RPS   float64
	P99US int64
	CPU   float64 // the node's µs per request
}

// tlsNode is the one node of `compare tls`, restarted for each run on the
// same data directory in the run's setup.
type tlsNode struct {
	h                  *harness
	c                  wrkConfig
	addr, gossip, dir  string
	cert, key, auth    string
	token              string
	rt                 *http.Transport // trusts the run's CA
	certPool           *x509.CertPool
	wrkEnv, wrkEnvAuth []string
}

func runTLS(ctx context.Context, e *runEnv, c wrkConfig) error {
	if err := c.check(); err != nil {
		return err
	}
	h := e.h
	if err := h.buildWithWrk(ctx, "./cmd/ringkv", "./bench/cmd/preload"); err != nil {
		return err
	}
	n, err := newTLSNode(h, c)
	if err != nil {
		return err
	}
	defer n.rt.CloseIdleConnections()
	p, err := n.start(ctx, "plain")
	if err != nil {
		return err
	}
	if err := h.preload(ctx, c.preload(n.addr)); err != nil {
		return err
	}
	h.stop(p)
	results := map[string][]tlsRun{}
	for r := 1; r <= c.Rounds; r++ {
		order := tlsRuns()
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, run := range order {
			op, setup, _ := strings.Cut(run, ":")
			x, err := n.measure(ctx, op, setup)
			if err != nil {
				return fmt.Errorf("%s %s, round %d: %w", op, setup, r, err)
			}
			results[run] = append(results[run], x)
		}
	}
	rep := tlsReport{Date: stamp(time.Now()), Config: c, CPUs: runtime.NumCPU(), Commit: gitCommit(e.root, false), Results: results}
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	return e.writeResults("tls-"+rep.Date, md, js)
}

// newTLSNode makes the node's certificates, token and auth file in the
// temp dir and picks its ports.
func newTLSNode(h *harness, c wrkConfig) (*tlsNode, error) {
	n := &tlsNode{h: h, c: c, dir: filepath.Join(h.work, "data")}
	var err error
	if n.certPool, n.cert, n.key, err = benchCerts(h.work); err != nil {
		return nil, fmt.Errorf("cannot make the certificates: %w", err)
	}
	var line string
	if n.token, line, err = benchToken(); err != nil {
		return nil, err
	}
	n.auth = filepath.Join(h.work, "auth")
	if err := os.WriteFile(n.auth, []byte(line), 0o600); err != nil {
		return nil, err
	}
	n.rt = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.certPool}}
	ports := map[int]bool{}
	if n.addr, err = freeAddr(ports); err != nil {
		return nil, err
	}
	if n.gossip, err = freeAddr(ports); err != nil {
		return nil, err
	}
	n.wrkEnv, n.wrkEnvAuth = c.env(), c.env("TOKEN="+n.token)
	return n, nil
}

func tlsScheme(setup string) string {
	if setup == "plain" {
		return "http"
	}
	return "https"
}

// start runs the node in setup and waits until /healthz answers over its
// scheme (it needs no token).
func (n *tlsNode) start(ctx context.Context, setup string) (*proc, error) {
	argv := []string{filepath.Join(n.h.bin, "ringkv"), "serve", "--data-dir", n.dir, "--http-addr", n.addr,
		"--gossip-addr", n.gossip, "--node-id", "n1"}
	if setup != "plain" {
		argv = append(argv, "--tls-cert-file", n.cert, "--tls-key-file", n.key)
	}
	if setup == "auth" {
		argv = append(argv, "--auth-file", n.auth)
	}
	argv = append(argv, n.c.ringkvArgs()...)
	p, err := n.h.start("node-"+setup, nil, argv...)
	if err != nil {
		return nil, err
	}
	url := tlsScheme(setup) + "://" + n.addr + "/healthz"
	return p, waitFor(ctx, p, 30*time.Second, "the node healthy at "+url, func() bool {
		_, err := getURL(ctx, n.rt, url)
		return err == nil
	})
}

// measure starts the node in setup, runs wrk op against it (keep-alive:
// the handshake is paid once per connection) and stops it.
func (n *tlsNode) measure(ctx context.Context, op, setup string) (tlsRun, error) {
	h, c := n.h, n.c
	p, err := n.start(ctx, setup)
	if err != nil {
		return tlsRun{}, err
	}
	defer h.stop(p)
	env := n.wrkEnv
	if setup == "auth" {
		env = n.wrkEnvAuth
	}
	w := c.run(op, n.addr, env)
	w.Scheme = tlsScheme(setup)
	res, cpu, err := h.measureWrk(ctx, w, []*proc{p})
	if err != nil {
		return tlsRun{}, err
	}
	appendFile(filepath.Join(h.work, "wrk-"+op+"-"+setup+".txt"), res.Output)
	if res.Non2xx > 0 || res.Errors > 0 {
		return tlsRun{}, fmt.Errorf("%d non-2xx answers, %d errors", res.Non2xx, res.Errors)
	}
	x := tlsRun{RPS: round2(res.RPS), P99US: res.P99US, CPU: cpu}
	h.logf("%s", x.line(op, setup))
	return x, nil
}

func (r tlsRun) line(op, setup string) string {
	return fmt.Sprintf("%s %s: %.2f req/s, p99 %s, server CPU %.1f us/req", op, setup, r.RPS, p99ms(r.P99US), r.CPU)
}

type tlsReport struct {
	Date, Commit string
	Config       wrkConfig
	CPUs         int
	Results      map[string][]tlsRun // "get:plain" -> its rounds
}

// median is each figure's matrix.Median over the rounds of run.
func (r *tlsReport) median(run string) tlsRun {
	rs := r.Results[run]
	var rps, p99, cpu []float64
	for _, x := range rs {
		rps, p99, cpu = append(rps, x.RPS), append(p99, float64(x.P99US)), append(cpu, x.CPU)
	}
	return tlsRun{RPS: matrix.Median(rps), P99US: int64(matrix.Median(p99)), CPU: matrix.Median(cpu)}
}

// render writes results/tls-20261202.md's shape (tls.sh's output in a
// code block, under the command) and the same figures as JSON.
func (r *tlsReport) render() (string, []byte, error) {
	c := r.Config
	var md, lines, ratios strings.Builder
	fmt.Fprintf(&md, "# TLS and token auth vs plain HTTP, one node (%s)\n\n", r.Date)
	fmt.Fprintf(&md, "Command: `go run ./bench/cmd/compare tls %s`, %d CPUs, commit %s (medians over %d rounds, the order reversed every other round; the node restarted on the same data dir for each run, plain, with --tls-cert-file, and with --auth-file too; wrk -t%d -c%d on the same machine, keep-alive; ECDSA P-256; PUT with fsync).\n\n",
		c.flagLine(), r.CPUs, r.Commit, c.Rounds, c.Threads, c.Conns)
	var doc ordered
	for _, op := range []string{"get", "put"} {
		var figures ordered
		m := map[string]tlsRun{}
		for _, s := range tlsSetups {
			m[s] = r.median(op + ":" + s)
			lines.WriteString(m[s].line(op, s) + "\n")
			var raw strings.Builder
			for _, x := range r.Results[op+":"+s] {
				fmt.Fprintf(&raw, "%.2f %s %.2f;", x.RPS, p99ms(x.P99US), x.CPU)
			}
			figures.add(s, ordered{{"rps", jnum(m[s].RPS)}, {"p99", p99ms(m[s].P99US)}, {"cpu_us", jnum(m[s].CPU)}, {"raw", raw.String()}})
		}
		tq, aq := ratio(m["tls"].RPS, m["plain"].RPS), ratio(m["auth"].RPS, m["plain"].RPS)
		figures.add("tls_vs_plain", jnum(tq))
		figures.add("auth_vs_plain", jnum(aq))
		doc.add(op, figures)
		fmt.Fprintf(&ratios, "%s TLS/plain: %.2f, TLS+token/plain: %.2f\n", op, tq, aq)
	}
	fmt.Fprintf(&md, "```\n%s%s```\n", lines.String(), ratios.String())
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}

// benchCerts writes, as tls.sh's openssl did, a CA (ca.crt) and node n1's
// certificate for DNS n1 and IP 127.0.0.1 signed by it (n1.crt, n1.key),
// ECDSA P-256, valid for a day, into dir, and returns a pool that trusts
// the CA.
func benchCerts(dir string) (pool *x509.CertPool, certFile, keyFile string, err error) {
	now := time.Now()
	ca, caKey, err := newCert(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, nil)
	if err != nil {
		return nil, "", "", err
	}
	leaf, key, err := newCert(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "n1"},
		DNSNames: []string{"n1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, ca, caKey)
	if err != nil {
		return nil, "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{filepath.Join(dir, "ca.crt"), "CERTIFICATE", ca.Raw}, {certFile, "CERTIFICATE", leaf.Raw}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return nil, "", "", err
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile, nil
}

// newCert makes a P-256 key and the certificate of tmpl for it, signed by
// parent's key (nil: self-signed).
func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// benchToken returns a random bearer token (32 bytes, hex, as `openssl
// rand -hex 32`) and the auth file line that grants it admin.
func benchToken() (token, line string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, "admin sha256:" + hex.EncodeToString(sum[:]) + "\n", nil
}
