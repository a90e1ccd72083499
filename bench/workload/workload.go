// Package workload defines what the load generators send: the key names
// (key-<n>, as bench/cmd/preload and the wrk scripts use), the choice of
// key number (uniform, or zipfian as in YCSB), and the operation mix of each
// named workload (put, get, a, b, c, scan, cas, batch-put, batch-get).
//
// It is pure: no I/O, and every random choice comes from a caller's
// *rand.Rand, so a seed reproduces a run's sequence of requests.
package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// DefaultKeyPrefix is the prefix of every key: key-0, key-1, ... as written
// by bench/cmd/preload and read by bench/wrk/*.lua.
const DefaultKeyPrefix = "key-"

// Key returns prefix followed by n in decimal: Key("key-", 7) is "key-7".
func Key(prefix string, n uint64) string { return prefix + strconv.FormatUint(n, 10) }

// AppendKey appends Key(prefix, n) to dst.
func AppendKey(dst []byte, prefix string, n uint64) []byte {
	return strconv.AppendUint(append(dst, prefix...), n, 10)
}

// Op is one kind of request.
type Op int

// The operations a workload mixes.
const (
	Read       Op = iota // GET /v1/kv/{key}
	Update               // PUT /v1/kv/{key}
	Scan                 // GET /v1/kv?prefix=..&after={key}&limit=..
	CondUpdate           // PUT /v1/kv/{key} with If-Match or If-None-Match: *
	BatchWrite           // POST /v1/batch of puts
	BatchRead            // POST /v1/batch of gets
)

