package connwatch

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	deadline time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error { c.deadline = t; return nil }

// TestDeadlineWriterKeepsSlowStreams: a stream paced far below the write
// timeout (a low --transfer-rate) keeps its deadline ahead of it as long
// as bytes move, whatever their count.
//
// The writer reads time.Now, so time passes here by moving what it
// remembers (when it last extended the deadline, and the deadline) back by
// a step before each byte: three timeouts go by without a sleep, and the
// timeout is long enough that the real time the test takes is noise.
func TestDeadlineWriterKeepsSlowStreams(t *testing.T) {
	const timeout = time.Minute
	const step = timeout / 8
	conn := &deadlineConn{}
	dw := NewDeadlineWriter(bufio.NewWriter(io.Discard), conn, timeout, nil)
	for range 3 * timeout / step {
		dw.extended = dw.extended.Add(-step)
		conn.deadline = conn.deadline.Add(-step)
		if _, err := dw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if left := time.Until(conn.deadline); left < timeout/2 { // 3/4 but for the test's own time
			t.Fatalf("a byte just went through, yet the deadline is %s away (timeout %s)", left, timeout)
		}
	}
}

// TestDeadlineWriterStopsWhenDone: once done is closed (the reader is
// known to be gone), a write fails without touching the connection.
func TestDeadlineWriterStopsWhenDone(t *testing.T) {
	conn := &deadlineConn{}
	done := make(chan struct{})
	dw := NewDeadlineWriter(bufio.NewWriter(io.Discard), conn, time.Minute, done)
	if _, err := dw.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	close(done)
	before := conn.deadline
	if n, err := dw.Write([]byte("y")); err != errReaderGone || n != 0 {
		t.Fatalf("a write after done: %d, %v; want 0, %v", n, err, errReaderGone)
	}
	if conn.deadline != before {
		t.Error("a write after done moved the deadline")
	}
}
