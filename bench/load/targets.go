package load

import (
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ringkv/ringkv/bench/workload"
	"github.com/ringkv/ringkv/client/batchwire"
)

// targets generates the run's requests. vegeta calls its Targeter from
// every worker at once, so the random draws and the round-robin position
// sit behind a mutex (a few dozen nanoseconds against a request's
// hundreds of microseconds).
type targets struct {
	mu    sync.Mutex
	rng   *rand.Rand
	next  int
	w     workload.Workload
	keys  workload.Chooser
	bases []string

	prefix    string      // key prefix as the key's first bytes
	escPrefix string      // the prefix escaped for the path
	qPrefix   string      // "prefix=..." query parameter of a scan
	limit     string      // "&limit=N" of a scan
	value     []byte      // the body of every PUT
	header    http.Header // of every request: the bearer token; read-only (vegeta copies it)

	batchSize   int         // items per POST /v1/batch
	batchHeader http.Header // header plus the binary framing's Content-Type
}

func newTargets(c *Config, bases []string, keys workload.Chooser, seed uint64, value []byte) *targets {
	return &targets{
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		w:         c.Workload,
		keys:      keys,
		bases:     bases,
		prefix:    c.KeyPrefix,
		escPrefix: url.PathEscape(c.KeyPrefix),
		qPrefix:   "prefix=" + url.QueryEscape(c.KeyPrefix),
		limit:     "&limit=" + strconv.Itoa(c.ScanLimit),
		value:     value,
		header:    authHeader(c.Token),
		batchSize: c.BatchSize,
		batchHeader: func() http.Header {
			h := authHeader(c.Token)
			if h == nil {
				h = http.Header{}
			}
			h.Set("Content-Type", batchContentType)
			return h
		}(),
	}
}

// authHeader is the header that carries token, nil without one.
func authHeader(token string) http.Header {
	if token == "" {
		return nil
	}
	return http.Header{"Authorization": {"Bearer " + token}}
}

// tokenTransport adds the bearer token to every request of the preload,
// the key check and the LSM samplers.
type tokenTransport struct {
	base  http.RoundTripper
	token string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token == "" {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// Targeter returns the vegeta.Targeter of the run.
func (t *targets) Targeter() vegeta.Targeter {
	return func(tgt *vegeta.Target) error {
		var batch []uint64
		t.mu.Lock()
		op := t.w.Next(t.rng)
		n := t.keys.Next(t.rng)
		if op == workload.BatchWrite || op == workload.BatchRead {
			batch = make([]uint64, t.batchSize)
			batch[0] = n
			for i := 1; i < len(batch); i++ {
				batch[i] = t.keys.Next(t.rng)
			}
		}
		base := t.bases[t.next]
		t.next++
		if t.next == len(t.bases) {
			t.next = 0
		}
		t.mu.Unlock()
		if batch != nil {
			t.fillBatch(tgt, op, base, batch)
			return nil
		}
		t.fill(tgt, op, base, n)
		return nil
	}
}

// fillBatch makes tgt a POST /v1/batch in the binary framing: one item
// per key number, a put of the run's value or a get. Each target gets a
// body of its own, since vegeta's workers send them at once.
func (t *targets) fillBatch(tgt *vegeta.Target, op workload.Op, base string, keys []uint64) {
	it := batchwire.Item{Op: batchwire.OpGet}
	per := 3 + 1 + len(t.prefix) + 20
	if op == workload.BatchWrite {
		it.Op, it.Value = batchwire.OpPut, t.value
		per += 1 + binary.MaxVarintLen64 + len(t.value)
	}
	body := make([]byte, 0, len(batchwire.Magic)+binary.MaxVarintLen64+len(keys)*per)
	body = batchwire.AppendHeader(body, len(keys))
	var key []byte
	for _, n := range keys {
		key = workload.AppendKey(key[:0], t.prefix, n)
		it.Key = key
		body = batchwire.AppendItem(body, &it)
	}
	tgt.Method = http.MethodPost
	tgt.URL = base + "/v1/batch"
	tgt.Header = t.batchHeader
	tgt.Body = body
}

// fill makes tgt the request op on key number n at base.
func (t *targets) fill(tgt *vegeta.Target, op workload.Op, base string, n uint64) {
	num := strconv.FormatUint(n, 10)
	tgt.Header = t.header
	tgt.Body = nil
	switch op {
	case workload.Scan:
		// A page of the token-ordered keyspace starting just after a
		// chosen key: the prefix matches every key, so the page is found
		// at once (a narrower prefix would make each request a pass over
		// the whole store).
		tgt.Method = http.MethodGet
		tgt.URL = base + "/v1/kv?" + t.qPrefix + "&after=" + url.QueryEscape(t.prefix) + num + t.limit
	case workload.Update:
		tgt.Method = http.MethodPut
		tgt.URL = base + "/v1/kv/" + t.escPrefix + num
		tgt.Body = t.value
	default:
		tgt.Method = http.MethodGet
		tgt.URL = base + "/v1/kv/" + t.escPrefix + num
	}
}

// opOf tells a result's operation from its method and URL; a batch is
// batch's (the run's one batch operation).
func opOf(method, u string, batch workload.Op) workload.Op {
	switch {
	case method == http.MethodPost && strings.HasSuffix(u, "/v1/batch"):
		return batch
	case method == http.MethodPut:
		return workload.Update
	case strings.Contains(u, "/v1/kv?"):
		return workload.Scan
	}
	return workload.Read
}

// makeValue returns n pseudo-random letters: incompressible enough that
// disk bytes mean something, and printable.
func makeValue(n int, seed uint64) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]byte, n)
	for i := range v {
		v[i] = letters[r.IntN(len(letters))]
	}
	return v
}
