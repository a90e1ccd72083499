package keyring

import (
	"crypto/hkdf"
	"crypto/sha256"
	"slices"
	"sync"
)

// Keys are the keys a node derives from the cluster secret. Each
// purpose has its own key, so that a key learnt from one plane (a gossip
// packet, an internode request) says nothing about another, and the raw
// secret never travels or is used as a key itself.
type Keys struct {
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

// Derive derives a cluster's keys from its secret with HKDF-SHA256,
// salted with the cluster's name (so two clusters that share a secret by
// mistake still have different keys) and with one info string per
// purpose. HKDF adds no work factor: the secret must be random (32 bytes
// from a CSPRNG, as SECURITY.md says), not a password.
func Derive(secret []byte, cluster string) Keys {
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
	return Keys{
		Gossip:    key("ringkv gossip v1"),
		Internode: key("ringkv internode hmac v1"),
		Join:      key("ringkv join v1"),
	}
}

// Keyring is a cluster's set of secrets: the secrets a node accepts, the first
// of them primary (the one it signs and encrypts with). Rotation is three
// steps on every node in turn: add the new secret after the old, make it
// first, drop the old (SECURITY.md). It is safe for concurrent use.
type Keyring struct {
	cluster string
	mu      sync.RWMutex
	keys    []Keys
	subs    []func()
}

// New returns the keyring of the cluster named cluster holding
// secrets, primary first. With none, the cluster has no secret.
func New(cluster string, secrets ...[]byte) *Keyring {
	s := &Keyring{cluster: cluster}
	s.keys = derive(cluster, secrets)
	return s
}

func derive(cluster string, secrets [][]byte) []Keys {
	keys := make([]Keys, 0, len(secrets))
	for _, sec := range secrets {
		keys = append(keys, Derive(sec, cluster))
	}
	return keys
}

// Enabled reports whether the keyring holds any secret.
func (s *Keyring) Enabled() bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys) > 0
}

// Primary returns the keys of the primary secret; false when there is no
// secret.
func (s *Keyring) Primary() (Keys, bool) {
	if s == nil {
		return Keys{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.keys) == 0 {
		return Keys{}, false
	}
	return s.keys[0], true
}

// All returns the keys of every secret, primary first.
func (s *Keyring) All() []Keys {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.keys)
}

// Set replaces the secrets (primary first) and calls every function
// given to OnChange.
func (s *Keyring) Set(secrets ...[]byte) {
	keys := derive(s.cluster, secrets)
	s.mu.Lock()
	s.keys = keys
	subs := slices.Clone(s.subs)
	s.mu.Unlock()
	for _, f := range subs {
		f()
	}
}

// OnChange registers f to run after every Set.
func (s *Keyring) OnChange(f func()) {
	s.mu.Lock()
	s.subs = append(s.subs, f)
	s.mu.Unlock()
}
