package httpd

import (
	"bufio"
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
	stream, err := s.cfg.Backup(s.storeCtx)
	if err != nil {
		s.backupBusy.Store(false)
		s.writeStoreError(ctx, "backup", err)
		return
	}
	// WriteTimeout bounds one response; a backup of a big store takes
	// longer than that, so the deadline is instead pushed out while bytes
	// go through: a client that stops reading is still dropped.
	conn, timeout := ctx.Conn(), s.cfg.WriteTimeout
	ctx.SetWriteDeadline(time.Now().Add(timeout))
	ctx.SetContentType("application/x-tar")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="ringkv-backup.tar"`)
	// fasthttp runs the writer whatever becomes of the connection, so it
	// is where the slot is given back.
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.backupBusy.Store(false)
		dw := &deadlineWriter{w: w, conn: conn, timeout: timeout}
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
	extended time.Time // when the deadline was last moved
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.extended) >= d.timeout/4 {
		d.extended = now
		d.conn.SetWriteDeadline(now.Add(d.timeout))
	}
	return d.w.Write(p)
}
