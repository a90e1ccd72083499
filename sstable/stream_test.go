package sstable

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// createFS counts the files created under dir "xfer", and can fail the
// n-th of them.
type createFS struct {
	vfs.FS
	creates atomic.Int32
	failAt  atomic.Int32 // 0: never
}

var errDiskFull = errors.New("disk full")

func (fs *createFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasPrefix(name, "xfer") && strings.HasSuffix(name, ".sst") {
		if n := fs.creates.Add(1); n == fs.failAt.Load() {
			return nil, errDiskFull
		}
	}
	return fs.FS.Create(name, cat)
}

// transfer sends snap's span [lo, hi) to e through a pipe, as a transport
// would, and returns both sides' results.
func transfer(ctx context.Context, snap *engine.Snapshot, e *engine.Engine, lo, hi uint64, target int64, rate int64, progress func(int64)) (sent, got Digest, n int64, sendErr, recvErr error) {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		sent, n, sendErr = Send(ctx, snap, lo, hi, pw, NewLimiter(rate))
		pw.CloseWithError(sendErr)
	})
	got, recvErr = Receive(ctx, e, lo, hi, pr, "xfer", target, progress)
	pr.CloseWithError(errors.New("receiver gone")) // as a server drops the connection
	wg.Wait()
	return sent, got, n, sendErr, recvErr
}

// TestSendReceive: the receiver ends with, for each key of the span, the
// newer of its own record and the donor's snapshot's, and its keys outside
// the span as they were; both sides' digests are the donor's digestSpan.
func TestSendReceive(t *testing.T) {
	for _, c := range []struct {
		name   string
		spans  []ring.Span
		keys   int
		target int64
		files  int32 // files Receive writes, over all spans; -1: more than one
	}{
		{"small span as a batch", []ring.Span{{Lo: upper, Hi: 0}}, 300, 0, 1},
		{"one span", []ring.Span{{Lo: upper, Hi: 0}}, 4000, 64 << 10, -1},
		{"whole ring", ring.Range{Start: 7, End: 7}.Spans(), 4000, 64 << 10, -1},
		{"wrapping range", ring.Range{Start: 3 << 62, End: 1 << 62}.Spans(), 4000, 32 << 10, -1},
		{"empty span", []ring.Span{{Lo: 12345, Hi: 12346}}, 1000, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			fs := &createFS{FS: vfs.NewMem()}
			a, b := openEngine(t, fs, "a"), openEngine(t, fs, "b")
			defer a.Close()
			defer b.Close()
			ts := memtable.TimestampAt(time.Now())
			donor(t, a, c.keys, ts)
			receiver(t, b, c.keys, ts)
			snap, err := a.NewSnapshot()
			must(t, err)
			defer snap.Close()
			fromA, before := records(t, snap), records(t, b)
			must(t, a.Write([]byte("key-1"), rec(ts+100, "after the snapshot"), false))

			var last int64
			for _, s := range c.spans {
				sent, got, n, sendErr, recvErr := transfer(ctx, snap, b, s.Lo, s.Hi, c.target, 0, func(n int64) { last = n })
				must(t, sendErr)
				must(t, recvErr)
				want, err := digestSpan(ctx, snap, s.Lo, s.Hi)
				must(t, err)
				if sent != want || got != want {
					t.Fatalf("sent %v, received %v, DigestSpan %v", sent, got, want)
				}
				if last != n {
					t.Fatalf("progress ended at %d bytes, %d were sent", last, n)
				}
			}
			if n := fs.creates.Load(); c.files >= 0 && n != c.files || c.files < 0 && n < 2 {
				t.Fatalf("%d files written, want %d", n, c.files)
			}
			after := records(t, b)
			want := maps.Clone(before)
			kept := 0 // keys of the span where the receiver's record is newer
			for k, v := range fromA {
				tok := binary.BigEndian.Uint64([]byte(k[1:]))
				if !inSpans(tok, c.spans) {
					continue
				}
				if want[k] == nil || newer(t, v, want[k]) {
					want[k] = v
				} else {
					kept++
				}
			}
			if len(after) != len(want) {
				t.Fatalf("receiver holds %d records, want %d", len(after), len(want))
			}
			for k, v := range want {
				if !bytes.Equal(after[k], v) {
					t.Fatalf("%x: receiver holds %x, want %x", k, after[k], v)
				}
			}
			if kept == 0 && len(fromA) > 0 && c.name != "empty span" {
				t.Fatal("no key of the span is newer on the receiver: the test tests no merge")
			}
			// Spot-check reads, which go through the row cache.
			for i := 0; i < c.keys; i += 97 {
				k := []byte(fmt.Sprint("key-", i))
				_, r, err := b.Get(nil, k)
				w, ok := want[string(storageKey(string(k)))]
				if !ok && errors.Is(err, engine.ErrNotFound) {
					continue
				}
				must(t, err)
				if !bytes.Equal(r.Append(nil), w) {
					t.Fatalf("%s: Get = %+v, want %x", k, r, w)
				}
			}
			if left, _ := fs.List("xfer"); len(left) != 0 {
				t.Fatalf("files left after receive: %v", left)
			}
		})
	}
}

