package transport

import (
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer/keyring"
)

// FuzzSignature: the signature headers of an internode call, which anyone
// who reaches /internal/ controls, never crash the parser, and no headers
// pass verification but the signature of the call itself.
func FuzzSignature(f *testing.F) {
	secrets := keyring.New("", []byte("fuzz"))
	now := time.UnixMilli(1_800_000_000_000)
	good, _ := Sign(secrets, "n1", "POST", "/internal/apply", []byte("body"), now)
	f.Add("POST", "/internal/apply", "n1", good.Time, good.Sig, []byte("body"))
	f.Add("POST", "/internal/apply", "n1", good.Time, strings.ToUpper(good.Sig), []byte("body"))
	f.Add("POST", "/internal/apply", "n1", good.Time, "v1="+strings.Repeat("0", 64), []byte("body"))
	f.Add("POST", "/internal/apply", "n2", good.Time, good.Sig, []byte("body"))
	f.Add("GET", "/internal/span?lo=0&hi=0", "n1", "-1", "v1=", []byte(nil))
	f.Add("GET", "/internal/gossip", "", "99999999999999999999", "v1="+strings.Repeat("zz", 32), []byte(nil))
	f.Add("GET", "/internal/gossip", "n1", "+1800000000000", good.Sig+",v1=00", []byte(nil))
	f.Fuzz(func(t *testing.T, method, uri, node, timeHdr, sigHdr string, body []byte) {
		ms, _, err := parseSignature([]byte(timeHdr), []byte(sigHdr))
		at := now
		if err == nil {
			if ms < 0 || !strings.HasPrefix(sigHdr, signaturePrefix) || len(sigHdr) != len(signaturePrefix)+64 {
				t.Fatalf("parsed %q %q as time %d", timeHdr, sigHdr, ms)
			}
			at = time.UnixMilli(ms)
		}
		err = VerifySignature(secrets.All(), []byte(method), []byte(uri), []byte(node), []byte(timeHdr), []byte(sigHdr), body, at, DefaultSignatureWindow)
		if err == nil {
			want, _ := Sign(secrets, node, method, uri, body, at)
			if !strings.EqualFold(sigHdr, want.Sig) {
				t.Fatalf("accepted %q, the call's signature is %q", sigHdr, want.Sig)
			}
		}
		// The call's own signature always passes.
		if node != "" {
			s, _ := Sign(secrets, node, method, uri, body, at)
			if err := VerifySignature(secrets.All(), []byte(method), []byte(uri), []byte(node), []byte(s.Time), []byte(s.Sig), body, at, DefaultSignatureWindow); err != nil {
				t.Fatalf("its own signature fails: %v", err)
			}
		}
	})
}

// BenchmarkSignVerify: what signing costs a batch of replica writes (a
// 4KiB body), on the caller and the callee.
func BenchmarkSignVerify(b *testing.B) {
	secrets := keyring.New("", []byte("bench"))
	body := make([]byte, 4<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		s, _ := Sign(secrets, "n1", "POST", "/internal/apply", body, now)
		if err := VerifySignature(secrets.All(), []byte("POST"), []byte("/internal/apply"), []byte("n1"), []byte(s.Time), []byte(s.Sig), body, now, DefaultSignatureWindow); err != nil {
			b.Fatal(err)
		}
	}
}
