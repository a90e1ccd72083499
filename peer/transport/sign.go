package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/ringkv/ringkv/peer/keyring"
)

// Internode calls are signed (SECURITY.md, "TLS and internode
// authentication"): with a cluster secret, every call carries
//
//	X-Ringkv-Node: ID                 the caller's node id
//	X-Ringkv-Time: MS                 the caller's clock, Unix milliseconds
//	X-Ringkv-Signature: v1=HEX        HMAC-SHA256, hex, of the lines
//
//	ringkv-internode-v1
//	METHOD
//	REQUEST-URI                       path and query, as sent
//	MS
//	ID
//	HEX(SHA-256(BODY))
//
// keyed with the Internode key of the primary secret (keyring.Keyring); the
// callee accepts a signature by any key of its keyring, so a rotation
// needs no downtime. Every internode request body is buffered, so the
// body is always signed; the answers are not (they are as safe as the
// connection: use TLS). A call whose time is more than SignatureWindow
// off the callee's clock is refused, which bounds the replay of a
// captured call (the calls are idempotent: a replay rewrites the same
// records). The raw secret never travels.

// Headers of a signed internode call.
const (
	NodeHeader      = "X-Ringkv-Node"
	TimeHeader      = "X-Ringkv-Time"
	SignatureHeader = "X-Ringkv-Signature"
)

// DefaultSignatureWindow is Config.SignatureWindow's default: far more
// than any --max-clock-offset a cluster runs with (at most 1m is allowed,
// 500ms is the default) plus a slow call's queueing, and short enough
// that a captured call is soon worthless.
const DefaultSignatureWindow = 30 * time.Second

const signaturePrefix = "v1="

var (
	errNoSignature  = errors.New("internode call without a signature")
	errBadSignature = errors.New("internode call with a bad signature")
)

// mac returns the HMAC-SHA256, keyed with key, of a call's canonical lines.
func mac(key, method, uri []byte, ms int64, node, body []byte) []byte {
	sum := sha256.Sum256(body)
	h := hmac.New(sha256.New, key)
	writeLines(h, []byte("ringkv-internode-v1"), method, uri, strconv.AppendInt(nil, ms, 10), node)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	h.Write(hexSum[:])
	return h.Sum(nil)
}

func writeLines(h hash.Hash, lines ...[]byte) {
	for _, l := range lines {
		h.Write(l)
		h.Write([]byte{'\n'})
	}
}

// Signature is the values of the headers a signed call carries.
type Signature struct {
	Node, Time, Sig string // NodeHeader, TimeHeader, SignatureHeader
}

// Sign returns the headers of a call by node, signed with the primary of
// secrets at now; ok is false when secrets has no secret (the call then
// carries only the node header).
func Sign(secrets *keyring.Keyring, node, method, uri string, body []byte, now time.Time) (s Signature, ok bool) {
	s.Node = node
	keys, ok := secrets.Primary()
	if !ok {
		return s, false
	}
	ms := now.UnixMilli()
	s.Time = strconv.FormatInt(ms, 10)
	s.Sig = signaturePrefix + hex.EncodeToString(mac(keys.Internode, []byte(method), []byte(uri), ms, []byte(node), body))
	return s, true
}

// parseSignature reads the time and signature headers of a call.
func parseSignature(timeHdr, sigHdr []byte) (ms int64, sum [sha256.Size]byte, err error) {
	if len(timeHdr) == 0 || len(sigHdr) == 0 {
		return 0, sum, errNoSignature
	}
	// Digits only: ParseInt would take a sign, and the canonical time is
	// the header as sent.
	if len(timeHdr) > 18 {
		return 0, sum, fmt.Errorf("%w: bad %s", errBadSignature, TimeHeader)
	}
	for _, c := range timeHdr {
		if c < '0' || c > '9' {
			return 0, sum, fmt.Errorf("%w: bad %s", errBadSignature, TimeHeader)
		}
	}
	ms, err = strconv.ParseInt(string(timeHdr), 10, 64)
	if err != nil {
		return 0, sum, fmt.Errorf("%w: bad %s", errBadSignature, TimeHeader)
	}
	h, ok := cutPrefix(sigHdr, signaturePrefix)
	if !ok || len(h) != hex.EncodedLen(sha256.Size) {
		return 0, sum, fmt.Errorf("%w: want %s as %s and 64 hex digits", errBadSignature, SignatureHeader, signaturePrefix)
	}
	if _, err := hex.Decode(sum[:], h); err != nil {
		return 0, sum, fmt.Errorf("%w: want %s as %s and 64 hex digits", errBadSignature, SignatureHeader, signaturePrefix)
	}
	return ms, sum, nil
}

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if len(b) < len(p) || string(b[:len(p)]) != p {
		return b, false
	}
	return b[len(p):], true
}

// VerifySignature checks a call's signature headers against every key of
// keys, and its time against now within window.
func VerifySignature(keys []keyring.Keys, method, uri, node, timeHdr, sigHdr, body []byte, now time.Time, window time.Duration) error {
	ms, sum, err := parseSignature(timeHdr, sigHdr)
	if err != nil {
		return err
	}
	if len(node) == 0 {
		return fmt.Errorf("%w: no %s", errBadSignature, NodeHeader)
	}
	if d := now.Sub(time.UnixMilli(ms)); d > window || d < -window {
		return fmt.Errorf("%w: its time is %s off this node's clock, more than %s", errBadSignature, d.Round(time.Millisecond), window)
	}
	for _, k := range keys {
		if hmac.Equal(mac(k.Internode, method, uri, ms, node, body), sum[:]) {
			return nil
		}
	}
	return errBadSignature
}
