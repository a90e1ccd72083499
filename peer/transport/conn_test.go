package transport

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
func TestDeadlineWriterKeepsSlowStreams(t *testing.T) {
	const timeout = 200 * time.Millisecond
	conn := &deadlineConn{}
	dw := NewDeadlineWriter(bufio.NewWriter(io.Discard), conn, timeout, nil)
	end := time.Now().Add(3 * timeout)
	for time.Now().Before(end) {
		if _, err := dw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if left := time.Until(conn.deadline); left < timeout/2 { // 3/4 but for scheduling
			t.Fatalf("a byte just went through, yet the deadline is %s away (timeout %s)", left, timeout)
		}
		time.Sleep(2 * time.Millisecond)
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
