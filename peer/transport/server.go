package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/transport/connwatch"
	"github.com/ringkv/ringkv/ring"
)

// The endpoints the handler serves, every one under /internal/:
//
//	POST /internal/apply         store a batch of records (codec.go's apply)
//	POST /internal/read          this node's records of the keys in the body
//	POST /internal/scan          one page of this node's records
//	GET  /internal/gossip        gossip addresses, for /add-node (JSON)
//	GET  /internal/span          this node's records of a token span, as a stream
//	GET  /internal/merkle        this node's Merkle tree of a ring range
//
// With a cluster secret (Config.Secrets), each refuses a call without a
// valid signature (sign.go), and with Config.RequirePeerCert one without a
// certificate of the cluster CA naming the caller (401). The rest of the
// node's endpoints, /internal/hello and GET /v1/cluster included, are
// httpd's.

// Local is what the handler needs of the node it answers for; the
// *peer.Replica that Node.Local returns satisfies it. Implementations
// must not retain the slices they are given after returning: they belong
// to the request, which fasthttp recycles.
type Local interface {
	// ApplyLocal stores replica writes (POST /internal/apply).
	ApplyLocal(ms []peer.Mutation) error
	// ReadLocal appends the node's stored record of key to dst, or
	// answers peer.ErrNotFound, a *peer.PendingError (with what it holds
	// appended), or an error matching peer.ErrCorruption.
	ReadLocal(dst, key []byte) ([]byte, error)
	// Paxos answers a Paxos message of a conditional write (POST
	// /internal/paxos): peer.ErrNotOwner for a key the node does not own.
	Paxos(req peer.PaxosRequest) (peer.PaxosReply, error)
	// ScanLocal returns one page of the node's own records.
	ScanLocal(ctx context.Context, q peer.LocalScan) (peer.LocalPage, error)
	// GossipAddrs returns the gossip addresses of the members the node
	// knows.
	GossipAddrs() []string
	// ServeSpan streams the node's records of the token span [lo, hi) to
	// w, for a node pulling the range.
	ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error
	// LocalMerkle builds the node's Merkle tree of a range, for another
	// owner comparing it.
	LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*peer.Merkle, error)
}

var _ Local = (*peer.Replica)(nil) // Node.Local

// SetLocal sets the node the handler answers for (Config.Local), for a
// node built with its Transport, after it; it must be called before the
// handler serves.
func (t *Transport) SetLocal(l Local) { t.cfg.Local = l }

// Handler returns the handler of the internode endpoints, for a server to
// mount under /internal/ (httpd does, on the client or the peer
// listener). It dispatches on the request's original path. refused, if
// not nil, is called for each call turned away by a limit (reason
// "scans": the internode scan slots are busy) or stopped because its
// caller hung up ("client_gone"), for the server to count with its own
// refusals (httpd's ringkv_http_limited_total).
func (t *Transport) Handler(refused func(reason string)) fasthttp.RequestHandler {
	if refused == nil {
		refused = func(string) {}
	}
	return func(ctx *fasthttp.RequestCtx) { t.serve(ctx, refused) }
}

// Authentic reports whether a request carries the internode credential by
// the handler's rules, for the endpoints other than /internal/ that peers
// call (httpd's GET /v1/cluster), and the node it claims to come from.
// Where the cluster has neither a secret nor mutual TLS, every request
// is.
func (t *Transport) Authentic(ctx *fasthttp.RequestCtx) (node string, ok bool) {
	return string(ctx.Request.Header.Peek(NodeHeader)), t.authenticate(ctx) == nil
}

// serve is the handler.
func (t *Transport) serve(ctx *fasthttp.RequestCtx, refused func(string)) {
	if err := t.authenticate(ctx); err != nil {
		writeError(ctx, fasthttp.StatusUnauthorized, err.Error())
		return
	}
	if t.cfg.Local == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node does not run clustering")
		return
	}
	switch string(ctx.URI().PathOriginal()) {
	case "/internal/apply":
		if onlyPost(ctx) {
			t.apply(ctx)
		}
	case "/internal/read":
		if onlyPost(ctx) {
			t.read(ctx)
		}
	case "/internal/paxos":
		if onlyPost(ctx) {
			t.paxos(ctx)
		}
	case "/internal/scan":
		if onlyPost(ctx) {
			t.scan(ctx, refused)
		}
	case "/internal/gossip":
		if onlyGet(ctx) {
			t.gossip(ctx)
		}
	case "/internal/span":
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		t.span(ctx, refused)
	case "/internal/merkle":
		if onlyGet(ctx) {
			t.merkle(ctx, refused)
		}
	default:
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint")
	}
}

