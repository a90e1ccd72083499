package httpd

import (
	"bufio"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// backupChunk is how much of a backup is written between deadline
// extensions.
const backupChunk = 1 << 20

// backup serves GET /v1/admin/backup: a tar archive of a consistent copy
// of this node's store (see sstable.Checkpoint), streamed as it is read.
// The copy is taken before the answer starts, so its failure is a 500
// with a JSON body.
func (s *Server) backup(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		methodNotAllowed(ctx, "GET")
		return
	}
	if s.cfg.Backup == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node cannot take backups")
		return
	}
	stream, err := s.cfg.Backup(s.storeCtx)
	if err != nil {
		s.writeStoreError(ctx, "backup", err)
		return
	}
	// WriteTimeout bounds one response; a backup of a big store takes
	// longer than that, so the deadline is instead pushed out every
	// backupChunk bytes: a client that stops reading is still dropped.
	conn, timeout := ctx.Conn(), s.cfg.WriteTimeout
	ctx.SetWriteDeadline(time.Now().Add(timeout))
	ctx.SetContentType("application/x-tar")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="ringkv-backup.tar"`)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
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

// deadlineWriter extends conn's write deadline as bytes go through.
type deadlineWriter struct {
	w       *bufio.Writer
	conn    net.Conn
	timeout time.Duration
	since   int
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.since += len(p)
	if d.since >= backupChunk {
		d.since = 0
		d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
	}
	return d.w.Write(p)
}

// internalSpan serves GET /internal/span?lo=HEX&hi=HEX: the node's records
// of the token span [lo, hi) (hi 0 meaning 2^64) as a stream that a node
// pulling the range merges in (peer.Node.ServeSpan, sstable.Send's format).
// An error after the answer began cuts the stream short; the receiver
// notices the missing trailer and merges nothing.
func (s *Server) internalSpan(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		methodNotAllowed(ctx, "GET")
		return
	}
	args := ctx.QueryArgs()
	lo, err1 := strconv.ParseUint(string(args.Peek("lo")), 16, 64)
	hi, err2 := strconv.ParseUint(string(args.Peek("hi")), 16, 64)
	if err1 != nil || err2 != nil || (hi != 0 && lo >= hi) {
		writeError(ctx, fasthttp.StatusBadRequest, "want lo and hi as hex tokens, lo < hi or hi = 0")
		return
	}
	conn, timeout := ctx.Conn(), s.cfg.WriteTimeout
	ctx.SetWriteDeadline(time.Now().Add(timeout))
	ctx.SetContentTypeBytes(ctOctet)
	sctx := s.storeCtx
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		dw := &deadlineWriter{w: w, conn: conn, timeout: timeout}
		if err := s.cluster.ServeSpan(sctx, lo, hi, dw); err != nil {
			s.lg.Warn("span stream cut short", "lo", lo, "hi", hi, "err", err)
			return
		}
		w.Flush()
	})
}
