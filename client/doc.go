// Package client is the Go client of ringkv's HTTP API: point reads and
// writes with per-request consistency and TTL, cluster-wide scans, the
// cluster endpoints and backups, as the ringkv CLI and the bench use them.
//
// A Client is safe for concurrent use and keeps its connections alive
// between requests. Given several addresses, it sends each request to the
// node that answered last and, when that node cannot answer (it cannot be
// reached, or answers 503 or 429), tries the others in turn: any node of a
// cluster coordinates any key. Calls that act on one node in particular
// (Leave, Backup) never move to another; use Node to aim them.
//
// Errors answered by a node are *StatusError values, which match the
// sentinels ErrNotFound, ErrUnavailable, ErrTooLarge, ErrBadRequest,
// ErrUnauthorized and the others with errors.Is; a node that cannot be
// reached is a *NodeError matching ErrUnreachable.
//
// The package imports nothing of ringkv but its own batchwire and the
// leaf peer/kv (the API's vocabulary: versions and their text form, the
// batch limit), so that programs using it do not link the storage engine
// or the server.
package client
