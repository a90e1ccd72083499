package httpd

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
)

// The membership proof /add-node asks for before it calls a node with a
// credential:
//
//	GET /internal/hello?nonce=HEX
//	200 {"id":ID,"addrs":[ADDR,...],"mac":HEX}
//
// addrs are the addresses the answerer knows itself by: the local
// address of the connection the question came on, and its configured
// HTTP address. mac is HMAC-SHA256 under the cluster's Join key
// (keyring.Derive) of helloDomain, the nonce, the node's id and each
// address, each after a NUL. The asker draws the nonce, so an answer
// cannot be replayed, and accepts only a proof naming the address it
// dialled: a host that relays the challenge to a real member gets back a
// proof of that member's addresses, not its own. The route carries no
// credential either way (that is its point), so it sits outside the
// /internal/ credential check.

const (
	helloPath   = "/internal/hello"
	helloDomain = "ringkv hello v1"
	// helloNonceLen is the nonce the asker draws; the answerer takes 16
	// to 64 bytes.
	helloNonceLen = 32
	// maxHelloAnswer bounds the answer /add-node reads from the target:
	// a proof is under 300 bytes; anything past this is not one.
	maxHelloAnswer = 4 << 10
	helloTimeout   = 5 * time.Second
)

type helloAnswer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	MAC   string   `json:"mac"`
}

func helloMAC(key, nonce []byte, id string, addrs []string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(helloDomain))
	m.Write([]byte{0})
	m.Write(nonce)
	m.Write([]byte{0})
	m.Write([]byte(id))
	for _, a := range addrs {
		m.Write([]byte{0})
		m.Write([]byte(a))
	}
	return m.Sum(nil)
}

// hello serves GET /internal/hello?nonce=HEX: this node's proof that it
// holds the cluster's Join key.
func (s *Server) hello(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	keys, ok := s.cfg.Secrets.Primary()
	if !ok {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node has no cluster secret, so it cannot prove membership")
		return
	}
	raw := ctx.QueryArgs().Peek("nonce")
	nonce := make([]byte, hex.DecodedLen(len(raw)))
	if _, err := hex.Decode(nonce, raw); err != nil || len(nonce) < 16 || len(nonce) > 64 {
		writeError(ctx, fasthttp.StatusBadRequest, "want nonce as 16 to 64 bytes in hex")
		return
	}
	addrs := []string{ctx.LocalAddr().String(), s.cfg.Addr}
	s.writeJSON(ctx, "internal_hello", helloAnswer{
		ID:    s.cfg.NodeID,
		Addrs: addrs,
		MAC:   hex.EncodeToString(helloMAC(keys.Join, nonce, s.cfg.NodeID, addrs)),
	})
}

// errNotMember is matched by proveMember's errors that come from the
// target's answer, not from reaching it.
var errNotMember = errors.New("did not prove it is a member of this cluster")

// proveMember asks the node at dial (an IP:PORT) for its membership proof
// under any of keys, sending no credential, reading at most
// maxHelloAnswer bytes, and following no redirect. host is the address
// the caller named it by, for the Host header and for the address check.
// With tc it asks over HTTPS, verifying the target's certificate for the
// name it was given. It returns the member's node id. Its errors quote
// nothing the target sent.
func proveMember(ctx context.Context, dial, named string, keys []keyring.Keys, tc *tls.Config) (string, error) {
	nonce := make([]byte, helloNonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	a, err := askHello(ctx, dial, named, nonce, tc)
	if err != nil {
		return "", err
	}
	return verifyHello(a, nonce, dial, named, keys)
}

// helloClient is a client for one ask of the node at dial, named named
// (see proveMember), and the scheme of its URL.
func helloClient(dial, named string, tc *tls.Config) (*fasthttp.HostClient, string) {
	hc := &fasthttp.HostClient{
		Addr:     dial,
		MaxConns: 1,
		// One ask: a host that answers garbage gets no second chance.
		MaxIdemponentCallAttempts: 1,
		MaxResponseBodySize:       maxHelloAnswer,
		ReadBufferSize:            maxHelloAnswer,
		ReadTimeout:               helloTimeout,
		WriteTimeout:              helloTimeout,
		MaxIdleConnDuration:       time.Millisecond,
		DisablePathNormalizing:    true,
		NoDefaultUserAgentHeader:  true,
	}
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
		hc.IsTLS = true
		hc.TLSConfig = tc.Clone()
		if hc.TLSConfig.ServerName == "" {
			// Verify the name the caller gave, not the IP it resolved to.
			hc.TLSConfig.ServerName, _, _ = net.SplitHostPort(named)
		}
	}
	return hc, scheme
}

