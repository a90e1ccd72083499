package peer

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// ClusterKeys are the keys a node derives from the cluster secret. Each
// purpose has its own key, so that a key learnt from one plane (a gossip
// packet, an internode request) says nothing about another, and the raw
// secret never travels or is used as a key itself.
type ClusterKeys struct {
	// Gossip is memberlist's 32-byte AES-256-GCM key.
	Gossip []byte
	// Internode is the HMAC-SHA256 key that signs internode HTTP calls.
	Internode []byte
	// Join is the key of the join credential a node proves it holds
	// before a member talks to it (see /add-node).
	Join []byte
}

// DefaultClusterName is the cluster name when none is configured.
const DefaultClusterName = "ringkv"

// DeriveKeys derives a cluster's keys from its secret with HKDF-SHA256,
// salted with the cluster's name (so two clusters that share a secret by
// mistake still have different keys) and with one info string per
// purpose. HKDF adds no work factor: the secret must be random (32 bytes
// from a CSPRNG, as SECURITY.md says), not a password.
func DeriveKeys(secret []byte, cluster string) ClusterKeys {
	if cluster == "" {
		cluster = DefaultClusterName
	}
	salt := []byte("ringkv cluster\x00" + cluster)
	key := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, secret, salt, info, 32)
		if err != nil {
			// Only a length beyond 255*32 bytes fails.
			panic(err)
		}
		return k
	}
	return ClusterKeys{
		Gossip:    key("ringkv gossip v1"),
		Internode: key("ringkv internode hmac v1"),
		Join:      key("ringkv join v1"),
	}
}
