package kv

import "fmt"

// Version identifies one write: its HLC timestamp and the tag of the node
// that coordinated it. Versions are totally ordered; the greater one wins.
// memtable.Version, the stored form, has the same layout: peer converts
// one to the other (a no-op) where a version leaves the coordinator.
type Version struct {
	TS   uint64 // hybrid logical clock timestamp
	Node uint64 // tag of the writing node
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.TS != w.TS {
		return v.TS < w.TS
	}
	return v.Node < w.Node
}

// IsZero reports whether v is the zero Version (no write).
func (v Version) IsZero() bool { return v.TS == 0 && v.Node == 0 }

// versionTextLen is the length of the text form: 16 hex digits, '-', 16 hex digits.
const versionTextLen = 33

// AppendText appends the text form of v (as in the X-Ringkv-Version
// header) to dst and returns the result.
func (v Version) AppendText(dst []byte) []byte {
	const hexd = "0123456789abcdef"
	var b [versionTextLen]byte
	for i := range 16 {
		b[15-i] = hexd[(v.TS>>(4*i))&0xf]
		b[32-i] = hexd[(v.Node>>(4*i))&0xf]
	}
	b[16] = '-'
	return append(dst, b[:]...)
}

// String returns the text form of v: the timestamp and node tag as two
// 16-digit hex numbers joined by '-'. Text forms sort like Versions.
func (v Version) String() string { return string(v.AppendText(nil)) }

// ParseVersion parses the text form produced by Version.String.
func ParseVersion(s string) (Version, error) {
	if len(s) != versionTextLen || s[16] != '-' {
		return Version{}, fmt.Errorf("malformed version %q", s)
	}
	var v Version
	for i := range 16 {
		a, ok1 := unhex(s[i])
		b, ok2 := unhex(s[17+i])
		if !ok1 || !ok2 {
			return Version{}, fmt.Errorf("malformed version %q", s)
		}
		v.TS = v.TS<<4 | uint64(a)
		v.Node = v.Node<<4 | uint64(b)
	}
	return v, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
