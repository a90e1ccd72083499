package units

import "testing"

func TestBytes(t *testing.T) {
	for in, want := range map[uint64]string{0: "0B", 512: "512B", 1536: "1.5KiB", 65331200: "62.3MiB", 5 << 29: "2.50GiB"} {
		if got := Bytes(in); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", in, got, want)
		}
	}
}
