package httpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TLS of a node (README.md, "TLS"):
//
//   - The client port serves TLS with the client certificate pair when one
//     is given; otherwise, if internode TLS is on and peers share the port
//     (no separate peer listener), with the peer pair.
//   - Internode calls use the peer pair (by default the client pair). With
//     a cluster CA (PeerCAFile) they are mutual TLS: the caller presents
//     its certificate and verifies that the callee's chains to the CA, and
//     the callee verifies that the caller's does and names, as its Common
//     Name or one of its DNS names, the node id the call claims (NodeHeader).
//     Nodes are reached by address, so a callee's certificate is not
//     checked against a host name: it needs only chain to the CA. Without a
//     CA, a callee's certificate is verified as any HTTPS server's (the
//     system roots, the host of its address).
//   - On a shared port, a caller asks for the peer certificate by its TLS
//     server name (InternodeServerName), so the client certificate can be a
//     public one while the peers see the cluster CA's.
//   - Certificate files (and the CA file) are watched: a handshake checks
//     them at most once a second, and a pair whose size or modification
//     time changed is loaded; a pair that does not load is logged and the
//     old one kept.

// InternodeServerName is the TLS server name (SNI) internode calls send
// under a cluster CA, so that a shared port presents its peer certificate.
const InternodeServerName = "ringkv-internode"

// reloadInterval is the least time between two looks at a watched file.
const reloadInterval = time.Second

// fileStamp is what tells a changed file: its size and modification time.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// watched is a value loaded from files, loaded again when they change.
// Get is safe for concurrent use and never blocks on another caller's
// check.
type watched[T any] struct {
	files    []string
	load     func() (T, error)
	lg       *slog.Logger
	what     string
	interval time.Duration
	now      func() time.Time

	cur atomic.Pointer[T]
	mu  struct {
		sync.Mutex
		next   time.Time
		stamps []fileStamp
	}
}

