package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/ring"
)

// The handler's endpoints, called as raw HTTP: bodies, statuses, errors.

func TestClusterInternalApply(t *testing.T) {
	ts := newTestServer(t, Config{})
	ms := testMutations("k", 10, 5)
	ms = append(ms, peer.Mutation{Key: []byte{0, 0xff, '/'}, Record: (&memtable.Record{Version: memtable.Version{TS: 5}, Tombstone: true}).Append(nil)})
	resp := ts.post(t, "/internal/apply", AppendApply(nil, ms))
	wantStatus(t, "apply", resp, fasthttp.StatusNoContent)
	if len(resp.Body()) != 0 {
		t.Errorf("apply answered a body: %q", resp.Body())
	}
	for _, m := range ms {
		if got := ts.cl.record(string(m.Key)); !bytes.Equal(got, m.Record) {
			t.Errorf("record of %q = %x, want %x", m.Key, got, m.Record)
		}
	}
	if applies, applied := ts.cl.counts(); applies != 1 || applied != len(ms) {
		t.Errorf("ApplyLocal: %d calls, %d mutations; want 1, %d", applies, applied, len(ms))
	}

	// An empty batch is valid.
	wantStatus(t, "empty apply", ts.post(t, "/internal/apply", AppendApply(nil, nil)), fasthttp.StatusNoContent)

	// Garbage and near misses are 400 with a JSON error, and nothing is
	// applied.
	bad := testMutations("bad", 3, 9)
	bad[2].Record = []byte("not a record")
	for name, body := range map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("garbage"),
		"scan message":   AppendScan(nil, peer.LocalScan{Limit: 1}),
		"bad record":     AppendApply(nil, bad),
		"trailing bytes": append(AppendApply(nil, testMutations("t", 1, 1)), 0),
		"too many":       AppendApply(nil, testMutations("m", MaxBatch+1, 1)),
	} {
		resp := ts.post(t, "/internal/apply", body)
		wantStatus(t, name, resp, fasthttp.StatusBadRequest)
		checkJSONError(t, resp.Header.ContentType(), resp.Body())
	}
	if applies, _ := ts.cl.counts(); applies != 2 {
		t.Errorf("rejected bodies reached ApplyLocal: %d calls, want 2", applies)
	}
	if ts.cl.record("bad0000") != nil {
		t.Error("a rejected batch was partly applied")
	}

	// Errors of ApplyLocal.
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("wrapped: %w", peer.ErrInvalidKey), 400},
		{fmt.Errorf("wrapped: %w", peer.ErrBadMessage), 400},
		{fmt.Errorf("wrapped: %w", peer.ErrClockOffset), 409},
		{fmt.Errorf("wrapped: %w", peer.ErrNotOwner), 403},
		{errors.New("disk on fire"), 500},
	} {
		ts.cl.setApplyErr(tc.err)
		resp := ts.post(t, "/internal/apply", AppendApply(nil, testMutations("e", 1, 1)))
		wantStatus(t, tc.err.Error(), resp, tc.code)
		checkJSONError(t, resp.Header.ContentType(), resp.Body())
	}
}

func TestClusterInternalRead(t *testing.T) {
	ts := newTestServer(t, Config{})
	small, big := testRecord(7, "value"), testRecord(7, string(bytes.Repeat([]byte{'v'}, 64<<10)))
	if err := ts.cl.ApplyLocal([]peer.Mutation{{Key: []byte("k"), Record: small}, {Key: []byte("big"), Record: big}}); err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{[]byte("k"), []byte("missing"), []byte("big"), []byte("k")}
	resp := ts.post(t, "/internal/read", AppendRead(nil, keys))
	wantStatus(t, "read", resp, 200)
	if ct := string(resp.Header.ContentType()); ct != "application/octet-stream" {
		t.Errorf("read: Content-Type %q", ct)
	}
	recs, err := DecodeRecords(resp.Body(), len(keys))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]byte{small, nil, big, small} {
		if !bytes.Equal(recs[i], want) || (want == nil) != (recs[i] == nil) {
			t.Errorf("record of %q = %x, want %x", keys[i], clipB(recs[i]), clipB(want))
		}
	}
	tooMany := make([][]byte, MaxReadBatch+1)
	for i := range tooMany {
		tooMany[i] = []byte("k")
	}
	for name, body := range map[string][]byte{
		"empty":     nil,
		"bare key":  []byte("k"),
		"no keys":   AppendRead(nil, nil),
		"empty key": AppendRead(nil, [][]byte{nil}),
		"too long":  AppendRead(nil, [][]byte{bytes.Repeat([]byte{'k'}, 4097)}),
		"too many":  AppendRead(nil, tooMany),
	} {
		resp := ts.post(t, "/internal/read", body)
		wantStatus(t, name, resp, 400)
		checkJSONError(t, resp.Header.ContentType(), resp.Body())
	}
}

