package httpd

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// Store is what the client API needs from the node. peer.Node, the
// coordinator, satisfies it; tests use an in-memory fake. Implementations
// must not retain ctx, key, value or dst after returning: they belong to the
// request, which fasthttp recycles.
type Store interface {
	// Get appends the newest live value of key to dst and returns it with
	// its version, or kv.ErrNotFound.
	Get(ctx context.Context, dst, key []byte, c kv.Consistency) ([]byte, kv.Version, error)
	// Put stores value under key and returns the version it was written at.
	Put(ctx context.Context, key, value []byte, o kv.WriteOptions) (kv.Version, error)
	// Delete writes a tombstone for key (also when it is absent).
	Delete(ctx context.Context, key []byte, o kv.WriteOptions) (kv.Version, error)
	// Scan returns one page of live keys with a prefix, in token order.
	Scan(ctx context.Context, q kv.ScanQuery) (kv.ScanPage, error)
	// Batch runs ops, each on its own, filling res[i] (len(res) ==
	// len(ops)) with the outcome of ops[i]; it returns an error matching
	// kv.ErrBadBatch, having applied nothing, for a malformed batch. The
	// keys and values of ops follow the rule above.
	Batch(ctx context.Context, ops []kv.BatchOp, res []kv.BatchResult) error
}

// Ops is what the operations endpoints need from the node.
type Ops interface {
	// LSM returns the JSON-marshalable LSM report served at GET /v1/lsm.
	LSM() any
	// Compact runs a manual compaction of the whole keyspace.
	Compact(ctx context.Context) error
	// Members returns the HTTP addresses of the cluster's members, this node included.
	Members() []string
	// Health returns the node's reasons to be degraded (it serves, but
	// refuses some requests), none when it serves fully; GET /healthz
	// answers 503 while there are any. It must be cheap: no I/O.
	Health() []kv.Degraded
}

// Cluster is what the cluster endpoints need from the node. peer.Node
// satisfies it; when the Ops given to New does not, those endpoints
// answer 501.
type Cluster interface {
	// ClusterStatus is the JSON served at GET /v1/cluster.
	ClusterStatus() kv.ClusterStatus
	// Owners returns the owners of key, the primary first.
	Owners(key []byte) (kv.RingOwners, error)
	// AddNode joins the cluster of the node at an HTTP address.
	AddNode(ctx context.Context, httpAddr string) error
	// RemoveNode takes a member that is gone for good out of the ring.
	RemoveNode(id string) error
	// StartLeave begins this node's graceful leave in the background.
	StartLeave() error
}

// Internode is the internode protocol a Server mounts: one handler for
// every path under /internal/ but /internal/hello, and the credential
// check of the other requests peers make (GET /v1/cluster).
// peer/transport.Transport implements it.
type Internode interface {
	// Handler answers the internode calls, authenticating each; it
	// calls refused for each one a limit turns away ("scans") or whose
	// caller hung up ("client_gone"), which the server counts.
	Handler(refused func(reason string)) fasthttp.RequestHandler
	// Authentic reports whether a request carries the internode
	// credential, and the node it claims to come from.
	Authentic(ctx *fasthttp.RequestCtx) (node string, ok bool)
}
