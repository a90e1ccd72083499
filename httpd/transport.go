package httpd

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
)

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Secret is sent with every call (SecretHeader) when set.
	Secret string
	// Senders is how many apply requests may be in flight to one peer;
	// concurrent replica writes queue behind them and go out together in
	// one request. The default value is 4.
	Senders int
	// MaxConnsPerHost bounds connections to one peer; calls past it wait
	// for a free connection until their deadline. The default is 64.
	MaxConnsPerHost int
	// MaxBatchBytes bounds the body of one apply request: calls are
	// batched, and a large call split, up to this size; one mutation
	// larger than it goes alone. The default, 63KiB, fits the smallest
	// body limit a ringkv node sets (2*--max-value-size + 64KiB), and one
	// mutation always fits a node with the same --max-value-size.
	MaxBatchBytes int
}

// Transport is peer.Transport over fasthttp: persistent connections,
// binary framed bodies (peer's wire format), and replica writes to one peer
// batched while earlier ones are in flight, so a busy coordinator sends
// one request (and the replica does one fsync) for many writes.
type Transport struct {
	cfg    TransportConfig
	client *fasthttp.Client

	mu     sync.Mutex
	queues map[string]*applyQueue
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{} // closed by Close: senders stop
	// drained is closed once the senders have stopped and every call
	// left queued was answered; a call queued later is answered by
	// Apply itself.
	drained chan struct{}
}

// NewTransport returns a Transport; Close stops its senders.
func NewTransport(cfg TransportConfig) *Transport {
	if cfg.Senders <= 0 {
		cfg.Senders = 4
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = 64
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 63 << 10
	}
	return &Transport{
		cfg: cfg,
		client: &fasthttp.Client{
			Name:            "ringkv-peer",
			MaxConnsPerHost: cfg.MaxConnsPerHost,
			// Past MaxConnsPerHost a call waits for a connection, bounded
			// by its own deadline (fasthttp takes the smaller).
			MaxConnWaitTimeout:            time.Minute,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			MaxResponseBodySize:           2<<30 - 1,
		},
		queues:  map[string]*applyQueue{},
		stop:    make(chan struct{}),
		drained: make(chan struct{}),
	}
}

// Close stops the senders once the requests in flight are answered, and
// fails the Apply calls still queued; calls after Close fail at once.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.drained
		return
	}
	t.closed = true
	close(t.stop)
	t.mu.Unlock()
	t.wg.Wait()
	for _, q := range t.queues {
		for {
			select {
			case c := <-q.calls:
				c.done <- errTransportClosed
				continue
			default:
			}
			break
		}
	}
	close(t.drained)
	t.client.CloseIdleConnections()
}

var errTransportClosed = errors.New("transport closed")

// applyCall is one Apply waiting for its batch.
type applyCall struct {
	ctx  context.Context
	ms   []peer.Mutation
	size int // bytes in an apply body
	done chan error
}

type applyQueue struct {
	addr  string
	calls chan *applyCall
}

func (t *Transport) queue(addr string) (*applyQueue, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errTransportClosed
	}
	q := t.queues[addr]
	if q == nil {
		q = &applyQueue{addr: addr, calls: make(chan *applyCall, 1024)}
		t.queues[addr] = q
		for range t.cfg.Senders {
			t.wg.Go(func() { t.send(q) })
		}
	}
	return q, nil
}

// Apply sends ms to addr, batched with other calls to the same peer. A
// call larger than MaxBatchBytes or peer.MaxBatch goes in several
// requests; if Apply fails, some of them may have been stored (replica
// writes are idempotent: the caller keeps a hint and resends them all).
func (t *Transport) Apply(ctx context.Context, addr string, ms []peer.Mutation) error {
	q, err := t.queue(addr)
	if err != nil {
		return err
	}
	var calls []*applyCall
	for len(ms) > 0 {
		n, size := 0, 0
		for n < len(ms) && n < peer.MaxBatch {
			sz := mutationSize(ms[n])
			if n > 0 && size+sz > t.cfg.MaxBatchBytes {
				break
			}
			size += sz
			n++
		}
		c := &applyCall{ctx: ctx, ms: ms[:n], size: size, done: make(chan error, 1)}
		ms = ms[n:]
		select {
		case q.calls <- c:
			calls = append(calls, c)
		case <-ctx.Done():
			return t.wait(calls, ctx.Err())
		case <-t.stop:
			return t.wait(calls, errTransportClosed)
		}
	}
	return t.wait(calls, nil)
}