// records returns every record of src by storage key.
func records(t *testing.T, src source) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	must(t, src.ExportSpan(context.Background(), 0, 0, func(k, v []byte) error {
		m[string(k)] = bytes.Clone(v)
		return nil
	}))
	return m
}

func newer(t *testing.T, a, b []byte) bool {
	t.Helper()
	ok, err := memtable.Newer(a, b)
	must(t, err)
	return ok
}

// stream returns the record stream of e's span [lo, hi).
func stream(t testing.TB, e *engine.Engine, lo, hi uint64) []byte {
	t.Helper()
	snap, err := e.NewSnapshot()
	must(t, err)
	defer snap.Close()
	var buf bytes.Buffer
	_, n, err := Send(context.Background(), snap, lo, hi, &buf, nil)
	must(t, err)
	if n != int64(buf.Len()) {
		t.Fatalf("Send says %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// frames builds a stream of the given records (storage key, value pairs)
// with a correct trailer, or with the trailer's hash changed by flip.
func frames(lo, hi uint64, kvs [][2][]byte, flip uint64) []byte {
	b := append([]byte(streamMagic), streamVersion)
	b = binary.BigEndian.AppendUint64(b, lo)
	b = binary.BigEndian.AppendUint64(b, hi)
	d := newDigester()
	for _, kv := range kvs {
		d.add(kv[0], kv[1])
		b = append(append(b, frameRecord), d.buf...)
	}
	sum := d.digest()
	b = append(b, frameEnd)
	b = binary.AppendUvarint(b, uint64(sum.Keys))
	return binary.BigEndian.AppendUint64(b, sum.Hash^flip)
}

// storageKey is the engine's storage key of user key k (see engine/keys.go).
func storageKey(k string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{'d'}, engine.Token([]byte(k))), k...)
}

// TestReceiveRejects: a stream that is cut off, altered, ends badly or
// breaks the engine's rules is refused; the receiver is unchanged and no
// file is left behind.
func TestReceiveRejects(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	fs := &createFS{FS: vfs.NewMem()}
	a := openEngine(t, fs, "a")
	defer a.Close()
	donor(t, a, 4000, ts)
	good := stream(t, a, 0, 0)
	small := stream(t, a, 3<<62, 0)
	rec1 := rec(ts, "v").Append(nil)
	k1, k2 := storageKey("k1"), storageKey("k2")
	if bytes.Compare(k1, k2) > 0 {
		k1, k2 = k2, k1
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }

	type tc struct {
		name   string
		data   []byte
		lo, hi uint64
		want   error
		failAt int32 // fail the n-th file's creation
	}
	cases := []tc{
		{name: "wrong digest", data: frames(0, 0, [][2][]byte{{k1, rec1}, {k2, rec1}}, 1), want: ErrMismatch},
		{name: "wrong key count", data: with(func(b []byte) []byte {
			// Rewrite the trailer with one key more.
			n := len(b) - 8 - 1 - uvarintLen(4000)
			return append(binary.AppendUvarint(b[:n+1:n+1], 4001), b[len(b)-8:]...)
		}), want: ErrMismatch},
		{name: "trailing data", data: append(bytes.Clone(good), 0), want: ErrBadStream},
		{name: "another stream after", data: append(bytes.Clone(small), small...), lo: 3 << 62, want: ErrBadStream},
		{name: "bad magic", data: with(func(b []byte) []byte { b[0] = 'X'; return b }), want: ErrBadStream},
		{name: "bad version", data: with(func(b []byte) []byte { b[4] = 3; return b }), want: ErrBadStream},
		{name: "another span", data: small, want: ErrBadStream},
		{name: "unknown frame", data: with(func(b []byte) []byte { b[headerLen] = 'x'; return b }), want: ErrBadStream},
		{name: "empty key", data: frames(0, 0, [][2][]byte{{nil, rec1}}, 0), want: ErrBadStream},
		{name: "key too long", data: frames(0, 0, [][2][]byte{{storageKey(strings.Repeat("k", 4097)), rec1}}, 0), want: ErrBadStream},
		{name: "value too long", data: append(append(good[:headerLen:headerLen], frameRecord, 2, 'd', 'k'), binary.AppendUvarint(nil, MaxStreamValue+1)...), want: ErrBadStream},
		{name: "length overflow", data: append(good[:headerLen:headerLen], frameRecord, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), want: ErrBadStream},
		{name: "keys out of order", data: frames(0, 0, [][2][]byte{{k2, rec1}, {k1, rec1}}, 0), want: ErrBadStream},
		{name: "key twice", data: frames(0, 0, [][2][]byte{{k1, rec1}, {k1, rec1}}, 0), want: ErrBadStream},
		// Well-formed streams with a right trailer that MergeSpan refuses.
		{name: "key outside the span", data: frames(0, 1<<62, [][2][]byte{{storageKey(keyOutside(1 << 62)), rec1}}, 0), hi: 1 << 62, want: engine.ErrInvalidTable},
		{name: "bad record", data: frames(0, 0, [][2][]byte{{k1, rec1}, {k2, []byte("junk")}}, 0), want: engine.ErrInvalidTable},
		{name: "not a data key", data: frames(0, 0, [][2][]byte{{[]byte("mname"), rec1}}, 0), want: engine.ErrInvalidTable},
		{name: "disk fails on the 2nd file", data: good, want: errDiskFull, failAt: 2},
	}
	// Cut off anywhere: in the header, in a frame, at a frame's end, in
	// the trailer, one byte short.
	for _, n := range []int{0, 3, headerLen, headerLen + 1, headerLen + 2, 1000, len(good) / 2, len(good) - 9, len(good) - 8, len(good) - 1} {
		cases = append(cases, tc{name: fmt.Sprint("cut at ", n), data: good[:n], want: ErrBadStream})
	}
	// A flipped bit anywhere: a length, a key, a value, the trailer.
	for _, i := range []int{headerLen + 1, headerLen + 2, headerLen + 5, headerLen + 30, 7777, len(good) / 2, len(good) - 12, len(good) - 9, len(good) - 3} {
		cases = append(cases, tc{name: fmt.Sprint("flip at ", i), data: with(func(b []byte) []byte { b[i] ^= 0x10; return b })})
	}
	var wrote int32 // files created, over all cases
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			b := openEngine(t, fs, fmt.Sprint("b", i))
			defer b.Close()
			receiver(t, b, 600, ts)
			before, err := digestSpan(ctx, b, 0, 0)
			must(t, err)
			fs.creates.Store(0)
			fs.failAt.Store(c.failAt)
			defer fs.failAt.Store(0)
			_, err = Receive(ctx, b, c.lo, c.hi, bytes.NewReader(c.data), "xfer", 32<<10, nil)
			wrote += fs.creates.Load()
			if err == nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Receive = %v, want %v", err, c.want)
			}
			t.Log(err)
			if after, err := digestSpan(ctx, b, 0, 0); err != nil || after != before {
				t.Fatalf("receiver changed by a refused stream: %v, want %v (%v)", after, before, err)
			}
			if left, _ := fs.List("xfer"); len(left) != 0 {
				t.Fatalf("files left: %v", left)
			}
		})
	}
	// The tampering hit files that were written: the refusals were not
	// all before the first file.
	if wrote == 0 {
		t.Fatal("no case wrote a file")
	}
}

