package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
)

// Paxos messages of conditional writes (peer/paxos.go) travel one per
// request to /internal/paxos, not batched: a round is latency-bound, and
// each message is fsynced on its own.
//
//	paxos request: 'X' 1 | kind (1 prepare, 2 propose, 3 commit) | ballot | len key | key | len rec | rec
//	paxos reply:   'Y' 1 | ok (0/1) | promised | accepted | committed | len value | value | has current (0/1) | len current | current
//
// with each ballot 16 bytes: its TS then its Node, big-endian.
const (
	kindPaxos      = 'X'
	kindPaxosReply = 'Y'
)

func appendBallot(dst []byte, b peer.Ballot) []byte {
	dst = binary.BigEndian.AppendUint64(dst, b.TS)
	return binary.BigEndian.AppendUint64(dst, b.Node)
}

func (r *reader) ballot() peer.Ballot {
	if r.err != nil {
		return peer.Ballot{}
	}
	if len(r.b) < 16 {
		r.fail("ballot truncated")
		return peer.Ballot{}
	}
	b := peer.Ballot{TS: binary.BigEndian.Uint64(r.b), Node: binary.BigEndian.Uint64(r.b[8:])}
	r.b = r.b[16:]
	return b
}

func (r *reader) byte1(max byte, what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 || r.b[0] > max {
		r.fail("bad %s", what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// AppendPaxos appends the message of req to dst.
func AppendPaxos(dst []byte, req peer.PaxosRequest) []byte {
	dst = append(dst, kindPaxos, wireV1, byte(req.Kind))
	dst = appendBallot(dst, req.Ballot)
	dst = appendBytes(dst, req.Key)
	return appendBytes(dst, req.Record)
}

// DecodePaxos parses a Paxos message; its key and record alias b. A
// proposal's or commit's record has been checked to decode.
func DecodePaxos(b []byte) (peer.PaxosRequest, error) {
	r := reader{b: b}
	r.header(kindPaxos)
	req := peer.PaxosRequest{Kind: peer.PaxosKind(r.byte1(byte(peer.PaxosCommit), "paxos kind"))}
	req.Ballot = r.ballot()
	req.Key = r.bytes(peer.MaxKeySize, "key")
	req.Record = r.bytes(maxRecord, "record")
	r.end()
	if r.err != nil {
		return peer.PaxosRequest{}, r.err
	}
	switch {
	case req.Kind == 0:
		r.fail("bad paxos kind")
	case len(req.Key) == 0:
		r.fail("empty key")
	case req.Kind == peer.PaxosPrepare && len(req.Record) > 0:
		r.fail("a prepare with a record")
	case req.Kind != peer.PaxosPrepare && len(req.Record) > 0:
		// (An empty one is a no-op: a fence of a key with no record.)
		if _, err := memtable.Decode(req.Record); err != nil {
			r.fail("record of %q: %v", req.Key, err)
		}
	}
	if len(req.Record) == 0 {
		req.Record = nil
	}
	return req, r.err
}

// AppendPaxosReply appends the answer rep to dst.
func AppendPaxosReply(dst []byte, rep peer.PaxosReply) []byte {
	ok := byte(0)
	if rep.OK {
		ok = 1
	}
	dst = append(dst, kindPaxosReply, wireV1, ok)
	dst = appendBallot(dst, rep.Promised)
	dst = appendBallot(dst, rep.Accepted)
	dst = appendBallot(dst, rep.Committed)
	dst = appendBytes(dst, rep.Value)
	if rep.Current == nil {
		return append(dst, 0, 0)
	}
	dst = append(dst, 1)
	return appendBytes(dst, rep.Current)
}

// DecodePaxosReply parses an answer; its records alias b and have been
// checked to decode.
func DecodePaxosReply(b []byte) (peer.PaxosReply, error) {
	r := reader{b: b}
	r.header(kindPaxosReply)
	rep := peer.PaxosReply{OK: r.byte1(1, "ok") == 1}
	rep.Promised, rep.Accepted, rep.Committed = r.ballot(), r.ballot(), r.ballot()
	rep.Value = r.bytes(maxRecord, "accepted value")
	hasCur := r.byte1(1, "current flag") == 1
	rep.Current = r.bytes(maxRecord, "current record")
	r.end()
	if r.err != nil {
		return peer.PaxosReply{}, r.err
	}
	if len(rep.Value) == 0 {
		rep.Value = nil
	} else if _, err := memtable.Decode(rep.Value); err != nil {
		r.fail("accepted value: %v", err)
	}
	switch {
	case !hasCur && len(rep.Current) > 0:
		r.fail("a current record flagged absent")
	case !hasCur:
		rep.Current = nil
	default:
		if _, err := memtable.Decode(rep.Current); err != nil {
			r.fail("current record: %v", err)
		}
	}
	return rep, r.err
}

// Paxos is peer.Transport.Paxos: one request to addr's /internal/paxos.
func (t *Transport) Paxos(ctx context.Context, addr string, req peer.PaxosRequest) (peer.PaxosReply, error) {
	body := AppendPaxos(nil, req)
	var out []byte
	if err := t.post(addr, "/internal/paxos", body, deadlineOf(ctx), fasthttp.StatusOK, &out); err != nil {
		return peer.PaxosReply{}, err
	}
	rep, err := DecodePaxosReply(out)
	if err != nil {
		return peer.PaxosReply{}, fmt.Errorf("%s/internal/paxos: %w", addr, err)
	}
	return rep, nil
}

// paxos serves POST /internal/paxos.
func (t *Transport) paxos(ctx *fasthttp.RequestCtx) {
	req, err := DecodePaxos(ctx.PostBody())
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	rep, err := t.cfg.Local.Paxos(req)
	switch {
	case errors.Is(err, peer.ErrNotOwner):
		writeError(ctx, fasthttp.StatusForbidden, err.Error())
	case errors.Is(err, peer.ErrClockOffset):
		writeError(ctx, fasthttp.StatusConflict, err.Error())
	case errors.Is(err, peer.ErrRangePending):
		writeError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
	case errors.Is(err, peer.ErrDiskFull):
		writeError(ctx, fasthttp.StatusInsufficientStorage, err.Error())
	case errors.Is(err, peer.ErrBadMessage), errors.Is(err, peer.ErrInvalidKey):
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
	case err != nil:
		t.cfg.Logger.Error("internode paxos", "err", err)
		writeError(ctx, fasthttp.StatusInternalServerError, err.Error())
	default:
		ctx.SetContentTypeBytes(ctOctet)
		ctx.SetBody(AppendPaxosReply(nil, rep))
	}
}