func clipB(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func TestClusterInternalScan(t *testing.T) {
	ts := newTestServer(t, Config{})
	all := append(testMutations("a/", 5, 1), testMutations("b/", 3, 2)...)
	if err := ts.cl.ApplyLocal(all); err != nil {
		t.Fatal(err)
	}
	scan := func(q peer.LocalScan) peer.LocalPage {
		t.Helper()
		resp := ts.post(t, "/internal/scan", AppendScan(nil, q))
		wantStatus(t, fmt.Sprintf("scan %+v", q), resp, 200)
		p, err := DecodeScanPage(resp.Body())
		if err != nil {
			t.Fatalf("scan %+v: %v", q, err)
		}
		return p
	}
	// Page through a/ two at a time.
	var got []peer.Mutation
	q := peer.LocalScan{Prefix: []byte("a/"), Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("scan does not end")
		}
		p := scan(q)
		got = append(got, p.Items...)
		if !p.More {
			break
		}
		q.After = p.Items[len(p.Items)-1].Key
	}
	if len(got) != 5 {
		t.Fatalf("scan a/ gave %d records, want 5", len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.Key, all[i].Key) || !bytes.Equal(m.Record, all[i].Record) {
			t.Errorf("item %d = %q %x, want %q %x", i, m.Key, m.Record, all[i].Key, all[i].Record)
		}
	}
	if p := scan(peer.LocalScan{Limit: peer.MaxScanLimit}); len(p.Items) != len(all) || p.More {
		t.Errorf("scan everything: %d items, more=%v", len(p.Items), p.More)
	}
	if p := scan(peer.LocalScan{Prefix: []byte("zzz"), Limit: 1}); len(p.Items) != 0 || p.More {
		t.Errorf("scan zzz: %d items, more=%v", len(p.Items), p.More)
	}
	for name, body := range map[string][]byte{
		"zero limit": AppendScan(nil, peer.LocalScan{}),
		"over limit": AppendScan(nil, peer.LocalScan{Limit: peer.MaxScanLimit + 1}),
		"apply":      AppendApply(nil, nil),
		"empty":      nil,
	} {
		resp := ts.post(t, "/internal/scan", body)
		wantStatus(t, name, resp, 400)
		checkJSONError(t, resp.Header.ContentType(), resp.Body())
	}
}

// internalCalls are one valid call of each /internal/ endpoint, with the
// status it gets when the secret is right.
var internalCalls = []struct {
	method, target string
	body           []byte
	code           int
}{
	{"POST", "/internal/apply", AppendApply(nil, testMutations("s", 2, 1)), 204},
	{"POST", "/internal/read", AppendRead(nil, [][]byte{[]byte("missing")}), 200},
	{"POST", "/internal/read", []byte("not a read message"), 400},
	{"POST", "/internal/scan", AppendScan(nil, peer.LocalScan{Limit: 10}), 200},
	{"GET", "/internal/gossip", nil, 200},
	{"GET", "/internal/apply", nil, 405},
}