// askHello asks the node at dial, named named, for its proof of nonce,
// within helloTimeout or ctx's deadline if sooner, and returns the answer
// unverified.
func askHello(ctx context.Context, dial, named string, nonce []byte, tc *tls.Config) (helloAnswer, error) {
	hc, scheme := helloClient(dial, named, tc)
	defer hc.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(scheme + named + helloPath + "?nonce=" + hex.EncodeToString(nonce))
	req.Header.SetMethod(fasthttp.MethodGet)
	deadline := time.Now().Add(helloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := hc.DoDeadline(req, resp, deadline); err != nil {
		return helloAnswer{}, helloCallError(err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return helloAnswer{}, fmt.Errorf("%w: /internal/hello answered %d (a ringkv node without a cluster secret answers 501)", errNotMember, resp.StatusCode())
	}
	var a helloAnswer
	if err := json.Unmarshal(resp.Body(), &a); err != nil {
		return helloAnswer{}, fmt.Errorf("%w: its answer is not a membership proof", errNotMember)
	}
	return a, nil
}

// helloCallError says why an ask got no HTTP answer: errNotMember when
// the target answered something else, quoting nothing it sent.
func helloCallError(err error) error {
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("%w: its TLS certificate does not verify", errNotMember)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Errorf("%w: its answer is larger than %d bytes", errNotMember, maxHelloAnswer)
	case errors.Is(err, fasthttp.ErrTimeout):
		return fmt.Errorf("no answer within %s", helloTimeout)
	}
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		return fmt.Errorf("%w: its answer's header is larger than %d bytes", errNotMember, maxHelloAnswer)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("cannot reach it: %s", sanitize(err.Error()))
	}
	return fmt.Errorf("%w: its answer is not HTTP", errNotMember)
}

// verifyHello checks answer a to nonce: its MAC under one of keys, and an
// address it signed that is the one it was reached at (named or dial). It
// returns the member's node id.
func verifyHello(a helloAnswer, nonce []byte, dial, named string, keys []keyring.Keys) (string, error) {
	mac, err := hex.DecodeString(a.MAC)
	if err != nil || a.ID == "" || len(a.ID) > kv.MaxNodeIDLen || len(a.Addrs) > 4 {
		return "", fmt.Errorf("%w: its answer is not a membership proof", errNotMember)
	}
	ok := false
	for _, k := range keys {
		// Every key is tried, to accept a member whose primary secret is
		// another one of the keyring during a rotation.
		if hmac.Equal(mac, helloMAC(k.Join, nonce, a.ID, a.Addrs)) {
			ok = true
		}
	}
	if !ok {
		return "", fmt.Errorf("%w: its proof does not verify under this cluster's secret", errNotMember)
	}
	for _, signed := range a.Addrs {
		if sameNodeAddr(signed, named, dial) {
			return a.ID, nil
		}
	}
	return "", fmt.Errorf("%w: its proof is for other addresses (a relay?): member %s at %s", errNotMember, strconv.Quote(sanitize(a.ID)), strconv.Quote(sanitize(strings.Join(a.Addrs, " "))))
}

// sameNodeAddr reports whether an address a member signed is the one it
// was reached at: named (as the caller gave it) or dial (as resolved).
// An unspecified address (0.0.0.0:P, the listen address of a node on
// every interface) names no host and matches nothing.
func sameNodeAddr(signed, named, dial string) bool {
	sh, sp, err := net.SplitHostPort(signed)
	if err != nil {
		return false
	}
	for _, a := range []string{named, dial} {
		h, p, err := net.SplitHostPort(a)
		if err != nil || p != sp {
			continue
		}
		if strings.EqualFold(h, sh) {
			return true
		}
		if ip, sip := net.ParseIP(h), net.ParseIP(sh); ip != nil && sip != nil && ip.Equal(sip) && !sip.IsUnspecified() {
			return true
		}
	}
	return false
}

// sanitize keeps at most 120 printable ASCII bytes of s, so that an error
// quoting a remote's words cannot inject markup or control bytes.
func sanitize(s string) string {
	b := make([]byte, 0, min(len(s), 120))
	for i := 0; i < len(s) && len(b) < 120; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(b)
}