func (o Op) String() string {
	switch o {
	case Read:
		return "get"
	case Update:
		return "put"
	case Scan:
		return "scan"
	case CondUpdate:
		return "cas"
	case BatchWrite:
		return "batch-put"
	case BatchRead:
		return "batch-get"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Workload is a named mix of operations.
type Workload string

// The workloads of `ringkv bench --workload`. a, b and c are YCSB's core
// workloads A (update heavy), B (read mostly) and C (read only).
const (
	Put     Workload = "put"  // 100% PUT
	Get     Workload = "get"  // 100% GET
	A       Workload = "a"    // 50% GET, 50% PUT
	B       Workload = "b"    // 95% GET, 5% PUT
	C       Workload = "c"    // 100% GET (YCSB's name for the same mix as get)
	ScanAll Workload = "scan" // 100% scans of one page
	// CAS increments counters: a serial GET, then a conditional PUT of
	// the value plus one (PutIfAbsent of 1 for a new counter), again on a
	// conflict. It runs closed-loop, not on vegeta.
	CAS      Workload = "cas"
	BatchPut Workload = "batch-put" // 100% POST /v1/batch of --batch-size puts
	BatchGet Workload = "batch-get" // 100% POST /v1/batch of --batch-size gets
)

// Workloads returns every workload, in the order the help text lists them.
func Workloads() []Workload {
	return []Workload{Put, Get, A, B, C, ScanAll, CAS, BatchPut, BatchGet}
}

// ParseWorkload returns the workload named s (case-insensitive).
func ParseWorkload(s string) (Workload, error) {
	w := Workload(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range Workloads() {
		if w == k {
			return w, nil
		}
	}
	return "", fmt.Errorf("--workload %q: want put, get, a, b, c, scan, cas, batch-put or batch-get", s)
}

// ReadFraction is the share of the workload's requests that are reads
// (GET or scan); the rest are updates (PUT).
func (w Workload) ReadFraction() float64 {
	switch w {
	case Put, BatchPut:
		return 0
	case CAS:
		return 0.5 // a read before every conditional write
	case A:
		return 0.5
	case B:
		return 0.95
	}
	return 1 // get, c, scan, batch-get
}

// Reads reports whether the workload reads keys, so that they had better
// exist first (see --preload). cas reads its counters but makes them
// itself: preloaded values would not be counters.
func (w Workload) Reads() bool { return w != Put && w != BatchPut && w != CAS }

// Batch reports whether the workload sends POST /v1/batch.
func (w Workload) Batch() bool { return w == BatchPut || w == BatchGet }

// Next draws the next operation of the mix.
func (w Workload) Next(r *rand.Rand) Op {
	switch w {
	case Put:
		return Update
	case Get, C:
		return Read
	case ScanAll:
		return Scan
	case CAS:
		return CondUpdate
	case BatchPut:
		return BatchWrite
	case BatchGet:
		return BatchRead
	}
	if r.Float64() < w.ReadFraction() {
		return Read
	}
	return Update
}

// Distribution names how key numbers are drawn.
type Distribution string

// The key distributions of --distribution.
const (
	Uniform Distribution = "uniform"
	Zipf    Distribution = "zipf"
)

// ParseDistribution returns the distribution named s.
func ParseDistribution(s string) (Distribution, error) {
	switch d := Distribution(strings.ToLower(strings.TrimSpace(s))); d {
	case Uniform, Zipf:
		return d, nil
	}
	return "", fmt.Errorf("--distribution %q: want zipf or uniform", s)
}

// DefaultZipfTheta is YCSB's zipfian constant: key 0 is drawn about 2^0.99
// (1.99) times as often as key 1; over 100,000 keys, key 0 takes 7.8% of
// the requests and the hottest 1% of the keys take 60%.
const DefaultZipfTheta = 0.99

// Chooser draws key numbers in [0, N()). A Chooser holds no random state:
// the caller passes its own *rand.Rand, so one Chooser can serve many
// goroutines, each with its own generator.
type Chooser interface {
	Next(r *rand.Rand) uint64
	N() uint64
}

// NewChooser returns a chooser over n keys (n >= 1) with distribution d;
// theta is the zipfian constant (0 < theta < 1) and is ignored for uniform.
func NewChooser(d Distribution, n uint64, theta float64) (Chooser, error) {
	if n < 1 {
		return nil, fmt.Errorf("--keys (%d) must be at least 1", n)
	}
	switch d {
	case Uniform:
		return uniform(n), nil
	case Zipf:
		return NewZipfian(n, theta)
	}
	return nil, fmt.Errorf("--distribution %q: want zipf or uniform", d)
}

type uniform uint64

func (u uniform) Next(r *rand.Rand) uint64 { return r.Uint64N(uint64(u)) }
func (u uniform) N() uint64                { return uint64(u) }

// Zipfian draws key numbers with P(k) proportional to 1/(k+1)^theta, so
// key 0 is the hottest, key 1 the next and so on. It is YCSB's
// ZipfianGenerator (Gray et al., "Quickly generating billion-record
// synthetic databases", SIGMOD 1994): constant time per draw after an O(n)
// setup. Unlike math/rand/v2's Zipf, which needs s > 1, it accepts YCSB's
// theta of 0.99. Key numbers are not scrambled: ringkv stores keys in hash
// order, so hot keys land all over the LSM anyway, and "key-0 is hottest"
// is easy to check on a node.
type Zipfian struct {
	n     uint64
	theta float64
	alpha float64
	zetaN float64
	eta   float64
	half  float64 // 1 + 0.5^theta
}

// NewZipfian returns a zipfian chooser over n keys with constant theta,
// 0 < theta < 1.
func NewZipfian(n uint64, theta float64) (*Zipfian, error) {
	if n < 1 {
		return nil, fmt.Errorf("--keys (%d) must be at least 1", n)
	}
	if !(theta > 0 && theta < 1) {
		return nil, fmt.Errorf("--zipf-theta (%g) must be between 0 and 1 (exclusive)", theta)
	}
	z := &Zipfian{n: n, theta: theta, alpha: 1 / (1 - theta), zetaN: zeta(n, theta)}
	zeta2 := zeta(2, theta)
	z.half = 1 + math.Pow(0.5, theta)
	if n > 1 {
		z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/z.zetaN)
	}
	return z, nil
}

// zeta returns the sum over i in [1, n] of 1/i^theta.
func zeta(n uint64, theta float64) float64 {
	var s float64
	for i := uint64(1); i <= n; i++ {
		s += 1 / math.Pow(float64(i), theta)
	}
	return s
}

// N returns the number of keys.
func (z *Zipfian) N() uint64 { return z.n }

// P returns the probability of drawing key k.
func (z *Zipfian) P(k uint64) float64 {
	if k >= z.n {
		return 0
	}
	return 1 / math.Pow(float64(k+1), z.theta) / z.zetaN
}

// Next draws a key number.
func (z *Zipfian) Next(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetaN
	if uz < 1 || z.n == 1 {
		return 0
	}
	if uz < z.half {
		return 1
	}
	k := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if k >= z.n {
		k = z.n - 1
	}
	return k
}