// wait collects the answers of calls and returns the first error, or err.
func (t *Transport) wait(calls []*applyCall, err error) error {
	for _, c := range calls {
		var cerr error
		select {
		case cerr = <-c.done:
		case <-c.ctx.Done():
			// The batch may still land; the caller keeps a hint, and
			// replay is idempotent.
			cerr = c.ctx.Err()
		case <-t.drained:
			select {
			case cerr = <-c.done:
			default:
				cerr = errTransportClosed // queued after Close drained
			}
		}
		if err == nil {
			err = cerr
		}
	}
	return err
}

// mutationSize is m's share of an apply body, framing included.
func mutationSize(m peer.Mutation) int { return len(m.Key) + len(m.Record) + 2*binary.MaxVarintLen32 }

// send is one sender of q: it takes the next call, adds whatever else is
// queued while the batch stays within peer.MaxBatch mutations and
// MaxBatchBytes, and sends them as one request. A call that does not fit
// starts the next batch.
func (t *Transport) send(q *applyQueue) {
	var batch []*applyCall
	var body []byte
	var ms []peer.Mutation
	var carry *applyCall
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case <-t.stop:
				return
			case c := <-q.calls:
				batch = append(batch, c)
			}
		}
		n, size := len(batch[0].ms), batch[0].size
	drain:
		for n < peer.MaxBatch && size < t.cfg.MaxBatchBytes {
			select {
			case c := <-q.calls:
				if n+len(c.ms) > peer.MaxBatch || size+c.size > t.cfg.MaxBatchBytes {
					carry = c
					break drain
				}
				batch = append(batch, c)
				n += len(c.ms)
				size += c.size
			default:
				break drain
			}
		}
		ms = ms[:0]
		deadline := time.Time{}
		for _, c := range batch {
			if c.ctx.Err() != nil {
				continue
			}
			ms = append(ms, c.ms...)
			if d, ok := c.ctx.Deadline(); ok && (deadline.IsZero() || d.After(deadline)) {
				deadline = d
			}
		}
		var err error
		if len(ms) > 0 {
			if deadline.IsZero() {
				deadline = time.Now().Add(5 * time.Second)
			}
			body = peer.AppendApply(body[:0], ms)
			err = t.post(q.addr, "/internal/apply", body, deadline, fasthttp.StatusNoContent, nil)
		}
		for _, c := range batch {
			if cerr := c.ctx.Err(); cerr != nil && err == nil {
				c.done <- cerr
				continue
			}
			c.done <- err
		}
		clear(ms) // drop references to the callers' buffers
		if cap(body) > 4<<20 {
			body = nil
		}
	}
}

// post sends body to addr's path and checks the status; with out, the
// response body is appended to *out.
func (t *Transport) post(addr, path string, body []byte, deadline time.Time, want int, out *[]byte) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://" + addr + path)
	if t.cfg.Secret != "" {
		req.Header.Set(SecretHeader, t.cfg.Secret)
	}
	req.SetBodyRaw(body)
	if err := t.client.DoDeadline(req, resp, deadline); err != nil {
		return fmt.Errorf("%s%s: %w", addr, path, err)
	}
	code := resp.StatusCode()
	if code == fasthttp.StatusNotFound && path == "/internal/read" {
		return peer.ErrNotFound
	}
	if code != want {
		return fmt.Errorf("%s%s: status %d: %s", addr, path, code, clip(resp.Body()))
	}
	if out != nil {
		*out = append(*out, resp.Body()...)
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(5 * time.Second)
}

// Read returns addr's record of key, or peer.ErrNotFound.
func (t *Transport) Read(ctx context.Context, addr string, key []byte) ([]byte, error) {
	var out []byte
	if err := t.post(addr, "/internal/read", key, deadlineOf(ctx), fasthttp.StatusOK, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Scan asks addr for one page of its records.
func (t *Transport) Scan(ctx context.Context, addr string, q peer.LocalScan) (peer.LocalPage, error) {
	var out []byte
	if err := t.post(addr, "/internal/scan", peer.AppendScan(nil, q), deadlineOf(ctx), fasthttp.StatusOK, &out); err != nil {
		return peer.LocalPage{}, err
	}
	return peer.DecodeScanPage(out)
}

// GossipAddrs asks addr for its members' gossip addresses.
func (t *Transport) GossipAddrs(ctx context.Context, addr string) ([]string, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + "/internal/gossip")
	if t.cfg.Secret != "" {
		req.Header.Set(SecretHeader, t.cfg.Secret)
	}
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
	}
	var addrs []string
	if err := json.Unmarshal(resp.Body(), &addrs); err != nil {
		return nil, fmt.Errorf("bad answer: %w", err)
	}
	return addrs, nil
}

var _ peer.Transport = (*Transport)(nil)