// TestInternodeSignature: with a cluster secret, an /internal/ call needs
// a signature by a key of the keyring, over its method, URI, time, node
// and body, within the window; the raw secret is no credential.
func TestInternodeSignature(t *testing.T) {
	const secret = "correct horse"
	now := time.Now()
	ts := newTestServer(t, Config{Secrets: keyring.New("", []byte(secret))})
	for _, c := range internalCalls {
		good := signedHeaders(secret, "n2", c.method, c.target, c.body, now)
		for _, tc := range []struct {
			what string
			hdr  []string
		}{
			{"no headers", nil},
			{"the raw secret", []string{"X-Ringkv-Secret: " + secret}},
			{"another secret", signedHeaders("wrong", "n2", c.method, c.target, c.body, now)},
			{"31s old", signedHeaders(secret, "n2", c.method, c.target, c.body, now.Add(-31*time.Second))},
			{"31s ahead", signedHeaders(secret, "n2", c.method, c.target, c.body, now.Add(31*time.Second))},
			{"another method", signedHeaders(secret, "n2", "PUT", c.target, c.body, now)},
			{"another URI", signedHeaders(secret, "n2", c.method, c.target+"?x=1", c.body, now)},
			{"another body", signedHeaders(secret, "n2", c.method, c.target, append(slices.Clip(c.body), 'x'), now)},
			{"another node", append(good[1:], NodeHeader+": n3")},
			{"no node", good[1:]},
			{"no time", []string{good[0], good[2]}},
			{"no signature", good[:2]},
			{"a signature without v1=", []string{good[0], good[1], SignatureHeader + ": " + strings.TrimPrefix(good[2][len(SignatureHeader)+2:], "v1=")}},
			{"a signed time with a sign", []string{good[0], TimeHeader + ": +" + good[1][len(TimeHeader)+2:], good[2]}},
		} {
			resp := ts.roundTrip(t, rawRequest(c.method, c.target, c.body, tc.hdr...), false)
			wantStatus(t, fmt.Sprintf("%s %s with %s", c.method, c.target, tc.what), resp, 401)
			checkJSONError(t, resp.Header.ContentType(), resp.Body())
		}
		if applies, _ := ts.cl.counts(); applies != 0 {
			t.Fatalf("a call without a good signature reached ApplyLocal")
		}
	}
	for _, c := range internalCalls {
		for _, at := range []time.Duration{0, -29 * time.Second, 29 * time.Second} {
			resp := ts.roundTrip(t, rawRequest(c.method, c.target, c.body, signedHeaders(secret, "n2", c.method, c.target, c.body, now.Add(at))...), false)
			wantStatus(t, fmt.Sprintf("%s %s signed %s off", c.method, c.target, at), resp, c.code)
		}
		// Header names are case-insensitive.
		var lower []string
		for _, h := range signedHeaders(secret, "n2", c.method, c.target, c.body, now) {
			k, v, _ := strings.Cut(h, ": ")
			lower = append(lower, strings.ToLower(k)+": "+v)
		}
		resp := ts.roundTrip(t, rawRequest(c.method, c.target, c.body, lower...), false)
		wantStatus(t, c.method+" "+c.target+" with lower-case headers", resp, c.code)
	}
}

// TestInternodeSignatureRotation: a node verifies against every key of
// its keyring, so a call signed with the old primary passes while both
// are held, and not once the old one is dropped.
func TestInternodeSignatureRotation(t *testing.T) {
	secrets := keyring.New("c1", []byte("new"), []byte("old"))
	ts := newTestServer(t, Config{Secrets: secrets})
	c := internalCalls[0]
	call := func(s *keyring.Keyring) int {
		sig, ok := Sign(s, "n2", c.method, c.target, c.body, time.Now())
		if !ok {
			t.Fatal("no signature")
		}
		return ts.roundTrip(t, rawRequest(c.method, c.target, c.body,
			NodeHeader+": "+sig.Node, TimeHeader+": "+sig.Time, SignatureHeader+": "+sig.Sig), false).StatusCode()
	}
	for i, tc := range []struct {
		signer *keyring.Keyring
		want   int
	}{
		{keyring.New("c1", []byte("old")), c.code},
		{keyring.New("c1", []byte("new"), []byte("old")), c.code},
		{keyring.New("c1", []byte("other")), 401},
		{keyring.New("c2", []byte("new")), 401}, // another cluster's name: other keys
	} {
		if got := call(tc.signer); got != tc.want {
			t.Errorf("signer %d: %d, want %d", i, got, tc.want)
		}
	}
	secrets.Set([]byte("new"))
	if got := call(keyring.New("c1", []byte("old"))); got != 401 {
		t.Errorf("signed with a dropped key: %d, want 401", got)
	}
}

