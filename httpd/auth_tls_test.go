package httpd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testCA is an in-test certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue returns a certificate for cn, for a server (with an IP SAN) or a
// client.
func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TestAuthClientCert: a verified client certificate's CommonName maps to
// the roles of its cn: lines; a bearer token, when sent, decides instead;
// a certificate the server did not verify names nobody.
func TestAuthClientCert(t *testing.T) {
	ca, other := newTestCA(t, "ringkv test CA"), newTestCA(t, "another CA")
	a, err := NewStaticAuth([]byte(testAuthFile() + "admin cn:ops\nreadwrite cn:app app/\n"))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(clientAuth tls.ClientAuthType) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Skip(err)
		}
		tln := tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{ca.issue(t, "node", true)},
			ClientCAs:    ca.pool(), ClientAuth: clientAuth,
		})
		startTestServer(t, Config{Auth: a}, tln, true)
		return ln.Addr().String()
	}
	verified, unverified := serve(tls.VerifyClientCertIfGiven), serve(tls.RequestClientCert)
	client := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: ca.pool()}
		if cert != nil {
			// Always sent: Go's client would leave out a certificate
			// whose CA the server does not name.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	ops, app, forged := ca.issue(t, "ops", false), ca.issue(t, "app", false), other.issue(t, "ops", false)
	do := func(hc *http.Client, addr, method, path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader("v"))
		req.Header.Set(RequestHeader, "1")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return -1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name         string
		hc           *http.Client
		addr         string
		method, path string
		token        string
		want         int
	}{
		{"no certificate", client(nil), verified, "GET", "/v1/kv/app/x", "", 401},
		{"ops is admin", client(&ops), verified, "POST", "/v1/admin/compact", "", 200},
		{"app writes app/", client(&app), verified, "PUT", "/v1/kv/app/x", "", 204},
		{"app outside app/", client(&app), verified, "PUT", "/v1/kv/other", "", 403},
		{"app is no admin", client(&app), verified, "POST", "/v1/admin/compact", "", 403},
		{"a token decides over the certificate", client(&ops), verified, "POST", "/v1/admin/compact", "tok-read", 403},
		{"a bad token is not rescued by the certificate", client(&ops), verified, "GET", "/v1/kv/app/x", "tok-nobody", 401},
		{"another CA's certificate fails the handshake", client(&forged), verified, "GET", "/v1/kv/app/x", "", -1},
		{"an unverified certificate names nobody", client(&forged), unverified, "GET", "/v1/kv/app/x", "", 401},
		{"even one of the right CA, unless verified", client(&ops), unverified, "GET", "/v1/kv/app/x", "", 401},
	} {
		if got := do(c.hc, c.addr, c.method, c.path, c.token); got != c.want {
			t.Errorf("%s: %s %s = %d, want %d", c.name, c.method, c.path, got, c.want)
		}
	}
}