func uvarintLen(x uint64) int { return len(binary.AppendUvarint(nil, x)) }

func keyOutside(hi uint64) string {
	for i := 0; ; i++ {
		if k := fmt.Sprint("out-", i); engine.Token([]byte(k)) >= hi {
			return k
		}
	}
}

// TestReceiveTransportError: an error from the reader aborts the receive
// with that error.
func TestReceiveTransportError(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	a, b := openEngine(t, fs, "a"), openEngine(t, fs, "b")
	defer a.Close()
	defer b.Close()
	donor(t, a, 4000, ts)
	good := stream(t, a, 0, 0)
	errReset := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(good[:len(good)/2]), iotestErrReader{errReset})
	if _, err := Receive(context.Background(), b, 0, 0, r, "xfer", 32<<10, nil); !errors.Is(err, errReset) {
		t.Fatalf("Receive = %v, want %v", err, errReset)
	}
	if d, err := digestSpan(context.Background(), b, 0, 0); err != nil || d.Keys != 0 {
		t.Fatalf("receiver holds %v (%v)", d, err)
	}
	if left, _ := fs.List("xfer"); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// TestSendRate: a limited Send takes at least its bytes, less one burst,
// over its rate.
// Only the lower bound is checked; a busy machine is slower, never faster.
func TestSendRate(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	a := openEngine(t, vfs.NewMem(), "a")
	defer a.Close()
	donor(t, a, 8000, ts) // about 1 MiB
	snap, err := a.NewSnapshot()
	must(t, err)
	defer snap.Close()
	const rate = 4 << 20
	start := time.Now()
	_, n, err := Send(context.Background(), snap, 0, 0, io.Discard, NewLimiter(rate))
	must(t, err)
	took := time.Since(start)
	if n < 900<<10 {
		t.Fatalf("only %d bytes sent", n)
	}
	// A Limiter lets one burst through unpaced.
	if min := time.Duration(float64(n-limitBurst) / rate * 0.8 * float64(time.Second)); took < min {
		t.Fatalf("%d bytes at %d B/s took %v, want at least %v", n, rate, took, min)
	}
	t.Logf("%d bytes in %v", n, took)
}

