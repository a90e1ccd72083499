package sstable

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"github.com/ringkv/ringkv/engine"
)

// A record stream carries the records of one span from a donor to a
// receiver that already takes writes for it (a node joining the ring):
// Send writes it from a snapshot, and Receive merges it into the
// receiver's store with last-writer-wins, so that the writes the receiver
// takes meanwhile are never lost, as they would be if it replaced the
// span. The stream is plain bytes, for any transport; Send documents its
// format.
const (
	streamMagic   = "RKVS"
	streamVersion = 2
	// streamV1 is the version before Paxos frames, still received: a
	// donor of an older release sends no acceptor state.
	streamV1  = 1
	headerLen = len(streamMagic) + 1 + 8 + 8

	frameRecord = 'r'
	framePaxos  = 'p'
	frameEnd    = 'E'
)

// MaxStreamKey is the longest storage key a stream may carry: the keyspace
// byte, the token and a user key of at most 4096 bytes.
const MaxStreamKey = 1 + 8 + 4096

// MaxValueSize is the largest value a node may be configured to accept
// (serve's --max-value-size), and so the largest a store holds.
const MaxValueSize = 512 << 20

// MaxStreamValue is the longest encoded record a stream may carry: the
// largest value plus room for the record header, so that every stored
// record can move. A corrupt length costs no more than the bytes that
// actually arrive (readBytes grows with them).
const MaxStreamValue = MaxValueSize + 64<<10

// ErrBadStream reports a stream that is not a whole, well-formed record
// stream: cut off, corrupt, or for another span. Nothing was merged.
// A stream whose records do not match its trailer is ErrMismatch.
var ErrBadStream = errors.New("sstable: malformed record stream")

