package transport

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"time"
)

// clientContext returns a context of t's that is cancelled when timeout
// passes (none if 0), when t closes, or when the caller on conn goes away:
// a connection closed by its peer is noticed within clientPollInterval,
// without reading anything from it (a Merkle tree is built, and a paced
// range stream waits, before anything is written that would fail). cancel
// must be called. A caller gone is reported to gone("client_gone").
func (t *Transport) clientContext(conn net.Conn, timeout time.Duration, gone func(reason string)) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.ctx)
	if timeout > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, timeout)
		c1 := cancel
		cancel = func() { c2(); c1() }
	}
	peek := peekerOf(conn)
	if peek == nil {
		return ctx, cancel
	}
	go func() {
		tk := time.NewTicker(clientPollInterval)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				if peek() {
					gone("client_gone")
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}

// clientPollInterval is how often clientContext looks at the connection.
const clientPollInterval = 100 * time.Millisecond

// unwrapConn finds the connection under fasthttp's and TLS's wrappers.
func unwrapConn(c net.Conn) net.Conn {
	for range 4 {
		switch w := c.(type) {
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = w.NetConn()
		default:
			inner := embeddedConn(c)
			if inner == nil {
				return c
			}
			c = inner
		}
	}
	return c
}

// embeddedConn returns the net.Conn that a wrapper struct embeds (as
// fasthttp's per-IP connection does, unexported), or nil.
func embeddedConn(c net.Conn) net.Conn {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("Conn")
	if !f.IsValid() || f.Kind() != reflect.Interface || !f.CanInterface() || f.IsNil() {
		return nil
	}
	inner, _ := f.Interface().(net.Conn)
	return inner
}

// deadlineWriter extends conn's write deadline while bytes go through: a
// stream that keeps moving is never cut, however slowly a --transfer-rate
// paces it, and one whose reader stops is cut within timeout.
type deadlineWriter struct {
	w        *bufio.Writer
	conn     net.Conn
	timeout  time.Duration
	extended time.Time       // when the deadline was last moved
	done     <-chan struct{} // when closed, writes fail (nil: never)
}

// errReaderGone is a write to a stream whose reader went away.
var errReaderGone = errors.New("transport: the reader of the stream went away")

func (d *deadlineWriter) Write(p []byte) (int, error) {
	select {
	case <-d.done:
		return 0, errReaderGone
	default:
	}
	if now := time.Now(); now.Sub(d.extended) >= d.timeout/4 {
		d.extended = now
		d.conn.SetWriteDeadline(now.Add(d.timeout))
	}
	return d.w.Write(p)
}

// failingWriter cancels the stream's context on the first write error,
// so that work paced between writes (a rate limit) stops as soon as the
// reader is known to be gone.
type failingWriter struct {
	w      *deadlineWriter
	cancel context.CancelFunc
}

func (f *failingWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		f.cancel()
	}
	return n, err
}