// authenticate checks the credentials of an internode call: its
// certificate with Config.RequirePeerCert, its signature with a cluster
// secret.
func (t *Transport) authenticate(ctx *fasthttp.RequestCtx) error {
	h := &ctx.Request.Header
	node := h.Peek(NodeHeader)
	if t.cfg.RequirePeerCert {
		cs := ctx.TLSConnectionState()
		if cs == nil || len(cs.PeerCertificates) == 0 {
			return errors.New("internode call without a certificate of the cluster CA")
		}
		// The listener verified the chain; the name ties the certificate
		// to the node the call claims to come from.
		if !certNames(cs.PeerCertificates[0], string(node)) {
			return fmt.Errorf("the certificate of the call does not name node %q (%s)", node, NodeHeader)
		}
	}
	if t.cfg.Secrets.Enabled() {
		return VerifySignature(t.cfg.Secrets.All(), h.Method(), h.RequestURI(), node, h.Peek(TimeHeader), h.Peek(SignatureHeader),
			ctx.PostBody(), time.Now(), t.cfg.SignatureWindow)
	}
	return nil
}

// certNames reports whether cert names node: as its Common Name or one of
// its DNS names.
func certNames(cert *x509.Certificate, node string) bool {
	return node != "" && (cert.Subject.CommonName == node || slices.Contains(cert.DNSNames, node))
}

