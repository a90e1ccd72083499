package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/peer/membership"
)

// TestAdvertiseAddrs: serve's advertised addresses from its flags and
// listeners, with the private-IP picker and DNS faked: a node bound to
// 0.0.0.0 or :: advertises the host's private IP (for HTTP, --peer-addr
// and gossip), never the unspecified address; the flags win; names are
// resolved for gossip (memberlist gossips IPs), kept for HTTP; with no
// private IP, a clear error naming the flag to set.
func TestAdvertiseAddrs(t *testing.T) {
	resolve := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "ringkv-0.ringkv":
			return []string{"10.0.0.7"}, nil
		case "localhost":
			return []string{"127.0.0.1", "::1"}, nil
		}
		return nil, errors.New("no such host")
	}
	f := func(c serveConfig, httpBound, peerBound, privateIP string, want advertised, wantErr string) {
		t.Helper()
		got, err := advertiseAddrs(&c, httpBound, peerBound, func() (string, error) { return privateIP, nil }, resolve)
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%+v: %+v, %v; want an error with %q", c, got, err, wantErr)
		case wantErr == "" && (err != nil || got != want):
			t.Errorf("%+v: %+v, %v; want %+v", c, got, err, want)
		}
	}
	cfg := func(gossip, advHTTP, advGossip string) serveConfig {
		return serveConfig{gossipAddr: gossip, advertiseHTTPAddr: advHTTP, advertiseGossipAddr: advGossip}
	}
	// Loopback, as today: nothing changes.
	f(cfg("127.0.0.1:7946", "", ""), "127.0.0.1:8080", "", "10.0.0.2", advertised{http: "127.0.0.1:8080", gossipBind: "127.0.0.1:7946"}, "")
	// Every interface: the private IP, for each listener.
	f(cfg("0.0.0.0:7946", "", ""), "0.0.0.0:8080", "0.0.0.0:8081", "10.0.0.2",
		advertised{http: "10.0.0.2:8080", gossipBind: "0.0.0.0:7946", gossip: "10.0.0.2:7946", peer: "10.0.0.2:8081"}, "")
	f(cfg("[::]:7946", "", ""), "[::]:8080", "", "fd00::2", advertised{http: "[fd00::2]:8080", gossipBind: "[::]:7946", gossip: "[fd00::2]:7946"}, "")
	f(cfg(":7946", "", ""), "[::]:8080", "", "10.0.0.2", advertised{http: "10.0.0.2:8080", gossipBind: ":7946", gossip: "10.0.0.2:7946"}, "")
	// The flags win; a name stays a name for HTTP, an IP for gossip.
	f(cfg("0.0.0.0:7946", "ringkv-0.ringkv", "ringkv-0.ringkv"), "0.0.0.0:8080", "", "",
		advertised{http: "ringkv-0.ringkv:8080", gossipBind: "0.0.0.0:7946", gossip: "10.0.0.7:7946"}, "")
	f(cfg("127.0.0.1:7946", "[::1]:9000", "[::1]:7000"), "127.0.0.1:8080", "", "",
		advertised{http: "[::1]:9000", gossipBind: "127.0.0.1:7946", gossip: "[::1]:7000"}, "")
	// A name in --gossip-addr is bound at its address.
	f(cfg("localhost:7946", "", ""), "127.0.0.1:8080", "", "", advertised{http: "127.0.0.1:8080", gossipBind: "127.0.0.1:7946"}, "")
	// No private IP to stand for every interface: refused, naming the flag.
	f(cfg("127.0.0.1:7946", "", ""), "0.0.0.0:8080", "", "", advertised{}, "--advertise-http-addr")
	f(cfg("0.0.0.0:7946", "10.0.0.9", ""), "0.0.0.0:8080", "", "", advertised{}, "--advertise-gossip-addr")
	f(cfg("nowhere:7946", "", ""), "127.0.0.1:8080", "", "", advertised{}, "cannot resolve")
	f(cfg("0.0.0.0:0", "", "10.0.0.9"), "127.0.0.1:8080", "", "", advertised{}, "port")
	if _, err := advertiseAddrs(&serveConfig{gossipAddr: "127.0.0.1:7946"}, "0.0.0.0:8080", "", func() (string, error) { return "", nil }, resolve); !errors.Is(err, membership.ErrNoPrivateIP) {
		t.Errorf("no private IP: %v, want ErrNoPrivateIP", err)
	}
}