// TestTransferCancel: cancelling the context stops a sender waiting on
// its rate and a receiver waiting on the sender, and nothing is merged.
func TestTransferCancel(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	a, b := openEngine(t, fs, "a"), openEngine(t, fs, "b")
	defer a.Close()
	defer b.Close()
	donor(t, a, 8000, ts)
	snap, err := a.NewSnapshot()
	must(t, err)
	defer snap.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var sendErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _, sendErr = Send(ctx, snap, 0, 0, pw, NewLimiter(16<<10)) // a minute for the span
		pw.CloseWithError(sendErr)
	})
	first := make(chan struct{})
	r := &firstRead{r: pr, first: first}
	wg.Go(func() { <-first; cancel() })
	_, recvErr := Receive(ctx, b, 0, 0, r, "xfer", 32<<10, nil)
	pr.Close()
	wg.Wait()
	if !errors.Is(sendErr, context.Canceled) || !errors.Is(recvErr, context.Canceled) {
		t.Fatalf("Send = %v, Receive = %v; want both cancelled", sendErr, recvErr)
	}
	if d, err := digestSpan(context.Background(), b, 0, 0); err != nil || d.Keys != 0 {
		t.Fatalf("receiver holds %v (%v)", d, err)
	}
	if left, _ := fs.List("xfer"); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}

	// A receiver reading a fast stream stops too.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := Receive(ctx, b, 0, 0, bytes.NewReader(stream(t, a, 0, 0)), "xfer", 32<<10, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive = %v, want cancelled", err)
	}
	// And a sender writing to a fast writer.
	if _, _, err := Send(ctx, snap, 0, 0, io.Discard, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want cancelled", err)
	}
}

