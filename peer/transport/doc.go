// Package transport is ringkv's internode protocol, both ways, in one
// place: the codec of its messages, the client a coordinator calls other
// nodes through, and the server handlers that answer them. It is the one
// package besides httpd that uses fasthttp.
//
// Transport is both halves, as etcd's rafthttp.Transport is. Its client
// side is the peer.Transport of a peer.Node: replica writes and point
// reads to one peer queue on a lane and go out batched while earlier ones
// are in flight (one request, and one fsync on the replica, for many
// writes), scans, Merkle trees, status reads and the Paxos messages of
// conditional writes (paxos.go) are single requests, and
// range streams use the same fasthttp client with the response body
// streamed, each read bounded by an idle timeout rather than the stream
// by a deadline. Its server side is Handler, which httpd mounts under
// /internal/ (on the client listener, or on --peer-addr's): it checks the
// call's credentials (sign.go's HMAC signature with a cluster secret, a
// certificate of the cluster CA naming the caller with mutual TLS), then
// decodes the request and calls the node through Local, which the
// *peer.Replica of Node.Local satisfies. A replica write thus goes from
// the request body to Local.ApplyLocal, and on into the engine's batch,
// without a copy; a read answer is built in the response's own buffer.
//
// Wire format (codec.go, merkle.go): small binary frames, a kind byte, a
// format version byte, then uvarint-length-prefixed fields; records travel
// in their storage encoding (memtable.Record) and are checked on arrival.
// The endpoints, their statuses (409 for a clock refusal, 403 for a key
// the replica does not own, 429 when its internode scan slots are busy,
// 503 for a Paxos message of a range the replica is still pulling, 507
// for one its full disk cannot store)
// and headers are the protocol; a rolling upgrade mixes nodes of two
// releases, so they change only with a new kind byte or path.
//
// Usage, as ringkv serve wires it:
//
//	tr, err := transport.New(transport.Config{NodeID: id, Secrets: secrets, TLS: tc})
//	defer tr.Close()
//	node, _ := peer.NewNode(peer.Config{..., Transport: tr})
//	tr.SetLocal(node.Local())
//	srv, _ := httpd.New(httpd.Config{..., Internode: tr}, node, node)
package transport
