package httpd

import (
	"fmt"
	"net"
	"strings"
)

// ExposedError is CheckExposure's answer for a server that would serve
// beyond loopback without TLS or client authentication; the caller says
// which of its settings give them (ringkv serve: --tls-cert-file,
// --auth-file) or lets it be on purpose (--insecure).
type ExposedError struct {
	Addr string
	// NoTLS and NoAuth say which of Config.TLS and Config.Auth is missing.
	NoTLS, NoAuth bool
}

func (e *ExposedError) Error() string {
	var missing []string
	if e.NoTLS {
		missing = append(missing, "TLS")
	}
	if e.NoAuth {
		missing = append(missing, "Auth")
	}
	return fmt.Sprintf("httpd: Addr %s is not loopback and has no %s", e.Addr, strings.Join(missing, " and no "))
}

// CheckExposure refuses (*ExposedError) a server on addr, HOST:PORT, that
// would serve beyond loopback without both TLS and client credentials
// (CockroachDB's rule; on loopback nothing is required). An empty host or
// 0.0.0.0 listens on every interface; a host name other than localhost
// counts as not loopback: it is not resolved here.
func CheckExposure(addr string, auth, tls bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("httpd: Addr %q: want HOST:PORT", addr)
	}
	ip := net.ParseIP(host)
	if strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback() || auth && tls {
		return nil
	}
	return &ExposedError{Addr: addr, NoTLS: !tls, NoAuth: !auth}
}