// signedHeaders returns the signature headers of a call by node at now.
func signedHeaders(secret, node, method, target string, body []byte, now time.Time) []string {
	sig, _ := Sign(keyring.New("", []byte(secret)), node, method, target, body, now)
	return []string{NodeHeader + ": " + sig.Node, TimeHeader + ": " + sig.Time, SignatureHeader + ": " + sig.Sig}
}

// A key in a damaged file fails alone: the batch's other keys keep their
// records, and the node answers (no 500, no crash).
func TestClusterInternalReadDamagedKey(t *testing.T) {
	ts := newTestServer(t, Config{})
	small := testRecord(7, "value")
	if err := ts.cl.ApplyLocal([]peer.Mutation{{Key: []byte("k"), Record: small}, {Key: []byte("bad"), Record: small}}); err != nil {
		t.Fatal(err)
	}
	ts.cl.SetDamaged("bad")
	keys := [][]byte{[]byte("k"), []byte("bad"), []byte("missing")}
	resp := ts.post(t, "/internal/read", AppendRead(nil, keys))
	wantStatus(t, "read", resp, 200)
	recs, err := DecodeRecords(resp.Body(), len(keys))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(recs[0], small) || recs[2] != nil {
		t.Fatalf("healthy keys' records = %x, %x", clipB(recs[0]), clipB(recs[2]))
	}
	if !IsFailed(recs[1]) || !strings.Contains(FailedMessage(recs[1]), "corruption") {
		t.Fatalf("damaged key's answer = %q, want a failed answer", recs[1])
	}
}

// stallMerkle is a fakeLocal whose Merkle trees take until their context
// ends.
type stallMerkle struct {
	*fakeLocal
	started chan struct{}
}

func (s stallMerkle) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*peer.Merkle, error) {
	s.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestHandlerRefusals: the handler reports a scan its slots turn away and
// a Merkle tree whose caller hung up to its server, which counts them.
func TestHandlerRefusals(t *testing.T) {
	reasons := make(chan string, 10)
	refused := func(reason string) { reasons <- reason }
	next := func(what string) string {
		t.Helper()
		select {
		case r := <-reasons:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing reported", what)
			return ""
		}
	}

	local := stallMerkle{fakeLocal: newFakeLocal(), started: make(chan struct{}, 1)}
	tr := mustNew(t, Config{Local: local, MaxConcurrentScans: 1, Logger: slog.New(slog.DiscardHandler)})
	defer tr.Close()
	h := tr.Handler(refused)

	// Every slot taken, and the node closing: a scan is refused at once.
	tr.scans <- struct{}{}
	tr.cancel()
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(bytes.NewReader(rawRequest("POST", "/internal/scan", AppendScan(nil, peer.LocalScan{Limit: 1}))))); err != nil {
		t.Fatal(err)
	}
	var rctx fasthttp.RequestCtx
	rctx.Init(&req, nil, nil)
	h(&rctx)
	if code := rctx.Response.StatusCode(); code != fasthttp.StatusTooManyRequests {
		t.Errorf("scan with no slot: %d, want 429", code)
	}
	if r := next("scan with no slot"); r != "scans" {
		t.Errorf("scan with no slot: reported %q, want scans", r)
	}

	tr2 := mustNew(t, Config{Local: local, Logger: slog.New(slog.DiscardHandler)})
	defer tr2.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	srv := &fasthttp.Server{Handler: tr2.Handler(refused), CloseOnShutdown: true}
	go srv.Serve(ln)
	defer srv.Shutdown()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(rawRequest("GET", "/internal/merkle?start=0&end=0&depth=4", nil)); err != nil {
		t.Fatal(err)
	}
	<-local.started
	c.Close()
	if r := next("a Merkle tree whose caller hung up"); r != "client_gone" {
		t.Errorf("a Merkle tree whose caller hung up: reported %q, want client_gone", r)
	}
}
