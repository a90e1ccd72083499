package httpd

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
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

// internalMerkle serves GET /internal/merkle?start=HEX&end=HEX&depth=N:
// the node's Merkle tree of the ring range (start, end] (peer's wire
// encoding), for another owner's anti-entropy.
func (s *Server) internalMerkle(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) {
		return
	}
	args := ctx.QueryArgs()
	start, err1 := strconv.ParseUint(string(args.Peek("start")), 16, 64)
	end, err2 := strconv.ParseUint(string(args.Peek("end")), 16, 64)
	depth, err3 := strconv.Atoi(string(args.Peek("depth")))
	if err1 != nil || err2 != nil || err3 != nil || depth < 0 || depth > peer.MaxMerkleDepth {
		writeError(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("want start and end as hex tokens and depth 0 to %d", peer.MaxMerkleDepth))
		return
	}
	t, err := s.cluster.LocalMerkle(s.storeCtx, ring.Range{Start: start, End: end}, depth)
	if err != nil {
		s.writeStoreError(ctx, "internal_merkle", err)
		return
	}
	ctx.SetContentTypeBytes(ctOctet)
	ctx.SetBody(peer.AppendMerkle(nil, t))
}