// Send writes every record of snap in the span [lo, hi) to w as a record
// stream, in storage-key order, and returns the Digest of the records
// sent and the bytes written, paced by lim (nil: no limit; a Limiter
// shared by several Sends bounds them together). It checks ctx while it
// reads and while it waits; a Write blocked in w is
// for w's owner to end (an HTTP server does when the client goes away).
// It does not close w.
//
// The stream, version 2 (integers big-endian unless uvarint):
//
//	header   "RKVS" | version (1 byte) | lo (8 bytes) | hi (8 bytes)
//	record   'r' | uvarint len(key) | key | uvarint len(value) | value
//	paxos    'p' | uvarint len(key) | key | uvarint len(value) | value
//	trailer  'E' | uvarint keys | hash (8 bytes)
//
// with one record frame per record, each key a storage key of at most
// MaxStreamKey bytes and each value an encoded record of at most
// MaxStreamValue bytes, then one paxos frame per key of the span that
// has Paxos acceptor state (engine.Snapshot.ExportPaxosSpan: the key a
// storage key of the Paxos keyspace, the value the state, opaque here),
// all frames in storage-key order. The trailer carries the Digest of
// the frames (the number of frames, and the hash of each frame after its
// tag, records then states), that of the donor's snapshot of the span.
// The Digest returned counts the same frames. Nothing follows the
// trailer. Version 1 is the same without paxos frames.
func Send(ctx context.Context, snap *engine.Snapshot, lo, hi uint64, w io.Writer, lim *Limiter) (Digest, int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(lim.Writer(ctx, cw), 64<<10)
	var hdr [headerLen]byte
	copy(hdr[:], streamMagic)
	hdr[len(streamMagic)] = streamVersion
	binary.BigEndian.PutUint64(hdr[len(streamMagic)+1:], lo)
	binary.BigEndian.PutUint64(hdr[len(streamMagic)+9:], hi)
	_, err := bw.Write(hdr[:])
	d := newDigester()
	if err == nil {
		err = snap.ExportSpan(ctx, lo, hi, func(k, v []byte) error {
			if len(k) > MaxStreamKey || len(v) > MaxStreamValue {
				return fmt.Errorf("record %x of %d bytes is beyond the stream's bounds", k, len(v))
			}
			if err := bw.WriteByte(frameRecord); err != nil {
				return err
			}
			// After add, d.buf holds the record as the digest encodes it,
			// which is the frame's body.
			d.add(k, v)
			_, err := bw.Write(d.buf)
			return err
		})
	}
	if err == nil {
		err = snap.ExportPaxosSpan(ctx, lo, hi, func(k, v []byte) error {
			if len(k) > MaxStreamKey || len(v) > MaxStreamValue {
				return fmt.Errorf("paxos state %x of %d bytes is beyond the stream's bounds", k, len(v))
			}
			if err := bw.WriteByte(framePaxos); err != nil {
				return err
			}
			d.add(k, v)
			_, err := bw.Write(d.buf)
			return err
		})
	}
	sum := d.digest()
	if err == nil {
		b := append(d.buf[:0], frameEnd)
		b = binary.AppendUvarint(b, uint64(sum.Keys))
		b = binary.BigEndian.AppendUint64(b, sum.Hash)
		if _, err = bw.Write(b); err == nil {
			err = bw.Flush()
		}
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// The reader went away because the transfer was cancelled (a
			// closed pipe or connection): the cancellation is the cause.
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return Digest{}, cw.n, fmt.Errorf("cannot send span [%016x, %016x): %w", lo, hi, err)
	}
	return sum, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// progressEvery is how many bytes Receive reads between progress calls.
const progressEvery = 1 << 20

// Receive reads a record stream for the span [lo, hi) from r (to its end)
// and merges its records into e with last-writer-wins (engine.MergeSpan):
// every key of the span ends with the newer of its own record and the
// stream's, and writes to the span that land meanwhile are kept. The
// records are written to SSTables in dir (created if needed) on e's
// filesystem, a new one each targetFileSize bytes (DefaultTargetFileSize
// if 0 or less), fsynced with dir; they are merged all at once, and only
// once the trailer has arrived and matched the records, so the store gets
// the whole span or nothing of it. It returns the Digest of the records.
//
// On error nothing is merged and the files it wrote are removed: a
// stream that is cut off, badly framed or for another span is
// ErrBadStream; a well-framed record that is not a valid data record of
// the span (bad encoding, a key outside it, keys out of order) is
// engine.ErrInvalidTable; records that do not match the trailer are
// ErrMismatch. It checks ctx between
// records; a Read blocked in r is for r's owner to end (an HTTP client
// does when the request's context ends). progress, if not nil, is called
// with the bytes read so far about every MiB, and once with the total at
// the end of the stream. Files of a process that died mid-receive stay in
// dir; the caller clears it at startup.
func Receive(ctx context.Context, e *engine.Engine, lo, hi uint64, r io.Reader, dir string, targetFileSize int64, progress func(bytes int64)) (Digest, error) {
	return ReceivePaxos(ctx, e, lo, hi, r, dir, targetFileSize, progress, nil)
}

// PaxosEntry is one key's Paxos acceptor state, as a stream carries it:
// the user key and the state, opaque here.
type PaxosEntry struct{ Key, State []byte }

// PaxosSink takes the Paxos states of a received span, all of them at
// once, after its records were merged; Receive fails with its error.
// It must merge them into the store durably before it returns.
type PaxosSink func(ctx context.Context, states []PaxosEntry) error

// ReceivePaxos is Receive, and hands the stream's Paxos states to paxos
// (nil: they are checked, counted in the Digest and dropped) once the
// records are merged, so that a node that takes a range over gets its
// acceptors' state too. A paxos frame whose key is not a well-formed
// Paxos key of the span is engine.ErrInvalidTable, and nothing is
// merged. The states are held in memory until then: they are small
// (a key and three ballots) but for a proposal accepted and not yet
// committed, which holds its record.
func ReceivePaxos(ctx context.Context, e *engine.Engine, lo, hi uint64, r io.Reader, dir string, targetFileSize int64, progress func(bytes int64), paxos PaxosSink) (Digest, error) {
	if targetFileSize <= 0 {
		targetFileSize = DefaultTargetFileSize
	}
	// Staged tables count against the free-space floor, as writes do: a
	// pull into a full disk stops (and is retried) rather than take the
	// room flushes and compactions need.
	cr := &countReader{r: r, progress: progress, next: progressEvery, admit: e.AdmitBytes}
	x := exporter{
		fs:  e.FS(),
		dir: dir,
		// Random, so concurrent receives of a span never share a file.
		prefix: fmt.Sprintf("recv-%016x-%016x-%08x", lo, hi, rand.Uint32()),
		opts:   e.TableWriterOptions(),
		target: uint64(targetFileSize),
		d:      newDigester(),
	}
	x.dataDigest = x.d.digest() // that of no records
	err := x.fs.MkdirAll(dir, 0o755)
	if err == nil {
		err = x.readStream(ctx, bufio.NewReaderSize(cr, 256<<10), cr, lo, hi)
	}
	if err == nil && x.w != nil {
		err = x.finish()
	}
	if err == nil && len(x.files) > 0 {
		err = syncDir(x.fs, dir)
	}
	got := x.d.digest()
	if err == nil {
		if progress != nil {
			progress(cr.n)
		}
		paths := make([]string, len(x.files))
		for i, f := range x.files {
			paths[i] = f.Path
		}
		// The verifier re-reads from the files what arrived, so a file
		// damaged on this disk is refused too.
		err = e.MergeSpan(ctx, lo, hi, paths, &verifier{d: newDigester(), want: x.dataDigest})
	}
	if err == nil && paxos != nil && len(x.paxos) > 0 {
		err = paxos(ctx, x.paxos)
	}
	if err != nil {
		x.abort() // MergeSpan leaves the files of a refused merge
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// A transport broken by the cancellation says less than ctx.
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return Digest{}, fmt.Errorf("cannot receive span [%016x, %016x): %w", lo, hi, err)
	}
	return got, nil
}

// readStream reads a whole record stream for [lo, hi) from br into x's
// files, checking its trailer against what it read.
func (x *exporter) readStream(ctx context.Context, br *bufio.Reader, cr *countReader, lo, hi uint64) error {
	// at is the stream offset, for errors.
	at := func() int64 { return cr.n - int64(br.Buffered()) }
	bad := func(err error) error {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: cut off at byte %d", ErrBadStream, at())
		}
		return err // the transport's
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return bad(err)
	}
	if string(hdr[:len(streamMagic)]) != streamMagic {
		return fmt.Errorf("%w: it does not start with %q", ErrBadStream, streamMagic)
	}
	version := hdr[len(streamMagic)]
	if version != streamVersion && version != streamV1 {
		return fmt.Errorf("%w: version %d, want %d", ErrBadStream, version, streamVersion)
	}
	slo, shi := binary.BigEndian.Uint64(hdr[len(streamMagic)+1:]), binary.BigEndian.Uint64(hdr[len(streamMagic)+9:])
	if slo != lo || shi != hi {
		return fmt.Errorf("%w: it carries span [%016x, %016x)", ErrBadStream, slo, shi)
	}
	var key, prev, val []byte
	for n := 1; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		tag, err := br.ReadByte()
		if err != nil {
			return bad(err)
		}
		switch {
		case tag == frameRecord:
		case tag == framePaxos && version >= streamVersion:
		case tag == frameEnd:
			return x.readTrailer(br, bad)
		default:
			return fmt.Errorf("%w: unknown frame %q at byte %d", ErrBadStream, tag, at()-1)
		}
		if key, err = readBytes(br, key, 1, MaxStreamKey, "key"); err != nil {
			return bad(err)
		}
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("%w: key %x is not after %x", ErrBadStream, key, prev)
		}
		if val, err = readBytes(br, val, 0, MaxStreamValue, "value"); err != nil {
			return bad(err)
		}
		if tag == framePaxos {
			if err := x.addPaxos(key, val, lo, hi); err != nil {
				return err
			}
		} else {
			if x.paxos != nil {
				// A record after a state: the storage-key order above
				// already refuses it ('d' sorts before 'p').
				return fmt.Errorf("%w: record %x after the paxos states", ErrBadStream, key)
			}
			if err := x.add(key, val); err != nil {
				return err
			}
			x.dataDigest = x.d.digest()
		}
		prev, key = key, prev
	}
}

