package httpd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkAuthGet is BenchmarkGet/plain with auth on: a bearer token
// among 100 credentials (each compared, in constant time), unrestricted
// and restricted to a key prefix.
func BenchmarkAuthGet(b *testing.B) {
	var file strings.Builder
	for i := range 98 {
		h := sha256.Sum256(fmt.Appendf(nil, "other-%d", i))
		fmt.Fprintf(&file, "read sha256:%s\n", hex.EncodeToString(h[:]))
	}
	h := sha256.Sum256([]byte("bench-token"))
	fmt.Fprintf(&file, "readwrite sha256:%s\n", hex.EncodeToString(h[:]))
	h = sha256.Sum256([]byte("bench-prefix"))
	fmt.Fprintf(&file, "readwrite sha256:%s user:\n", hex.EncodeToString(h[:]))
	a, err := NewStaticAuth([]byte(file.String()))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth:     a,
	}, benchStore{val: make([]byte, 100)}, &fakeOps{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token", func(b *testing.B) {
		benchRequest(b, srv.Handler(), "GET /v1/kv/user:12345 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench-token\r\n\r\n", 200)
	})
	b.Run("prefix", func(b *testing.B) {
		benchRequest(b, srv.Handler(), "GET /v1/kv/user:12345 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench-prefix\r\n\r\n", 200)
	})
}
