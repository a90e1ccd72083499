package httpd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// Cluster and internode endpoints:
//
//	GET  /v1/cluster             members, states, replicas, hints (Cluster.ClusterStatus)
//	GET  /v1/ring?key=K          the owners of K, primary first
//	POST /v1/cluster/remove?id=ID  take a dead node out of the ring
//	POST /v1/cluster/leave       start this node's graceful leave (202)
//	POST /internal/apply         store a batch of records (peer wire format)
//	POST /internal/read          this node's record of the key in the body
//	POST /internal/scan          one page of this node's records
//	GET  /internal/gossip        gossip addresses, for /add-node
//	GET  /internal/span          this node's records of a token span, as a stream
//	GET  /internal/merkle        this node's Merkle tree of a ring range
//
// With a cluster secret (Config.Secrets), /internal/ refuses calls
// without a valid signature (sign.go), and with Config.RequirePeerCert
// calls without a certificate of the cluster CA naming the caller (401).

func (s *Server) needCluster(ctx *fasthttp.RequestCtx) bool {
	if s.cluster == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node does not run clustering")
		return false
	}
	return true
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, op string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeStoreError(ctx, op, err)
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(b, '\n'))
}

// clusterStatus serves GET /v1/cluster.
func (s *Server) clusterStatus(ctx *fasthttp.RequestCtx) {
	if onlyGet(ctx) && s.needCluster(ctx) {
		s.writeJSON(ctx, "cluster", s.cluster.ClusterStatus())
	}
}

// ringOwners serves GET /v1/ring?key=K.
func (s *Server) ringOwners(ctx *fasthttp.RequestCtx) {
	if !onlyGet(ctx) || !s.needCluster(ctx) {
		return
	}
	key := ctx.QueryArgs().Peek("key")
	if len(key) == 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "missing key")
		return
	}
	if len(key) > s.cfg.MaxKeySize {
		writeError(ctx, fasthttp.StatusBadRequest, "key too long")
		return
	}
	o, err := s.cluster.Owners(key)
	if err != nil {
		s.writeClusterError(ctx, "ring", err)
		return
	}
	s.writeJSON(ctx, "ring", o)
}

// clusterRemove serves POST /v1/cluster/remove?id=ID.
func (s *Server) clusterRemove(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	if !s.needCluster(ctx) {
		return
	}
	id := string(ctx.QueryArgs().Peek("id"))
	if id == "" {
		writeError(ctx, fasthttp.StatusBadRequest, "missing id")
		return
	}
	if err := s.cluster.RemoveNode(id); err != nil {
		s.writeClusterError(ctx, "cluster_remove", err)
		return
	}
	s.writeJSON(ctx, "cluster_remove", map[string]string{"status": "removed", "id": id})
}

