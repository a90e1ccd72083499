package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// Resolver returns the IP addresses of a host name (every A and AAAA
// record), or the address itself for an IP literal, as
// net.Resolver.LookupHost does. Config.Resolve is one; tests fake DNS
// with their own.
type Resolver func(ctx context.Context, host string) ([]string, error)

// DefaultResolver is net.DefaultResolver's LookupHost.
func DefaultResolver(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

// PrivateIP returns the host's first private IP address, as memberlist
// picks it for a node bound to every interface (go-sockaddr's
// GetPrivateIP), or "" when there is none.
func PrivateIP() (string, error) { return sockaddr.GetPrivateIP() }

// ErrNoPrivateIP is Advertise's error for a listener bound to every
// interface on a host without a private address to advertise.
var ErrNoPrivateIP = errors.New("no private IP address to advertise")

// AddrSpec is how a listener is reached: where it is bound, and what the
// flag that advertises it says.
type AddrSpec struct {
	// Flag names the advertising flag in errors (advertise-http-addr).
	Flag string
	// Bound is HOST:PORT as the listener is bound, its port resolved
	// (not 0); an empty host or 0.0.0.0 or :: is every interface.
	Bound string
	// Advertise is the flag's value: HOST or HOST:PORT (the port then
	// defaults to Bound's), HOST a name or an IP ([::1] for IPv6).
	// Empty: Bound when its host is a specific address, else the host's
	// private IP.
	Advertise string
	// NeedIP resolves a name to its first address (memberlist gossips an
	// IP); otherwise a name is kept as is, and peers resolve it each time
	// they connect.
	NeedIP bool
}

// Advertise returns the HOST:PORT peers reach spec's listener at. It
// never returns an unspecified address (0.0.0.0, ::): with no private IP
// to stand for one, it returns an error matching ErrNoPrivateIP.
// privateIP picks the host's address (PrivateIP); resolve resolves names
// when spec.NeedIP.
func Advertise(ctx context.Context, spec AddrSpec, privateIP func() (string, error), resolve Resolver) (string, error) {
	bhost, bport, err := net.SplitHostPort(spec.Bound)
	if err != nil {
		return "", fmt.Errorf("--%s: bound address %q: %v", spec.Flag, spec.Bound, err)
	}
	host, port := bhost, bport
	if spec.Advertise != "" {
		host, port, err = splitHostMaybePort(spec.Advertise, bport)
		if err != nil {
			return "", fmt.Errorf("--%s %q: %v", spec.Flag, spec.Advertise, err)
		}
		if unspecified(host) {
			return "", fmt.Errorf("--%s %q: peers cannot call an unspecified address; give this host's address or name", spec.Flag, spec.Advertise)
		}
	}
	if unspecified(host) {
		ip, err := privateIP()
		if err != nil {
			return "", fmt.Errorf("--%s: cannot read this host's addresses: %v", spec.Flag, err)
		}
		if ip == "" {
			return "", fmt.Errorf("%w: bound to %s, this host has no private IP address; set --%s", ErrNoPrivateIP, spec.Bound, spec.Flag)
		}
		host = ip
	}
	if spec.NeedIP && net.ParseIP(host) == nil {
		ips, err := resolve(ctx, host)
		if err != nil || len(ips) == 0 {
			return "", fmt.Errorf("--%s: cannot resolve %q: %v", spec.Flag, host, errOrNone(err))
		}
		host = ips[0]
	}
	return net.JoinHostPort(host, port), nil
}

// splitHostMaybePort splits HOST:PORT, or takes a bare HOST (an IPv6
// literal in brackets or not) with port def.
func splitHostMaybePort(s, def string) (host, port string, err error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", errors.New("port must be 1 to 65535")
		}
		if h == "" {
			return "", "", errors.New("want HOST or HOST:PORT")
		}
		return h, p, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if h == "" || strings.ContainsAny(h, "[]/ ") || (strings.Contains(h, ":") && net.ParseIP(h) == nil) {
		return "", "", errors.New("want HOST or HOST:PORT")
	}
	return h, def, nil
}

// unspecified reports whether host stands for every interface.
func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

func errOrNone(err error) error {
	if err == nil {
		return errors.New("no address")
	}
	return err
}

// resolveTargets returns the gossip addresses behind targets (HOST:PORT,
// HOST a name or an IP): every address of each name, in the order given,
// without duplicates and without self (this node's advertised gossip
// address). A name that does not resolve is skipped and reported in
// errs, so one bad name does not stop a join through the others.
func resolveTargets(ctx context.Context, resolve Resolver, targets []string, self string) (addrs []string, errs []error) {
	for _, t := range targets {
		host, port, err := net.SplitHostPort(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("join target %q: %v", t, err))
			continue
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			ips, err = resolve(ctx, host)
			if err != nil || len(ips) == 0 {
				errs = append(errs, fmt.Errorf("cannot resolve join target %q: %v", host, errOrNone(err)))
				continue
			}
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip, port)
			if !sameAddr(a, self) && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, errs
}

// sameAddr compares two HOST:PORT addresses by IP, so that "[::1]:7946"
// and "[0:0::1]:7946" match.
func sameAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return a == b
	}
	ai, bi := net.ParseIP(ah), net.ParseIP(bh)
	if ai == nil || bi == nil {
		return ah == bh
	}
	return ai.Equal(bi)
}
