package httpd

import (
	"bufio"
	"context"
	"errors"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// backup serves GET /v1/admin/backup: a tar archive of a consistent copy
// of this node's store (see sstable.Checkpoint), streamed as it is read.
// The copy is taken before the answer starts, so its failure is a 500
// with a JSON body; a request while another backup runs is a 409.
func (s *Server) backup(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		methodNotAllowed(ctx, "GET")
		return
	}
	if s.cfg.Backup == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node cannot take backups")
		return
	}
	// One backup at a time: each holds a checkpoint of the whole store
	// on disk until it has been streamed, and reads it all at once.
	if !s.backupBusy.CompareAndSwap(false, true) {
		writeError(ctx, fasthttp.StatusConflict, "a backup of this node is already being taken; retry when it is done")
		return
	}
	// The checkpoint is taken before the first byte: it stops if the
	// client hangs up meanwhile, and so does the stream afterwards.
	conn, timeout := ctx.Conn(), s.cfg.WriteTimeout
	bctx, cancel := s.clientContext(conn, 0)
	stream, err := s.cfg.Backup(bctx)
	if err != nil {
		cancel()
		s.backupBusy.Store(false)
		s.writeStoreError(ctx, "backup", err)
		return
	}
	// WriteTimeout bounds one response; a backup of a big store takes
	// longer than that, so the deadline is instead pushed out while bytes
	// go through: a client that stops reading is still dropped.
	ctx.SetWriteDeadline(time.Now().Add(timeout))
	ctx.SetContentType("application/x-tar")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="ringkv-backup.tar"`)
	// fasthttp runs the writer whatever becomes of the connection, so it
	// is where the slot is given back.
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.backupBusy.Store(false)
		defer cancel()
		// The stream was given bctx; a write blocked on a departed
		// client is cut by the deadline, and no later one is tried.
		stop := context.AfterFunc(bctx, func() { _ = conn.SetWriteDeadline(time.Now()) })
		defer stop()
		dw := &deadlineWriter{w: w, conn: conn, timeout: timeout, done: bctx.Done()}
		if err := stream(dw); err != nil {
			s.lg.Error("backup stream cut short", "err", err)
			return
		}
		if err := w.Flush(); err != nil {
			s.lg.Error("backup stream cut short", "err", err)
		}
	})
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

// errStreamStopped is a write to a stream whose client went away.
var errStreamStopped = errors.New("httpd: the client went away")

func (d *deadlineWriter) Write(p []byte) (int, error) {
	select {
	case <-d.done:
		return 0, errStreamStopped
	default:
	}
	if now := time.Now(); now.Sub(d.extended) >= d.timeout/4 {
		d.extended = now
		d.conn.SetWriteDeadline(now.Add(d.timeout))
	}
	return d.w.Write(p)
}