// clusterLeave serves POST /v1/cluster/leave: the node takes itself out of
// the ring and hands its ranges over in the background; 202 at once, and
// GET /v1/cluster shows the progress ("leave").
func (s *Server) clusterLeave(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	if !s.needCluster(ctx) {
		return
	}
	if err := s.cluster.StartLeave(); err != nil {
		s.writeClusterError(ctx, "cluster_leave", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(append(append([]byte(`{"status":"leaving","node":`), appendJSONString(nil, s.cfg.NodeID)...), "}\n"...))
}

// writeClusterError maps errors of cluster changes to statuses.
func (s *Server) writeClusterError(ctx *fasthttp.RequestCtx, op string, err error) {
	switch {
	case errors.Is(err, peer.ErrUnknownMember):
		writeError(ctx, fasthttp.StatusNotFound, err.Error())
	case errors.Is(err, peer.ErrMemberAlive), errors.Is(err, peer.ErrOnlyMember):
		writeError(ctx, fasthttp.StatusConflict, err.Error())
	case errors.Is(err, peer.ErrNoMembership), errors.Is(err, peer.ErrInvalidKey):
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
	default:
		s.writeStoreError(ctx, op, err)
	}
}

// normalizeAddr accepts go-kvstore's "http://host:port" as well as host:port.
func normalizeAddr(a string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(a) > len(p) && a[:len(p)] == p {
			a = a[len(p):]
		}
	}
	for len(a) > 0 && a[len(a)-1] == '/' {
		a = a[:len(a)-1]
	}
	return a
}

// internal serves the internode endpoints.
func (s *Server) internal(ctx *fasthttp.RequestCtx, o op) {
	if !s.authInternal(ctx) {
		return
	}
	if !s.needCluster(ctx) {
		return
	}
	if o == opInternalGossip {
		if onlyGet(ctx) {
			s.writeJSON(ctx, "internal_gossip", s.cluster.GossipAddrs())
		}
		return
	}
	if o == opInternalSpan {
		s.internalSpan(ctx)
		return
	}
	if o == opInternalMerkle {
		s.internalMerkle(ctx)
		return
	}
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	body := ctx.PostBody()
	switch o {
	case opInternalApply:
		ms, err := peer.DecodeApply(body)
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		if err := s.cluster.ApplyLocal(ms); err != nil {
			if errors.Is(err, peer.ErrBadMessage) || errors.Is(err, peer.ErrInvalidKey) {
				writeError(ctx, fasthttp.StatusBadRequest, err.Error())
				return
			}
			if errors.Is(err, peer.ErrClockOffset) {
				// The coordinator must know: a clock refusal is kept as
				// no hint (Transport maps 409 back to ErrClockOffset).
				writeError(ctx, fasthttp.StatusConflict, err.Error())
				return
			}
			if errors.Is(err, peer.ErrNotOwner) {
				// Not this replica's key: nothing was stored.
				writeError(ctx, fasthttp.StatusForbidden, err.Error())
				return
			}
			s.writeStoreError(ctx, "internal_apply", err)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case opInternalRead:
		keys, err := peer.DecodeRead(body)
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		// Each record is read into the body after its length prefix's
		// worst case, then moved down over the unused prefix bytes.
		b := peer.AppendRecordsHeader(ctx.Response.SwapBody(nil)[:0], len(keys))
		for _, k := range keys {
			at := len(b)
			b = append(b, make([]byte, binary.MaxVarintLen64)...)
			b, err = s.cluster.ReadLocal(b, k)
			if errors.Is(err, peer.ErrNotFound) {
				b, err = peer.AppendRecord(b[:at], nil), nil
				continue
			}
			if errors.Is(err, peer.ErrRangePending) {
				// Rare (a range being moved): copy what the node holds
				// out of the way of the answer being built over it.
				var from []string
				if pe := (*peer.PendingError)(nil); errors.As(err, &pe) {
					from = pe.From
				}
				rec := bytes.Clone(b[at+binary.MaxVarintLen64:])
				b, err = peer.AppendPending(b[:at], rec, from), nil
				continue
			}
			if errors.Is(err, peer.ErrCorruption) {
				// This key's record is in a damaged file: it fails
				// alone, and the coordinator asks another replica.
				b, err = peer.AppendFailed(b[:at], err.Error()), nil
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
			s.writeStoreError(ctx, "internal_read", err)
			return
		}
		ctx.SetContentTypeBytes(ctOctet)
	case opInternalScan:
		q, err := peer.DecodeScan(body)
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		// A coordinator gives up after its request timeout; waiting
		// longer for a slot would only answer nobody.
		if !s.acquireInternalScan(internalScanWait) {
			writeError(ctx, fasthttp.StatusTooManyRequests, "this node runs "+strconv.Itoa(cap(s.lim.internalScans))+" internode scans at once already")
			return
		}
		q.MaxBytes = s.cfg.Limits.MaxScanBytes
		p, err := s.cluster.ScanLocal(s.storeCtx, q)
		s.releaseInternalScan()
		if err != nil {
			s.writeStoreError(ctx, "internal_scan", err)
			return
		}
		ctx.SetContentTypeBytes(ctOctet)
		ctx.SetBody(peer.AppendScanPage(nil, p))
	}
}

// authInternal checks the credentials of an internode call: its
// certificate with Config.RequirePeerCert, its signature with a cluster
// secret. It answers 401 and reports false when they fail.
func (s *Server) authInternal(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	node := h.Peek(NodeHeader)
	if s.cfg.RequirePeerCert {
		cs := ctx.TLSConnectionState()
		if cs == nil || len(cs.PeerCertificates) == 0 {
			writeError(ctx, fasthttp.StatusUnauthorized, "internode call without a certificate of the cluster CA")
			return false
		}
		// The listener verified the chain; the name ties the certificate
		// to the node the call claims to come from.
		if !certNames(cs.PeerCertificates[0], string(node)) {
			writeError(ctx, fasthttp.StatusUnauthorized, fmt.Sprintf("the certificate of the call does not name node %q (%s)", node, NodeHeader))
			return false
		}
	}
	if s.cfg.Secrets.Enabled() {
		err := verifySignature(s.cfg.Secrets.All(), h.Method(), h.RequestURI(), node, h.Peek(TimeHeader), h.Peek(SignatureHeader),
			ctx.PostBody(), time.Now(), s.cfg.SignatureWindow)
		if err != nil {
			writeError(ctx, fasthttp.StatusUnauthorized, err.Error())
			return false
		}
	}
	return true
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
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		// The stream stops when its reader goes: a closed connection, a
		// failed write, or one stalled for the write timeout.
		sctx, cancel := s.clientContext(conn, 0)
		defer cancel()
		dw := &failingWriter{w: &deadlineWriter{w: w, conn: conn, timeout: timeout, done: sctx.Done()}, cancel: cancel}
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
	// Building the tree reads the whole range before the first byte of
	// the answer: bound it, and stop when the asking node hangs up.
	mctx, cancel := s.clientContext(ctx.Conn(), s.cfg.Limits.MerkleTimeout)
	defer cancel()
	t, err := s.cluster.LocalMerkle(mctx, ring.Range{Start: start, End: end}, depth)
	if err != nil {
		s.writeStoreError(ctx, "internal_merkle", err)
		return
	}
	ctx.SetContentTypeBytes(ctOctet)
	ctx.SetBody(peer.AppendMerkle(nil, t))
}
