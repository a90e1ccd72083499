package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// The JSON of the cluster endpoints. These are the one definition that
// readers of the API use (the CLI included): the server builds the same
// JSON from its own types, which carry internal state besides, and a test
// of this package fails when the two disagree on a field.

// MemberState is what failure detection last said of a member.
type MemberState string

// Member states.
const (
	Alive   MemberState = "alive"
	Suspect MemberState = "suspect"
	Dead    MemberState = "dead"
	Left    MemberState = "left"
)

// ClusterStatus is the answer of GET /v1/cluster: the cluster as the node
// that answered sees it.
type ClusterStatus struct {
	Self     string   `json:"self"`
	Replicas int      `json:"replicas"`
	VNodes   int      `json:"vnodes"`
	Members  []Member `json:"members"`
	// Transfers lists the range pulls in flight on the node; empty when
	// it holds every range of the ring.
	Transfers []Transfer `json:"transfers"`
	// Settled: the node holds every range the current ring gives it.
	Settled bool `json:"settled"`
	// AntiEntropyClean is the HLC timestamp at which the node's last
	// complete anti-entropy pass began (0: none yet).
	AntiEntropyClean uint64 `json:"anti_entropy_clean"`
	// Leave is the progress of the node's graceful leave, if one began:
	// "handing ranges over: ...", "left", or why it stopped.
	Leave string `json:"leave,omitempty"`
	// HintsPending counts the hints the node holds, per owner.
	HintsPending map[string]int64 `json:"hints_pending"`
	// Ownership is each member's share of the token space as primary.
	Ownership      map[string]float64 `json:"ownership"`
	MaxClockOffset time.Duration      `json:"max_clock_offset_ns,omitempty"`
	// ClockError, when set, says why the node coordinates no writes.
	ClockError string `json:"clock_error,omitempty"`

	// Raw is the answer as the node sent it, with any field this package
	// does not know.
	Raw json.RawMessage `json:"-"`
}

// Member is one node of the cluster.
type Member struct {
	ID         string      `json:"id"`
	HTTPAddr   string      `json:"http_addr"`
	GossipAddr string      `json:"gossip_addr"`
	State      MemberState `json:"state"`
	// Since is when the answering node last changed its word on the
	// member; zero for a member that left.
	Since   time.Time `json:"since,omitzero"`
	Leaving bool      `json:"leaving,omitempty"`
	// Clock is the member's clock offset from the answering node's, as
	// last measured (nil: never).
	Clock    *ClockOffset `json:"clock,omitempty"`
	PeerAddr string       `json:"peer_addr,omitempty"`
}

// ClockOffset is a member's clock minus the answering node's.
type ClockOffset struct {
	Offset time.Duration `json:"offset_ns"`
	RTT    time.Duration `json:"rtt_ns"` // of the probe: the offset is known to within half of it
	At     time.Time     `json:"at,omitzero"`
	// Refused: the member refused a write stamped more than the bound
	// ahead of its clock (Offset is then the bound, negated).
	Refused bool `json:"refused,omitempty"`
}

// Transfer is a move of ranges to the answering node in flight.
type Transfer struct {
	Range       string  `json:"range"` // being pulled now
	From        string  `json:"from"`
	To          string  `json:"to"`
	RangesDone  int     `json:"ranges_done"`
	RangesTotal int     `json:"ranges_total"`
	BytesDone   int64   `json:"bytes_done"`
	BytesTotal  int64   `json:"bytes_total_estimate"` // 0 until a range is done
	Rate        float64 `json:"bytes_per_second"`
	ETASeconds  float64 `json:"eta_seconds"`
	Started     string  `json:"started"`
	Attempts    int     `json:"attempts"` // failed tries of the current range
	LastError   string  `json:"last_error,omitempty"`
}

// RingOwners is the answer of GET /v1/ring?key=K.
type RingOwners struct {
	Key    string   `json:"key"`
	Token  string   `json:"token"`
	Owners []string `json:"owners"` // the primary first
	Addrs  []string `json:"http_addrs"`

	Raw json.RawMessage `json:"-"`
}

// Change is the answer of a cluster change (RemoveNode, Leave).
type Change struct {
	Status string `json:"status"` // "removed", "leaving"
	ID     string `json:"id,omitempty"`
	Node   string `json:"node,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// getJSON decodes the answer of r into v and returns the raw body.
func (c *Client) getJSON(ctx context.Context, r request, v any) (json.RawMessage, error) {
	a, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return nil, fmt.Errorf("malformed answer from %s to %s %s: %w", a.addr, r.method, r.path, err)
	}
	return a.body, nil
}

// ClusterStatus returns the cluster as a node sees it.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	raw, err := c.getJSON(ctx, request{method: http.MethodGet, path: "/v1/cluster"}, &st)
	st.Raw = raw
	return st, err
}

// Owners returns the owners of key, the primary first.
func (c *Client) Owners(ctx context.Context, key string) (RingOwners, error) {
	var o RingOwners
	raw, err := c.getJSON(ctx, request{method: http.MethodGet, path: "/v1/ring?" + url.Values{"key": {key}}.Encode()}, &o)
	o.Raw = raw
	return o, err
}

// RemoveNode takes the member id, gone for good, out of the ring. The
// node refuses (ErrConflict) a member it sees alive, and an unknown one
// (ErrNotFound). Needs the admin role.
func (c *Client) RemoveNode(ctx context.Context, id string) (Change, error) {
	var ch Change
	raw, err := c.getJSON(ctx, request{method: http.MethodPost, path: "/v1/cluster/remove?" + url.Values{"id": {id}}.Encode()}, &ch)
	ch.Raw = raw
	return ch, err
}

// Leave starts the graceful leave of the client's first node (never
// another): it hands its ranges over in the background, and
// ClusterStatus's Leave shows the progress. Needs the admin role.
func (c *Client) Leave(ctx context.Context) (Change, error) {
	var ch Change
	raw, err := c.getJSON(ctx, request{method: http.MethodPost, path: "/v1/cluster/leave", one: true}, &ch)
	ch.Raw = raw
	return ch, err
}

// Backup starts a backup of the client's first node (never another) and
// returns its stream: a tar archive of a consistent copy of the node's
// store, which the caller reads to the end and closes. The stream has no
// overall deadline (a big store takes a while); a pause longer than
// Config.Timeout ends it with an error. Needs the admin role.
func (c *Client) Backup(ctx context.Context) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.send(ctx, 0, request{method: http.MethodGet, path: "/v1/admin/backup"})
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, statusError(c.cfg.Addrs[0], resp.StatusCode, resp.Status, body)
	}
	return newIdleBody(resp.Body, c.cfg.Timeout, cancel), nil
}

// idleBody is a stream whose reads fail once one waits longer than idle
// for data: the timer, reset by each Read, cancels the request.
type idleBody struct {
	rc     io.ReadCloser
	idle   time.Duration
	t      *time.Timer
	fired  atomic.Bool
	cancel context.CancelFunc
}

func newIdleBody(rc io.ReadCloser, idle time.Duration, cancel context.CancelFunc) *idleBody {
	b := &idleBody{rc: rc, idle: idle, cancel: cancel}
	// One timer for the whole stream, reset by each Read.
	b.t = time.AfterFunc(time.Hour, func() { b.fired.Store(true); cancel() })
	b.t.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.t.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.t.Stop()
	if err != nil && err != io.EOF && b.fired.Load() {
		err = fmt.Errorf("no data for %s: %w", b.idle, err)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.t.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}
