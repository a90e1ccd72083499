package httpd

import (
	"errors"
	"testing"
)

// TestCheckExposure: loopback serves as it is; anything else needs both
// TLS and client credentials, and the error says which are missing.
func TestCheckExposure(t *testing.T) {
	for _, tt := range []struct {
		addr          string
		auth, tls     bool
		noTLS, noAuth bool // the ExposedError wanted; neither: none
		malformed     bool
	}{
		{addr: "127.0.0.1:8080"},
		{addr: "127.1.2.3:8080"},
		{addr: "[::1]:8080"},
		{addr: "localhost:8080"},
		{addr: "LOCALHOST:0"},
		{addr: "0.0.0.0:8080", noTLS: true, noAuth: true},
		{addr: ":8080", noTLS: true, noAuth: true},
		{addr: "[::]:8080", noTLS: true, noAuth: true},
		{addr: "10.0.0.1:8080", auth: true, noTLS: true},
		{addr: "10.0.0.1:8080", tls: true, noAuth: true},
		{addr: "db1.example:8080", noTLS: true, noAuth: true},
		{addr: "localhost.evil.example:8080", noTLS: true, noAuth: true},
		{addr: "10.0.0.1:8080", auth: true, tls: true},
		{addr: "nonsense", malformed: true},
	} {
		err := CheckExposure(tt.addr, tt.auth, tt.tls)
		var e *ExposedError
		switch {
		case tt.malformed:
			if err == nil || errors.As(err, &e) {
				t.Errorf("%q: %v, want a malformed address", tt.addr, err)
			}
		case !tt.noTLS && !tt.noAuth:
			if err != nil {
				t.Errorf("%q (auth %v, tls %v): %v, want nil", tt.addr, tt.auth, tt.tls, err)
			}
		case !errors.As(err, &e) || e.NoTLS != tt.noTLS || e.NoAuth != tt.noAuth || e.Addr != tt.addr:
			t.Errorf("%q (auth %v, tls %v): %v, want no TLS %v, no auth %v", tt.addr, tt.auth, tt.tls, err, tt.noTLS, tt.noAuth)
		}
	}
}