// firstRead closes first once its first Read has returned data.
type firstRead struct {
	r     io.Reader
	first chan struct{}
	once  sync.Once
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 {
		f.once.Do(func() { close(f.first) })
	}
	return n, err
}

// FuzzReceive: whatever the bytes, Receive does not panic, and it merges
// something only from a whole stream whose trailer matches its records.
func FuzzReceive(f *testing.F) {
	ts := memtable.TimestampAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fs := vfs.NewMem()
	a := openEngine(f, fs, "a")
	defer a.Close()
	for i := range 20 {
		r := rec(ts+uint64(i), value(i)[:i])
		if i%5 == 0 {
			r.Tombstone, r.Value = true, nil
		}
		must(f, a.Write(fmt.Appendf(nil, "k%d", i), r, false))
	}
	f.Add(stream(f, a, 0, 0))
	f.Add(stream(f, a, 5, 5))
	f.Add(stream(f, a, 0, 0)[:60])
	f.Add(frames(0, 0, [][2][]byte{{storageKey("k1"), rec(ts, "v").Append(nil)}}, 0))
	f.Add(frames(0, 0, nil, 0))
	for i := range 20 {
		if i%4 == 0 {
			must(f, a.WritePaxos(fmt.Appendf(nil, "k%d", i), []byte("state"), nil))
		}
	}
	f.Add(stream(f, a, 0, 0)) // with paxos frames
	f.Add([]byte(streamMagic))
	b := openEngine(f, fs, "b")
	defer b.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		before, err := digestSpan(ctx, b, 0, 0)
		must(t, err)
		_, err = Receive(ctx, b, 0, 0, bytes.NewReader(data), "xfer", 4<<10, nil)
		if left, _ := fs.List("xfer"); len(left) != 0 {
			t.Fatalf("files left: %v", left)
		}
		if err != nil {
			if after, derr := digestSpan(ctx, b, 0, 0); derr != nil || after != before {
				t.Fatalf("refused stream (%v) changed the receiver: %v, want %v (%v)", err, after, before, derr)
			}
			return
		}
		// Accepted: it must parse as a whole stream with a right trailer,
		// and the receiver must hold each record or a newer one.
		kvs, ok := parseStream(data)
		if !ok {
			t.Fatalf("Receive accepted an invalid stream")
		}
		for _, kv := range kvs {
			u := kv[0][9:]
			_, r, err := b.Get(nil, u)
			must(t, err)
			if newer(t, kv[1], r.Append(nil)) {
				t.Fatalf("%q: receiver holds %+v, older than the stream's", u, r)
			}
		}
	})
}

// parseStream is a plain reading of the stream format, independent of
// Receive's, for FuzzReceive: the records of data if it is one whole
// stream for span {0, 0} whose trailer matches them.
func parseStream(data []byte) (kvs [][2][]byte, ok bool) {
	var states [][2][]byte
	hdr := frames(0, 0, nil, 0)[:headerLen]
	if len(data) < headerLen || !bytes.Equal(data[:4], hdr[:4]) || !bytes.Equal(data[5:headerLen], hdr[5:]) {
		return nil, false
	}
	version := data[4]
	if version != streamV1 && version != streamVersion {
		return nil, false
	}
	data = data[headerLen:]
	next := func() ([]byte, bool) {
		n, m := binary.Uvarint(data)
		if m <= 0 || n > uint64(len(data)-m) {
			return nil, false
		}
		b := data[m : m+int(n)]
		data = data[m+int(n):]
		return b, true
	}
	for len(data) > 0 {
		tag := data[0]
		data = data[1:]
		switch tag {
		case frameRecord:
			k, ok1 := next()
			v, ok2 := next()
			if !ok1 || !ok2 {
				return nil, false
			}
			kvs = append(kvs, [2][]byte{k, v})
		case framePaxos:
			if version == streamV1 {
				return nil, false
			}
			// Hashed with the records; the receiver holds none of it
			// (Receive has no sink).
			k, ok1 := next()
			v, ok2 := next()
			if !ok1 || !ok2 {
				return nil, false
			}
			states = append(states, [2][]byte{k, v})
		case frameEnd:
			all := append(slices.Clone(kvs), states...)
			whole := frames(0, 0, all, 0)
			trailer := whole[len(whole)-1-uvarintLen(uint64(len(all)))-8:]
			return kvs, bytes.Equal(append([]byte{frameEnd}, data...), trailer)
		default:
			return nil, false
		}
	}
	return nil, false
}