// apply serves POST /internal/apply: the records go straight from the
// request body to the node's engine batch.
func (t *Transport) apply(ctx *fasthttp.RequestCtx) {
	ms, err := DecodeApply(ctx.PostBody())
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	if err := t.cfg.Local.ApplyLocal(ms); err != nil {
		switch {
		case errors.Is(err, peer.ErrBadMessage), errors.Is(err, peer.ErrInvalidKey):
			writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		case errors.Is(err, peer.ErrClockOffset):
			// The coordinator must know: a clock refusal is kept as no
			// hint (post maps 409 back to ErrClockOffset).
			writeError(ctx, fasthttp.StatusConflict, err.Error())
		case errors.Is(err, peer.ErrNotOwner):
			// Not this replica's key: nothing was stored (post maps 403
			// back to ErrNotOwner).
			writeError(ctx, fasthttp.StatusForbidden, err.Error())
		default:
			t.writeLocalError(ctx, "internal_apply", err)
		}
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// read serves POST /internal/read: the answer is built in the response
// body's own buffer, each record read straight into it.
func (t *Transport) read(ctx *fasthttp.RequestCtx) {
	keys, err := DecodeRead(ctx.PostBody())
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	// Each record is read into the body after its length prefix's worst
	// case, then moved down over the unused prefix bytes.
	b := AppendRecordsHeader(ctx.Response.SwapBody(nil)[:0], len(keys))
	for _, k := range keys {
		at := len(b)
		b = append(b, make([]byte, binary.MaxVarintLen64)...)
		b, err = t.cfg.Local.ReadLocal(b, k)
		if errors.Is(err, peer.ErrNotFound) {
			b, err = AppendRecord(b[:at], nil), nil
			continue
		}
		if errors.Is(err, peer.ErrRangePending) {
			// Rare (a range being moved): copy what the node holds out
			// of the way of the answer being built over it.
			var from []string
			if pe := (*peer.PendingError)(nil); errors.As(err, &pe) {
				from = pe.From
			}
			rec := bytes.Clone(b[at+binary.MaxVarintLen64:])
			b, err = AppendPending(b[:at], rec, from), nil
			continue
		}
		if errors.Is(err, peer.ErrCorruption) {
			// This key's record is in a damaged file: it fails alone,
			// and the coordinator asks another replica.
			b, err = AppendFailed(b[:at], err.Error()), nil
			continue
		}
		if err != nil {
			break
		}
		rec := b[at+binary.MaxVarintLen64:]
		n := binary.PutUvarint(b[at:], uint64(len(rec)))
		b = append(b[:at+n], rec...) // memmove: the ranges overlap
	}
	ctx.Response.SwapBody(b)
	if err != nil {
		ctx.ResetBody()
		t.writeLocalError(ctx, "internal_read", err)
		return
	}
	ctx.SetContentTypeBytes(ctOctet)
}

// scanWait is how long an internode scan waits for a slot: the default
// request timeout, after which its coordinator has given up; waiting
// longer would only answer nobody.
const scanWait = 5 * time.Second

// scan serves POST /internal/scan. Other nodes' scans are a client's
// scan already admitted by its coordinator, so they queue for a slot
// rather than fail at once; but no more than the slots run at once.
func (t *Transport) scan(ctx *fasthttp.RequestCtx, refused func(string)) {
	q, err := DecodeScan(ctx.PostBody())
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	if !t.acquireScan(scanWait) {
		refused("scans")
		writeError(ctx, fasthttp.StatusTooManyRequests, "this node runs "+strconv.Itoa(cap(t.scans))+" internode scans at once already")
		return
	}
	q.MaxBytes = t.cfg.MaxScanBytes
	p, err := t.cfg.Local.ScanLocal(t.ctx, q)
	<-t.scans
	if err != nil {
		t.writeLocalError(ctx, "internal_scan", err)
		return
	}
	ctx.SetContentTypeBytes(ctOctet)
	ctx.SetBody(AppendScanPage(nil, p))
}

// acquireScan takes a scan slot, waiting at most wait for one.
func (t *Transport) acquireScan(wait time.Duration) bool {
	select {
	case t.scans <- struct{}{}:
		return true
	default:
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case t.scans <- struct{}{}:
		return true
	case <-tm.C:
	case <-t.ctx.Done():
	}
	return false
}

// gossip serves GET /internal/gossip.
func (t *Transport) gossip(ctx *fasthttp.RequestCtx) {
	b, err := json.Marshal(t.cfg.Local.GossipAddrs())
	if err != nil {
		t.writeLocalError(ctx, "internal_gossip", err)
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(b, '\n'))
}

// span serves GET /internal/span?lo=HEX&hi=HEX: the node's records of the
// token span [lo, hi) (hi 0 meaning 2^64) as a stream that a node pulling
// the range merges in (peer.Rebalancer.ServeSpan, sstable.Send's format). An
// error after the answer began cuts the stream short; the receiver
// notices the missing trailer and merges nothing.
func (t *Transport) span(ctx *fasthttp.RequestCtx, refused func(string)) {
	args := ctx.QueryArgs()
	lo, err1 := strconv.ParseUint(string(args.Peek("lo")), 16, 64)
	hi, err2 := strconv.ParseUint(string(args.Peek("hi")), 16, 64)
	if err1 != nil || err2 != nil || (hi != 0 && lo >= hi) {
		writeError(ctx, fasthttp.StatusBadRequest, "want lo and hi as hex tokens, lo < hi or hi = 0")
		return
	}
	conn, timeout := ctx.Conn(), t.cfg.WriteTimeout
	ctx.SetWriteDeadline(time.Now().Add(timeout))
	ctx.SetContentTypeBytes(ctOctet)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		// The stream stops when its reader goes: a closed connection, a
		// failed write, or one stalled for the write timeout.
		sctx, cancel := connwatch.ClientContext(t.ctx, conn, 0, func() { refused("client_gone") })
		defer cancel()
		dw := &failingWriter{w: connwatch.NewDeadlineWriter(w, conn, timeout, sctx.Done()), cancel: cancel}
		if err := t.cfg.Local.ServeSpan(sctx, lo, hi, dw); err != nil {
			t.cfg.Logger.Warn("span stream cut short", "lo", lo, "hi", hi, "err", err)
			return
		}
		w.Flush()
	})
}

