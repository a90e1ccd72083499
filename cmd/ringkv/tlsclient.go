package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// tlsFlags are the client-side TLS flags of the commands that call a node
// (get, put, delete, scan, cluster, backup, bench), for https:// addresses.
// Their errors name the flags, which the client package's cannot.
type tlsFlags struct {
	cacert, cert, key string
}

// add binds the flags on fs, their defaults from RINGKV_CACERT,
// RINGKV_CERT and RINGKV_KEY.
func (f *tlsFlags) add(fs *flag.FlagSet, env *environ) {
	for _, v := range []struct {
		p         *string
		name, use string
	}{
		{&f.cacert, "cacert", "PEM CA certificates that verify an https:// node (default: the system's); also RINGKV_CACERT"},
		{&f.cert, "cert", "PEM client certificate to present to an https:// node; also RINGKV_CERT"},
		{&f.key, "key", "PEM private key of --cert; also RINGKV_KEY"},
	} {
		if e, _, ok := env.lookup(envName(v.name)); ok {
			*v.p = e
		}
		fs.StringVar(v.p, v.name, *v.p, v.use)
	}
}

// config returns the TLS configuration the flags describe; with none
// given, the system roots verify the node as any HTTPS server.
func (f *tlsFlags) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.cacert != "" {
		b, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", f.cacert)
		}
	}
	switch {
	case f.cert != "" && f.key == "":
		return nil, errors.New("--cert needs --key")
	case f.key != "" && f.cert == "":
		return nil, errors.New("--key needs --cert")
	case f.cert != "":
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert, --key: %v", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