func newWatched[T any](what string, files []string, load func() (T, error), lg *slog.Logger) (*watched[T], error) {
	w := &watched[T]{files: files, load: load, lg: lg, what: what, interval: reloadInterval, now: time.Now}
	stamps, err := w.stamps()
	if err != nil {
		return nil, err
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.cur.Store(&v)
	w.mu.stamps = stamps
	w.mu.next = w.now().Add(w.interval)
	return w, nil
}

func (w *watched[T]) stamps() ([]fileStamp, error) {
	out := make([]fileStamp, len(w.files))
	for i, f := range w.files {
		s, err := stampOf(f)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// Get returns the current value, first loading it again if its files
// changed and they were last looked at over interval ago.
func (w *watched[T]) Get() T {
	// NB: one handshake looks; the others meanwhile take the current
	// value rather than wait on the disk.
	if w.mu.TryLock() {
		if now := w.now(); !now.Before(w.mu.next) {
			w.mu.next = now.Add(w.interval)
			w.reloadLocked()
		}
		w.mu.Unlock()
	}
	return *w.cur.Load()
}

// reloadLocked loads the value again if a file changed.
// REQUIRES: w.mu.
func (w *watched[T]) reloadLocked() {
	stamps, err := w.stamps()
	if err != nil {
		w.lg.Error("cannot check "+w.what+" for changes; keeping the one loaded", "err", err)
		return
	}
	if slices.Equal(stamps, w.mu.stamps) {
		return
	}
	// Noted before loading, so that a bad pair is reported once, not on
	// every handshake; it is tried again when a file changes again.
	w.mu.stamps = stamps
	v, err := w.load()
	if err != nil {
		w.lg.Error("cannot load the changed "+w.what+"; keeping the one loaded", "err", err)
		return
	}
	w.cur.Store(&v)
	w.lg.Info("loaded the changed " + w.what)
}

// CertReloader serves a certificate pair from its files, loaded again
// when they change (at most once a second, on a handshake). It is safe for
// concurrent use.
type CertReloader struct {
	w *watched[*tls.Certificate]
}

// NewCertReloader loads the pair certFile, keyFile (PEM), failing if it
// does not load.
func NewCertReloader(certFile, keyFile string, lg *slog.Logger) (*CertReloader, error) {
	if lg == nil {
		lg = slog.Default()
	}
	w, err := newWatched("certificate "+certFile, []string{certFile, keyFile}, func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return &c, nil
	}, lg)
	if err != nil {
		return nil, fmt.Errorf("cannot load the certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &CertReloader{w}, nil
}

// Certificate returns the current certificate.
func (r *CertReloader) Certificate() *tls.Certificate { return r.w.Get() }

// GetCertificate is tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.w.Get(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate.
func (r *CertReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.w.Get(), nil
}

// CAPool is a pool of CA certificates from a PEM file, loaded again when
// the file changes (at most once a second, on a handshake). It is safe for
// concurrent use.
type CAPool struct {
	w *watched[*x509.CertPool]
}

// NewCAPool loads the PEM certificates of file.
func NewCAPool(file string, lg *slog.Logger) (*CAPool, error) {
	if lg == nil {
		lg = slog.Default()
	}
	w, err := newWatched("CA file "+file, []string{file}, func() (*x509.CertPool, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			return nil, errors.New("no PEM certificate in it")
		}
		return p, nil
	}, lg)
	if err != nil {
		return nil, fmt.Errorf("cannot load the CA file %s: %w", file, err)
	}
	return &CAPool{w}, nil
}

// Pool returns the current pool.
func (p *CAPool) Pool() *x509.CertPool { return p.w.Get() }

// verify checks that the leaf of certs chains to the pool for usage.
func (p *CAPool) verify(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("no certificate")
	}
	opts := x509.VerifyOptions{Roots: p.Pool(), Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{usage}}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return fmt.Errorf("certificate %q is not of the cluster CA: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// TLSFiles names a node's certificate files; "" means none.
type TLSFiles struct {
	// CertFile and KeyFile are the client port's pair.
	CertFile, KeyFile string
	// PeerCertFile and PeerKeyFile are the internode pair; the default is
	// CertFile and KeyFile.
	PeerCertFile, PeerKeyFile string
	// PeerCAFile holds the cluster CA: with it, internode calls are
	// mutual TLS.
	PeerCAFile string
	// ClientCAFile holds the CA of client certificates: with it, the
	// client port asks clients for a certificate (optional: tokens still
	// work) and a verified one names its holder to --auth-file's cn:
	// lines. It may be the same file as PeerCAFile.
	ClientCAFile string
}

// NodeTLS is the TLS configuration of a node, built by LoadNodeTLS: nil
// configs mean plain HTTP.
type NodeTLS struct {
	// Client is the client port's (Config.TLS).
	Client *tls.Config
	// Peer is the separate peer listener's (Config.PeerTLS).
	Peer *tls.Config
	// Transport is internode calls' (peer/transport's Config.TLS).
	Transport *tls.Config
	// MutualTLS is set when internode calls carry certificates of the
	// cluster CA (peer/transport's Config.RequirePeerCert).
	MutualTLS bool
	// ClientIdentity, with a client CA, names the holder of a client
	// certificate that chains to it (Config.ClientIdentity).
	ClientIdentity func(cs *tls.ConnectionState) (string, bool)
}

// LoadNodeTLS loads f's files and builds the node's TLS configuration;
// separatePeer says whether internode calls come to a listener of their
// own (--peer-addr) rather than to the client port.
func LoadNodeTLS(f TLSFiles, separatePeer bool, lg *slog.Logger) (*NodeTLS, error) {
	if lg == nil {
		lg = slog.Default()
	}
	nc, err := loadNodeCerts(f, lg)
	if err != nil {
		return nil, err
	}
	out := &NodeTLS{MutualTLS: nc.ca != nil}
	if nc.clientCA != nil {
		out.ClientIdentity = newClientIdentity(nc.clientCA)
	}
	if nc.client != nil || (nc.peer != nil && !separatePeer) {
		out.Client = nc.clientPort(separatePeer)
	}
	if nc.peer != nil && separatePeer {
		out.Peer = nc.peerPort()
	}
	if nc.peer != nil {
		out.Transport = nc.transport()
	}
	return out, nil
}

// nodeCerts is what LoadNodeTLS reads from TLSFiles, each nil when not
// given: the client port's certificate, the one this node presents to
// and on internode calls (the client port's, unless a peer certificate is
// given), the cluster CA and the client CA.
type nodeCerts struct {
	client, peer *CertReloader
	ca, clientCA *CAPool
}

// loadNodeCerts checks that f's files come in pairs and that each CA has
// the certificate it needs, and loads them.
func loadNodeCerts(f TLSFiles, lg *slog.Logger) (*nodeCerts, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("a certificate needs its key and a key its certificate")
	}
	if (f.PeerCertFile == "") != (f.PeerKeyFile == "") {
		return nil, errors.New("a peer certificate needs its key and a peer key its certificate")
	}
	nc := &nodeCerts{}
	var err error
	if f.CertFile != "" {
		if nc.client, err = NewCertReloader(f.CertFile, f.KeyFile, lg); err != nil {
			return nil, err
		}
		nc.peer = nc.client
	}
	if f.PeerCertFile != "" {
		if nc.peer, err = NewCertReloader(f.PeerCertFile, f.PeerKeyFile, lg); err != nil {
			return nil, err
		}
	}
	if f.PeerCAFile != "" {
		if nc.peer == nil {
			return nil, errors.New("a cluster CA needs a node certificate to present")
		}
		if nc.ca, err = NewCAPool(f.PeerCAFile, lg); err != nil {
			return nil, err
		}
	}
	if f.ClientCAFile != "" {
		if f.CertFile == "" {
			return nil, errors.New("a client CA needs the client port's certificate (--tls-cert-file)")
		}
		if nc.clientCA, err = NewCAPool(f.ClientCAFile, lg); err != nil {
			return nil, err
		}
	}
	return nc, nil
}

// baseServerTLS is what every server config of the node starts from.
func baseServerTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}

// verifyCaller checks a caller's certificate, if any, against the cluster
// CA; the route then requires one (Config.RequirePeerCert).
func (nc *nodeCerts) verifyCaller(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	return nc.ca.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
}

// clientPort is the client port's server config. It presents the client
// certificate, and the peer certificate to internode callers when they
// share the port (or when there is no client certificate).
func (nc *nodeCerts) clientPort(separatePeer bool) *tls.Config {
	client, peerCert, ca, clientCA := nc.client, nc.peer, nc.ca, nc.clientCA
	c := baseServerTLS()
	c.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if client == nil || (!separatePeer && h.ServerName == InternodeServerName) {
			return peerCert.Certificate(), nil
		}
		return client.Certificate(), nil
	}
	sharedCA := ca != nil && !separatePeer
	if sharedCA || clientCA != nil {
		// Clients need no certificate; /internal/ routes do. One
		// presented must chain to the client CA or, on a shared
		// port, to the cluster CA.
		c.ClientAuth = tls.RequestClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			var err error
			if clientCA != nil {
				if err = clientCA.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth); err == nil {
					return nil
				}
			}
			if sharedCA {
				return nc.verifyCaller(cs)
			}
			return err
		}
	}
	return c
}

