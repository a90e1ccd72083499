// Package kv is the vocabulary of ringkv's client API, shared by the
// coordinator (peer, which re-exports it under the same names) and the
// client-facing front end (httpd): consistency levels, write options,
// scans, versions, the cluster's status as GET /v1/cluster shows it, and
// the errors a client request can meet. It is a leaf: it imports nothing
// of ringkv, so that httpd depends on it and not on the storage layer
// (engine, memtable, sstable, compaction, Pebble) or the ring.
//
// The storage layer keeps its own sentinels and Version; peer.Node's
// client-facing methods return errors that match both its own and this
// package's (errors.Is), and convert versions, which have the same layout.
package kv
