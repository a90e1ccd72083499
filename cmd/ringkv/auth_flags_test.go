package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecureStart(t *testing.T) {
	tests := []struct {
		addr                string
		auth, tls, insecure bool
		wantErr             string // "" for none
	}{
		{addr: "127.0.0.1:8080"},
		{addr: "127.1.2.3:8080"},
		{addr: "[::1]:8080"},
		{addr: "localhost:8080"},
		{addr: "LOCALHOST:0"},
		{addr: "0.0.0.0:8080", wantErr: "--http-addr 0.0.0.0:8080 is not loopback: set --tls-cert-file and --tls-key-file and --auth-file, or --insecure"},
		{addr: ":8080", wantErr: "--http-addr :8080 is not loopback"},
		{addr: "[::]:8080", wantErr: "not loopback"},
		{addr: "10.0.0.1:8080", auth: true, wantErr: "set --tls-cert-file and --tls-key-file, or --insecure"},
		{addr: "10.0.0.1:8080", tls: true, wantErr: "set --auth-file, or --insecure"},
		{addr: "db1.example:8080", wantErr: "not loopback"},
		{addr: "localhost.evil.example:8080", wantErr: "not loopback"},
		{addr: "10.0.0.1:8080", auth: true, tls: true},
		{addr: "0.0.0.0:8080", insecure: true},
		{addr: "nonsense", wantErr: "want HOST:PORT"},
	}
	for _, tt := range tests {
		err := secureStart(tt.addr, tt.auth, tt.tls, tt.insecure)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("secureStart(%q, auth %v, tls %v, insecure %v) = %v, want nil", tt.addr, tt.auth, tt.tls, tt.insecure, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("secureStart(%q, auth %v, tls %v, insecure %v) = %v, want an error with %q", tt.addr, tt.auth, tt.tls, tt.insecure, err, tt.wantErr)
		}
	}
}

// TestServeAuthFlagErrors: the security flags fail as every bad flag
// does: one line naming the flag, exit 2, nothing opened.
func TestServeAuthFlagErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badAuth := filepath.Join(dir, "auth")
	if err := os.WriteFile(badAuth, []byte("# ok\nroot sha256:00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(wantInMsg string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"serve"}, args...), nil, &out, &errb)
		msg := errb.String()
		if code != exitUsage || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, wantInMsg) {
			t.Fatalf("serve %v: exit %d, stderr %q; want exit 2 and one line containing %q", args, code, msg, wantInMsg)
		}
		if _, err := os.Stat("ringkv-data"); err == nil {
			t.Fatalf("serve %v created a data directory despite the bad flag", args)
		}
	}
	f("--http-addr 0.0.0.0:0 is not loopback: set --tls-cert-file and --tls-key-file and --auth-file, or --insecure", "--http-addr", "0.0.0.0:0")
	f("--cluster-secret-file", "--cluster-secret-file", filepath.Join(dir, "absent"))
	f("--cluster-secret-file "+empty+" is empty", "--cluster-secret-file", empty)
	f("--cluster-secret and --cluster-secret-file: give one", "--cluster-secret", "x", "--cluster-secret-file", empty)
	f("--auth-file: auth file "+badAuth+": line 2: unknown role \"root\"", "--auth-file", badAuth)
	f("--auth-file", "--auth-file", filepath.Join(dir, "absent"))
}

func TestServeClusterSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, _, err := parseServe([]string{"--cluster-secret-file", file}, newEnviron(), &bytes.Buffer{})
	if err != nil || c.clusterSecret != "s3cret" || c.secretOnCmdline {
		t.Fatalf("--cluster-secret-file: secret %q, on cmdline %v, err %v", c.clusterSecret, c.secretOnCmdline, err)
	}
	c, _, err = parseServe([]string{"--cluster-secret", "s3cret"}, newEnviron(), &bytes.Buffer{})
	if err != nil || !c.secretOnCmdline {
		t.Fatalf("--cluster-secret: on cmdline %v, err %v", c.secretOnCmdline, err)
	}
	t.Setenv("RINGKV_CLUSTER_SECRET", "from-env")
	c, _, err = parseServe(nil, newEnviron(), &bytes.Buffer{})
	if err != nil || c.clusterSecret != "from-env" || c.secretOnCmdline {
		t.Fatalf("RINGKV_CLUSTER_SECRET: secret %q, on cmdline %v, err %v", c.clusterSecret, c.secretOnCmdline, err)
	}
}
