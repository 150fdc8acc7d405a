// Package rng is the seeded pseudo-random generator of the deterministic
// kernel: xoshiro256** seeded through splitmix64. One seed is split into
// independent named streams so that a draw added in one place does not
// reshuffle the draws of another.
package rng

import (
	"encoding/binary"
	"hash/fnv"
	"math/bits"
)

// Rand is a xoshiro256** generator. It is not safe for concurrent use.
type Rand struct {
	s [4]uint64
}

// New returns a generator seeded from seed.
func New(seed uint64) *Rand {
	r := &Rand{}
	r.seed(seed)
	return r
}

// seed sets r's state from seed through splitmix64.
func (r *Rand) seed(seed uint64) {
	sm := seed
	for i := range r.s {
		sm, r.s[i] = splitmix64(sm)
	}
}

// Stream derives an independent generator for the named purpose from seed.
func Stream(seed uint64, name string) *Rand {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(name))
	return New(h.Sum64())
}

// Fork derives an independent child generator, for example one per node.
func (r *Rand) Fork() *Rand {
	return New(r.Uint64())
}

// ForkInto makes c the child Fork would return, without allocating one
// (for a generator used once and dropped).
func (r *Rand) ForkInto(c *Rand) { c.seed(r.Uint64()) }

func splitmix64(x uint64) (next, out uint64) {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return x, z ^ (z >> 31)
}

// Uint64 returns the next 64 random bits.
func (r *Rand) Uint64() uint64 {
	s := &r.s
	result := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return result
}

// Intn returns a uniform integer in [0, n); n must be > 0.
func (r *Rand) Intn(n int) int {
	if n <= 0 {
		panic("rng: Intn argument must be positive")
	}
	bound := uint64(n)
	for {
		hi, lo := bits.Mul64(r.Uint64(), bound)
		if lo >= bound || lo >= (-bound)%bound {
			return int(hi)
		}
	}
}

// Int63n returns a uniform int64 in [0, n); n must be > 0.
func (r *Rand) Int63n(n int64) int64 {
	return int64(r.Intn(int(n)))
}

// Float64 returns a uniform float in [0, 1).
func (r *Rand) Float64() float64 {
	return float64(r.Uint64()>>11) / (1 << 53)
}

// Chance reports true with probability p.
func (r *Rand) Chance(p float64) bool {
	return r.Float64() < p
}

// Read fills p with random bytes; it never fails. It lets a Rand stand in for
// crypto/rand.Reader inside a simulation.
func (r *Rand) Read(p []byte) (int, error) {
	for i := 0; i < len(p); i += 8 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], r.Uint64())
		copy(p[i:], b[:])
	}
	return len(p), nil
}