// addPaxos takes one paxos frame of the span [lo, hi).
func (x *exporter) addPaxos(k, v []byte, lo, hi uint64) error {
	u, tok, ok := engine.PaxosKey(k)
	if !ok {
		return fmt.Errorf("%w: malformed paxos key %x", engine.ErrInvalidTable, k)
	}
	if tok < lo || (hi != 0 && tok >= hi) {
		return fmt.Errorf("%w: paxos key %x is outside the span", engine.ErrInvalidTable, k)
	}
	x.d.add(k, v)
	x.paxos = append(x.paxos, PaxosEntry{Key: bytes.Clone(u), State: bytes.Clone(v)})
	return nil
}

// readTrailer reads the trailer after its tag and checks it against the
// records read.
func (x *exporter) readTrailer(br *bufio.Reader, bad func(error) error) error {
	keys, err := binary.ReadUvarint(br)
	if err != nil {
		return bad(err)
	}
	var h [8]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return bad(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%w: data after the trailer", ErrBadStream)
		}
		return err
	}
	want := Digest{Keys: int64(keys), Hash: binary.BigEndian.Uint64(h[:])}
	if got := x.d.digest(); got != want {
		return fmt.Errorf("%w: the stream holds %s, its trailer says %s", ErrMismatch, got, want)
	}
	return nil
}

// readBytes reads a uvarint length in [least, most] and that many bytes
// into buf, which it returns.
func readBytes(br *bufio.Reader, buf []byte, least, most int, what string) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: bad %s length: %w", ErrBadStream, what, err)
		}
		return buf, err
	}
	if n < uint64(least) || n > uint64(most) {
		return buf, fmt.Errorf("%w: %s of %d bytes", ErrBadStream, what, n)
	}
	buf = buf[:0]
	for len(buf) < int(n) {
		if len(buf) == cap(buf) {
			// Grow with what arrives, not with what the length claims: a
			// corrupt length must not allocate MaxStreamValue.
			buf = slices.Grow(buf, min(int(n)-len(buf), max(len(buf), 4<<10)))
		}
		m, err := io.ReadFull(br, buf[len(buf):min(int(n), cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// countReader counts the bytes read from r and reports them to progress
// every progressEvery bytes.
type countReader struct {
	r        io.Reader
	n, next  int64
	progress func(int64)
	// admit, when set, is asked before the bytes read are staged: a
	// refusal (the disk is below its free-space floor) ends the receive.
	admit func(n int) error
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.admit != nil {
		if aerr := c.admit(n); aerr != nil {
			return 0, aerr
		}
	}
	c.n += int64(n)
	if c.progress != nil && c.n >= c.next {
		c.progress(c.n)
		c.next = c.n + progressEvery
	}
	return n, err
}
