package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/membership"
)

// advertised is where peers reach this node: never an unspecified
// address (0.0.0.0, ::), which a node bound to every interface would
// otherwise tell them to call.
type advertised struct {
	http string // the member list's HTTP address (--advertise-http-addr)
	// gossipBind is --gossip-addr with a host name resolved (memberlist
	// binds IPs); gossip is what memberlist advertises
	// (--advertise-gossip-addr), "" to let it pick (a specific bind IP,
	// or port 0).
	gossipBind, gossip string
	peer               string // --peer-addr's listener as peers call it
}

// validateAdvertise checks the forms of the advertise flags; what they
// resolve to is checked at start (advertise).
func (c *serveConfig) validateAdvertise() error {
	for _, f := range []struct{ name, v string }{
		{"advertise-http-addr", c.advertiseHTTPAddr}, {"advertise-gossip-addr", c.advertiseGossipAddr},
	} {
		if f.v == "" {
			continue
		}
		// Checked against a dummy bound address: only the form matters.
		_, err := membership.Advertise(context.Background(), membership.AddrSpec{Flag: f.name, Bound: "127.0.0.1:1", Advertise: f.v},
			func() (string, error) { return "127.0.0.1", nil },
			func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil })
		if err != nil {
			return err
		}
	}
	return nil
}

// advertise works out the addresses peers reach this node at, from the
// listeners and the flags: a usage error (exit 2) when a name does not
// resolve, or when bound to every interface on a host with no private
// address to advertise.
func (d *daemon) advertise() error {
	a, err := advertiseAddrs(d.c, d.ln.Addr().String(), peerLnAddr(d.peerLn), membership.PrivateIP, membership.DefaultResolver)
	if err != nil {
		return startFailed(exitUsage, "%v", err)
	}
	d.adv = a
	return nil
}

// advertiseAddrs is advertise with the listeners' addresses (peerBound ""
// without --peer-addr), the private-IP picker and the resolver given.
func advertiseAddrs(c *serveConfig, httpBound, peerBound string, privateIP func() (string, error), resolve membership.Resolver) (advertised, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var a advertised
	var err error
	if a.http, err = membership.Advertise(ctx, membership.AddrSpec{Flag: "advertise-http-addr", Bound: httpBound, Advertise: c.advertiseHTTPAddr}, privateIP, resolve); err != nil {
		return a, err
	}
	if peerBound != "" {
		if a.peer, err = membership.Advertise(ctx, membership.AddrSpec{Flag: "peer-addr", Bound: peerBound}, privateIP, resolve); err != nil {
			return a, err
		}
	}
	// memberlist binds an IP: a name in --gossip-addr is resolved here.
	if a.gossipBind, err = resolveBind(ctx, c.gossipAddr, resolve); err != nil {
		return a, err
	}
	host, port, _ := net.SplitHostPort(a.gossipBind)
	if c.advertiseGossipAddr == "" && (port == "0" || net.ParseIP(host) != nil && !net.ParseIP(host).IsUnspecified()) {
		return a, nil // memberlist advertises the bound IP, or its free port's
	}
	if port == "0" {
		return a, errors.New("--advertise-gossip-addr needs --gossip-addr's port: give one (not 0)")
	}
	a.gossip, err = membership.Advertise(ctx, membership.AddrSpec{Flag: "advertise-gossip-addr", Bound: a.gossipBind, Advertise: c.advertiseGossipAddr, NeedIP: true}, privateIP, resolve)
	return a, err
}

// resolveBind returns --gossip-addr with a host name resolved to its
// first address; an IP, or none (every interface), is kept.
func resolveBind(ctx context.Context, addr string, resolve membership.Resolver) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || net.ParseIP(host) != nil {
		return addr, nil // validate checked the form
	}
	ips, err := resolve(ctx, host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("--gossip-addr: cannot resolve %q: %v", host, err)
	}
	return net.JoinHostPort(ips[0], port), nil
}

// startJoining joins --join (and the stored members) in the background
// until it succeeds, serve stops, or --join-timeout runs out (run then
// exits with the error).
func (d *daemon) startJoining() {
	ctx, stop := context.WithCancel(context.Background())
	if t := d.c.joinTimeout; t > 0 {
		ctx, stop = context.WithTimeout(context.Background(), t)
	}
	joined := make(chan struct{})
	d.joinFailed = make(chan error, 1)
	go func() {
		defer close(joined)
		if err := d.gossip.JoinUntil(ctx); errors.Is(err, context.DeadlineExceeded) {
			d.joinFailed <- err
		}
	}()
	d.stopJoining, d.joined = stop, joined
	d.undo = append(d.undo, func() { stop(); <-joined })
}

// readyOps is the node as the HTTP server's Ops, plus readiness: GET
// /healthz answers "not ready" while membership is still joining.
type readyOps struct {
	*peer.Node
	gossip interface{ Joining() (string, bool) }
}

// NotReady returns why the node is not ready to serve yet: joining.
func (o readyOps) NotReady() []peer.Degraded {
	if why, joining := o.gossip.Joining(); joining {
		return []peer.Degraded{{Reason: "joining", Detail: why}}
	}
	return nil
}
