package kv

import "testing"

func TestVersionText(t *testing.T) {
	f := func(v Version, want string) {
		t.Helper()
		if got := v.String(); got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
		back, err := ParseVersion(want)
		if err != nil || back != v {
			t.Fatalf("ParseVersion(%q) = %v, %v", want, back, err)
		}
	}
	f(Version{}, "0000000000000000-0000000000000000")
	f(Version{TS: 0x0193a1b2c3d40001, Node: 0xdeadbeefcafef00d}, "0193a1b2c3d40001-deadbeefcafef00d")
	f(Version{TS: ^uint64(0), Node: 1}, "ffffffffffffffff-0000000000000001")
	for _, bad := range []string{"", "x", "0193a1b2c3d40001deadbeefcafef00d0", "0193a1b2c3d4000G-deadbeefcafef00d", "0193A1B2C3D40001-deadbeefcafef00d"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
	// Text forms sort as versions do, so clients may compare them as strings.
	a, b := Version{TS: 5, Node: 9}, Version{TS: 6, Node: 1}
	if !a.Less(b) || a.String() >= b.String() {
		t.Fatal("text order differs from version order")
	}
}
