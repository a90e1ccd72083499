package workload

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestKey(t *testing.T) {
	if got := Key(DefaultKeyPrefix, 42); got != "key-42" {
		t.Fatalf("Key = %q", got)
	}
	if got := string(AppendKey([]byte("x"), "key-", 0)); got != "xkey-0" {
		t.Fatalf("AppendKey = %q", got)
	}
}

// TestUniformRange: every draw is in range and every key is reachable, with
// no key far from its expected count.
func TestUniformRange(t *testing.T) {
	const n, draws = 50, 100000
	c, err := NewChooser(Uniform, n, DefaultZipfTheta)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var counts [n]int
	for range draws {
		k := c.Next(r)
		if k >= n {
			t.Fatalf("draw %d out of [0, %d)", k, n)
		}
		counts[k]++
	}
	want := float64(draws) / n
	for k, got := range counts {
		if math.Abs(float64(got)-want) > 0.15*want {
			t.Errorf("key %d drawn %d times, want about %.0f", k, got, want)
		}
	}
}

// TestZipfSkew: key 0 is drawn with probability 1/zeta(n), key 0 about
// 2^theta times as often as key 1, every draw is in range, and the hot set
// takes the share the distribution says.
func TestZipfSkew(t *testing.T) {
	const n, draws = 100000, 400000
	z, err := NewZipfian(n, DefaultZipfTheta)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	counts := make([]int, n)
	for range draws {
		k := z.Next(r)
		if k >= n {
			t.Fatalf("draw %d out of [0, %d)", k, n)
		}
		counts[k]++
	}
	p0 := float64(counts[0]) / draws
	if want := z.P(0); math.Abs(p0-want) > 0.05*want {
		t.Errorf("P(key 0) = %.4f, want %.4f", p0, want)
	}
	ratio := float64(counts[0]) / float64(counts[1])
	if want := math.Pow(2, DefaultZipfTheta); math.Abs(ratio-want) > 0.15*want {
		t.Errorf("count(0)/count(1) = %.2f, want about %.2f", ratio, want)
	}
	// The hottest 1% of keys: measured share against the exact one.
	var hot int
	var wantHot float64
	for k := range n / 100 {
		hot += counts[k]
		wantHot += z.P(uint64(k))
	}
	share := float64(hot) / draws
	if math.Abs(share-wantHot) > 0.03 || share < 0.5 {
		t.Errorf("hottest 1%% of keys took %.3f of draws, want %.3f (and over half)", share, wantHot)
	}
	// The tail is reached too.
	var tail int
	for k := n / 2; k < n; k++ {
		tail += counts[k]
	}
	if tail == 0 {
		t.Error("no draw in the upper half of the key space")
	}
}

func TestZipfEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	one, err := NewZipfian(1, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if k := one.Next(r); k != 0 {
			t.Fatalf("n=1 drew %d", k)
		}
	}
	two, _ := NewZipfian(2, 0.5)
	for range 1000 {
		if k := two.Next(r); k > 1 {
			t.Fatalf("n=2 drew %d", k)
		}
	}
	for _, theta := range []float64{0, 1, -1, 1.5, math.NaN()} {
		if _, err := NewZipfian(10, theta); err == nil {
			t.Errorf("theta %v accepted", theta)
		}
	}
	if _, err := NewChooser(Uniform, 0, 0.99); err == nil {
		t.Error("0 keys accepted")
	}
}

// TestMixRatios: each workload's share of reads, updates and scans.
func TestMixRatios(t *testing.T) {
	const draws = 200000
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		w                  Workload
		read, update, scan float64
	}{
		{Put, 0, 1, 0},
		{Get, 1, 0, 0},
		{A, 0.5, 0.5, 0},
		{B, 0.95, 0.05, 0},
		{C, 1, 0, 0},
		{ScanAll, 0, 0, 1},
	} {
		var n [3]int
		for range draws {
			n[tc.w.Next(r)]++
		}
		for op, want := range []float64{tc.read, tc.update, tc.scan} {
			got := float64(n[op]) / draws
			if math.Abs(got-want) > 0.01 {
				t.Errorf("workload %s: %s share %.3f, want %.2f", tc.w, Op(op), got, want)
			}
		}
	}
}

func TestParse(t *testing.T) {
	for _, w := range Workloads() {
		if got, err := ParseWorkload(" " + string(w) + " "); err != nil || got != w {
			t.Errorf("ParseWorkload(%q) = %q, %v", w, got, err)
		}
	}
	if _, err := ParseWorkload("d"); err == nil {
		t.Error("workload d accepted")
	}
	if d, err := ParseDistribution("ZIPF"); err != nil || d != Zipf {
		t.Errorf("ParseDistribution(ZIPF) = %q, %v", d, err)
	}
	if _, err := ParseDistribution("latest"); err == nil {
		t.Error("distribution latest accepted")
	}
	if !B.Reads() || Put.Reads() || !BatchGet.Reads() || BatchPut.Reads() || CAS.Reads() {
		t.Error("Reads wrong")
	}
	if !BatchPut.Batch() || !BatchGet.Batch() || CAS.Batch() || Put.Batch() {
		t.Error("Batch wrong")
	}
	// The new workloads draw only their own operation.
	r := rand.New(rand.NewPCG(1, 1))
	for w, op := range map[Workload]Op{CAS: CondUpdate, BatchPut: BatchWrite, BatchGet: BatchRead} {
		for range 10 {
			if got := w.Next(r); got != op {
				t.Errorf("%s drew %s", w, got)
			}
		}
	}
}
