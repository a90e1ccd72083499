package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// fasthttp reports a TLS connection that the peer closed with an alert
// (its refusal of this node's certificate, in TLS 1.3 seen only at the
// first read) as a connection closed before the first response byte. The
// transport does the TLS itself (fasthttp takes a dialed connection with
// a Handshake method as TLS already) so that it can keep the last such
// error of each peer and name it in the call's error: an operator then
// reads "tls: bad certificate", not a riddle.

// tlsErrs remembers the last TLS error read from each dialed address.
type tlsErrs struct {
	mu   sync.Mutex
	last map[string]tlsErr
}

type tlsErr struct {
	err error
	at  time.Time
}

// tlsErrFresh is how long a TLS error explains a failed call.
const tlsErrFresh = time.Minute

func (e *tlsErrs) note(addr string, err error) {
	e.mu.Lock()
	if e.last == nil {
		e.last = map[string]tlsErr{}
	}
	e.last[addr] = tlsErr{err, time.Now()}
	e.mu.Unlock()
}

func (e *tlsErrs) recent(addr string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l, ok := e.last[addr]; ok && time.Since(l.at) < tlsErrFresh {
		return l.err
	}
	return nil
}

// tlsConn is a client TLS connection that notes its read and write errors
// other than an end, a deadline or a local close.
type tlsConn struct {
	*tls.Conn
	errs *tlsErrs
	addr string
}

func (c *tlsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.noteErr(err)
	return n, err
}

func (c *tlsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.noteErr(err)
	return n, err
}

func (c *tlsConn) noteErr(err error) {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
		c.errs.note(c.addr, err)
	}
}

// dial dials addr as dialIdle does and, with TLS, starts TLS over it.
func (t *Transport) dial(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := dialIdle(addr, timeout)
	if err != nil || t.cfg.TLS == nil {
		return c, err
	}
	cfg := t.cfg.TLS
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		// As fasthttp does: the certificate must name the host dialed.
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	return &tlsConn{Conn: tls.Client(c, cfg), errs: &t.tlsErrs, addr: addr}, nil
}

// explain adds to err of a call to the member at addr the last TLS error
// of a connection to it, if one is recent.
func (t *Transport) explain(addr string, err error) error {
	if err == nil || t.cfg.TLS == nil {
		return err
	}
	if te := t.tlsErrs.recent(t.dialAddr(addr)); te != nil {
		return fmt.Errorf("%w (last TLS error from this peer: %v)", err, te)
	}
	return err
}