// peerPort is the separate peer listener's server config: the peer
// certificate, and with a cluster CA, a caller's certificate required.
func (nc *nodeCerts) peerPort() *tls.Config {
	c := baseServerTLS()
	c.GetCertificate = nc.peer.GetCertificate
	if nc.ca != nil {
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyConnection = nc.verifyCaller
	}
	return c
}

// transport is internode calls' client config: with a cluster CA, they
// present the peer certificate and check the callee's against the CA.
func (nc *nodeCerts) transport() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca, peerCert := nc.ca, nc.peer; ca != nil {
		c.GetClientCertificate = peerCert.GetClientCertificate
		c.ServerName = InternodeServerName
		// The callee is checked against the CA below, not against
		// the host name.
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return ca.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		}
	}
	return c
}

// newClientIdentity returns the holder of a client certificate that
// chains to ca: its CommonName. A verification costs tens of
// microseconds, so the answer is kept per certificate (a connection's
// certificate is one parsed value for its whole life), up to a bound.
func newClientIdentity(ca *CAPool) func(cs *tls.ConnectionState) (string, bool) {
	const maxKept = 4096
	var mu sync.Mutex
	kept := map[*x509.Certificate]bool{}
	pool := ca.Pool()
	return func(cs *tls.ConnectionState) (string, bool) {
		if cs == nil || len(cs.PeerCertificates) == 0 {
			return "", false
		}
		leaf := cs.PeerCertificates[0]
		mu.Lock()
		if p := ca.Pool(); p != pool {
			pool, kept = p, map[*x509.Certificate]bool{} // the CA file changed
		}
		ok, known := kept[leaf]
		mu.Unlock()
		if !known {
			ok = ca.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth) == nil
			mu.Lock()
			if len(kept) >= maxKept {
				clear(kept)
			}
			kept[leaf] = ok
			mu.Unlock()
		}
		if !ok {
			return "", false
		}
		return leaf.Subject.CommonName, true
	}
}
