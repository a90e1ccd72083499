//go:build unix

package connwatch

import (
	"net"
	"syscall"
)

// peekerOf returns a function that reports whether conn's peer has closed
// it (or reset it), without consuming what it may have sent: a
// non-blocking MSG_PEEK of one byte reads 0 bytes only at end of stream.
// nil when conn has no file descriptor to look at.
func peekerOf(conn net.Conn) func() bool {
	sc, ok := unwrapConn(conn).(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var buf [1]byte
	return func() bool {
		gone := false
		err := raw.Read(func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EAGAIN || err == syscall.EINTR:
			case err != nil: // ECONNRESET, ...
				gone = true
			case n == 0:
				gone = true
			}
			return true // never wait for readiness
		})
		return gone || err != nil
	}
}