// BenchmarkSendReceive moves 32 MiB of records with 100-byte values from
// one engine to a fresh one on disk, through a pipe: Send from a snapshot,
// Receive to files, MergeSpan. Bytes are the records' storage keys and
// values.
func BenchmarkSendReceive(b *testing.B) {
	ctx := context.Background()
	fs, dir := vfs.Default, b.TempDir()
	src := openEngine(b, fs, fs.PathJoin(dir, "src"))
	defer src.Close()
	const valueSize, total = 100, 32 << 20
	val := []byte(value(0))[:valueSize]
	batch := src.NewBatch()
	for i := range total / valueSize {
		r := memtable.Record{Version: memtable.Version{TS: uint64(i + 1), Node: 1}, Value: val}
		must(b, batch.Write(fmt.Appendf(nil, "key-%08d", i), &r))
		if batch.Len() == 4096 {
			must(b, src.Commit(batch, false))
			batch = src.NewBatch()
		}
	}
	must(b, src.Commit(batch, false))
	// Settle the donor's LSM, so its compactions do not run during the
	// measurement.
	must(b, src.Compact(ctx))
	var size int64
	must(b, src.ExportSpan(ctx, 0, 0, func(k, v []byte) error { size += int64(len(k) + len(v)); return nil }))
	b.SetBytes(size)
	b.ReportAllocs()
	xfer := fs.PathJoin(dir, "xfer")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := openEngine(b, fs, fs.PathJoin(dir, fmt.Sprint("dst", i)))
		snap, err := src.NewSnapshot()
		must(b, err)
		b.StartTimer()
		pr, pw := io.Pipe()
		var sendErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			_, _, sendErr = Send(ctx, snap, 0, 0, pw, nil)
			pw.CloseWithError(sendErr)
		})
		d, err := Receive(ctx, dst, 0, 0, pr, xfer, 0, nil)
		wg.Wait()
		b.StopTimer()
		must(b, sendErr)
		must(b, err)
		if d.Keys != total/valueSize {
			b.Fatalf("received %v", d)
		}
		snap.Close()
		must(b, dst.Close())
		b.StartTimer()
	}
}

// TestReceiveRespectsFreeSpaceFloor: a receiver whose disk is below its
// free-space floor stages nothing: the pull fails with the engine's
// DiskFullError (and is retried by its caller), leaving no files behind
// and the room to flushes and compactions.
func TestReceiveRespectsFreeSpaceFloor(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	a := openEngine(t, fs, "a")
	defer a.Close()
	donor(t, a, 4000, ts)
	good := stream(t, a, 0, 0)

	full := vfs.NewMem()
	full.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 1 << 30, UsedBytes: 1<<30 - 1<<20})
	cfs := &createFS{FS: full}
	b := openEngine(t, cfs, "b")
	defer b.Close()
	_, err := Receive(context.Background(), b, 0, 0, bytes.NewReader(good), "xfer", 32<<10, nil)
	var dfe *engine.DiskFullError
	if !errors.As(err, &dfe) {
		t.Fatalf("Receive into a full disk = %v, want a DiskFullError", err)
	}
	if d, err := digestSpan(context.Background(), b, 0, 0); err != nil || d.Keys != 0 {
		t.Fatalf("receiver holds %v (%v)", d, err)
	}
	if left, _ := full.List("xfer"); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
	if n := cfs.creates.Load(); n != 0 {
		t.Fatalf("%d tables staged on a full disk", n)
	}
}
