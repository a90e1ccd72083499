package httpd

import (
	"io"
	"time"

	"github.com/ringkv/ringkv/peer/transport"
)

// IdleReader is transport.IdleReader, for the callers that found it here.
//
// Deprecated: use transport.IdleReader; this stays only until
// cmd/ringkv's backup client moves to it.
func IdleReader(r io.Reader, idle time.Duration, stop func()) io.Reader {
	return transport.IdleReader(r, idle, stop)
}
