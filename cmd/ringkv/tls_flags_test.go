package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/httpd/tlstest"
)

// TestServeTLSFlagErrors: TLS files that do not pair or do not load stop
// serve with one line naming the flag and exit code 2, before a port or
// the data directory is opened.
func TestServeTLSFlagErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("garbage.pem", []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(wantInMsg string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"serve", "--http-addr", "127.0.0.1:0"}, args...), nil, &out, &errb)
		msg := errb.String()
		if code != exitUsage || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, wantInMsg) {
			t.Fatalf("serve %v: exit %d, stderr %q; want exit 2, one line containing %q", args, code, msg, wantInMsg)
		}
		if _, err := os.Stat("ringkv-data"); err == nil {
			t.Fatalf("serve %v created a data directory despite the bad flag", args)
		}
	}
	f("--tls-cert-file needs --tls-key-file", "--tls-cert-file", "a.crt")
	f("--tls-key-file needs --tls-cert-file", "--tls-key-file", "a.key")
	f("--peer-tls-cert-file needs --peer-tls-key-file", "--peer-tls-cert-file", "a.crt")
	f("--peer-tls-key-file needs --peer-tls-cert-file", "--peer-tls-key-file", "a.key")
	f("--peer-ca-file needs the node's certificate", "--peer-ca-file", "ca.crt")
	f("--peer-addr", "--peer-addr", "nohost")
	f("--tls-cert-file", "--tls-cert-file", "missing.crt", "--tls-key-file", "missing.key")
	f("--tls-cert-file", "--tls-cert-file", "garbage.pem", "--tls-key-file", "garbage.pem")
	cf, kf := tlstest.NewCA(t, "ca").Issue(t, "n1").Write(t, ".", "n1")
	f("cannot load the CA file garbage.pem", "--tls-cert-file", cf, "--tls-key-file", kf, "--peer-ca-file", "garbage.pem")
	f("cannot load the certificate", "--tls-cert-file", cf, "--tls-key-file", kf, "--peer-tls-cert-file", kf, "--peer-tls-key-file", cf)
}