// merkle serves GET /internal/merkle?start=HEX&end=HEX&depth=N: the node's
// Merkle tree of the ring range (start, end] (merkle.go's message), for
// another owner's anti-entropy.
func (t *Transport) merkle(ctx *fasthttp.RequestCtx, refused func(string)) {
	args := ctx.QueryArgs()
	start, err1 := strconv.ParseUint(string(args.Peek("start")), 16, 64)
	end, err2 := strconv.ParseUint(string(args.Peek("end")), 16, 64)
	depth, err3 := strconv.Atoi(string(args.Peek("depth")))
	if err1 != nil || err2 != nil || err3 != nil || depth < 0 || depth > peer.MaxMerkleDepth {
		writeError(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("want start and end as hex tokens and depth 0 to %d", peer.MaxMerkleDepth))
		return
	}
	// Building the tree reads the whole range before the first byte of
	// the answer: bound it, and stop when the asking node hangs up.
	mctx, cancel := connwatch.ClientContext(t.ctx, ctx.Conn(), t.cfg.MerkleTimeout, func() { refused("client_gone") })
	defer cancel()
	m, err := t.cfg.Local.LocalMerkle(mctx, ring.Range{Start: start, End: end}, depth)
	if err != nil {
		t.writeLocalError(ctx, "internal_merkle", err)
		return
	}
	ctx.SetContentTypeBytes(ctOctet)
	ctx.SetBody(AppendMerkle(nil, m))
}

// Content types, precomputed so that the handlers do not convert strings.
var (
	ctJSON  = []byte("application/json")
	ctOctet = []byte("application/octet-stream")
)

// writeError replaces whatever response ctx holds with a JSON error,
// {"error":msg}, and status code, as httpd answers every error.
func writeError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(ctJSON)
	var b bytes.Buffer
	b.WriteString(`{"error":`)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(msg) // a string always encodes; Encode ends it with '\n'
	body := b.Bytes()
	body = append(body[:len(body)-1], "}\n"...)
	ctx.SetBody(body)
}

// writeLocalError answers a failed Local call with the status httpd gives
// the same error. 5xx causes other than unavailability are logged, since
// they mean a bug or a broken disk rather than a caller's mistake.
func (t *Transport) writeLocalError(ctx *fasthttp.RequestCtx, op string, err error) {
	code := fasthttp.StatusInternalServerError
	switch {
	case errors.Is(err, peer.ErrNotFound):
		code = fasthttp.StatusNotFound
	case errors.Is(err, peer.ErrDiskFull):
		code = fasthttp.StatusInsufficientStorage
	case errors.Is(err, peer.ErrUnavailable), errors.Is(err, context.Canceled):
		// Only Close cancels the handler's context.
		code = fasthttp.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = fasthttp.StatusGatewayTimeout
	}
	msg := err.Error()
	if code == fasthttp.StatusNotFound {
		msg = "key not found"
	}
	// Reads of a damaged span are logged by the engine, rate-limited.
	if code == fasthttp.StatusInternalServerError && !errors.Is(err, peer.ErrCorruption) {
		t.cfg.Logger.Error("request failed", "op", op, "uri", string(ctx.RequestURI()), "err", err)
	}
	writeError(ctx, code, msg)
}

// onlyGet answers 405 and reports false unless the request is a GET or a
// HEAD (which fasthttp answers like the GET, without the body).
func onlyGet(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	methodNotAllowed(ctx, "GET, HEAD")
	return false
}

// onlyPost answers 405 and reports false unless the request is a POST.
func onlyPost(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsPost() {
		return true
	}
	methodNotAllowed(ctx, "POST")
	return false
}

// methodNotAllowed answers 405 with the Allow header that lists the
// endpoint's methods.
func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method "+string(ctx.Method())+" not allowed; allowed: "+allow)
	ctx.Response.Header.Set("Allow", allow)
}

// failingWriter cancels the stream's context on the first write error,
// so that work paced between writes (a rate limit) stops as soon as the
// reader is known to be gone.
type failingWriter struct {
	w      *connwatch.DeadlineWriter
	cancel context.CancelFunc
}

func (f *failingWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		f.cancel()
	}
	return n, err
}
