package connwatch

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"time"
)

// ClientContext returns a context of parent that is cancelled when
// timeout passes (none if 0), when parent ends, or when the caller on conn
// goes away: a connection closed by its peer is noticed within
// clientPollInterval, without reading anything from it (a Merkle tree is
// built, a paced range stream waits and a backup takes its checkpoint
// before anything is written that would fail). A caller gone is reported
// to gone, if not nil, before the context is cancelled, so that a server
// can count it (both httpd and peer/transport's handler count client_gone).
// cancel must be called. It serves httpd's backup stream, which watches
// its client as the internode streams watch theirs.
func ClientContext(parent context.Context, conn net.Conn, timeout time.Duration, gone func()) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
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
					if gone != nil {
						gone()
					}
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

// DeadlineWriter extends conn's write deadline while bytes go through: a
// stream that keeps moving is never cut, however slowly a --transfer-rate
// paces it, and one whose reader stops is cut within timeout. It writes
// to a fasthttp body stream writer, and serves both peer/transport's range
// stream and httpd's backup stream.
type DeadlineWriter struct {
	w        *bufio.Writer
	conn     net.Conn
	timeout  time.Duration
	extended time.Time       // when the deadline was last moved
	done     <-chan struct{} // when closed, writes fail (nil: never)
}

// NewDeadlineWriter returns a DeadlineWriter to w, the body of a response
// on conn, that keeps conn's write deadline timeout ahead of the last
// write; once done is closed (nil: never), writes fail at once rather
// than wait for a reader known to be gone.
func NewDeadlineWriter(w *bufio.Writer, conn net.Conn, timeout time.Duration, done <-chan struct{}) *DeadlineWriter {
	return &DeadlineWriter{w: w, conn: conn, timeout: timeout, done: done}
}

// errReaderGone is a write to a stream whose reader went away.
var errReaderGone = errors.New("the reader of the stream went away")

func (d *DeadlineWriter) Write(p []byte) (int, error) {
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
