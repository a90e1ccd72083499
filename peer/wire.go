package peer

import "errors"

// The types of what nodes ask each other for their own records. Their
// wire format, and the rest of the internode protocol, is peer/transport's.

// ErrBadMessage is matched by errors decoding a malformed internode
// message, and by ApplyLocal's refusal of a record that does not decode.
var ErrBadMessage = errors.New("peer: malformed internode message")

// Mutation is one record for a replica: a user key and its encoded record.
type Mutation struct {
	Key    []byte
	Record []byte
}

// LocalScan asks one node for its own records (tombstones included) whose
// keys have Prefix, in token order after After.
type LocalScan struct {
	Prefix []byte
	After  []byte
	Limit  int
	// MaxBytes caps the records of the answer (0: DefaultMaxScanBytes);
	// past it More is set. It is not sent: each node answers within its
	// own cap.
	MaxBytes int
}

// LocalPage is one node's answer to a LocalScan. More says the node has
// further matching records after the last one.
type LocalPage struct {
	Items []Mutation
	More  bool
}

// ErrReplicaRead is matched by the error of a key a replica answered it
// could not read (a damaged file): the coordinator asks another replica,
// and the batch's other keys keep their answers.
var ErrReplicaRead = errors.New("peer: the replica could not read the key")

// ReplicaReadError is a replica's failed answer for one key of a read.
type ReplicaReadError struct{ Msg string }

func (e *ReplicaReadError) Error() string        { return "replica: " + e.Msg }
func (e *ReplicaReadError) Is(target error) bool { return target == ErrReplicaRead }
