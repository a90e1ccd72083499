package httpd

import (
	"bufio"
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/transport/connwatch"
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
	bctx, cancel := connwatch.ClientContext(s.storeCtx, conn, 0, func() {
		s.lim.rejected.WithLabelValues("client_gone").Inc()
	})
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
		if err := stream(connwatch.NewDeadlineWriter(w, conn, timeout, bctx.Done())); err != nil {
			s.lg.Error("backup stream cut short", "err", err)
			return
		}
		if err := w.Flush(); err != nil {
			s.lg.Error("backup stream cut short", "err", err)
		}
	})
}
