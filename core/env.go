package core

import (
	"log/slog"
	"math/bits"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// NodeID names a node on the network: a store, PD, or a client. A store's
// NodeID is its store id.
type NodeID = uint64

// Clock tells the current time. In simulation it is virtual.
type Clock interface {
	Now() time.Time
}

// Transport sends an envelope to env.To. Delivery is not guaranteed: the
// message may be dropped, delayed, duplicated or reordered.
type Transport interface {
	Send(env *pb.Envelope)
}

// Rand is a seeded source of randomness owned by one node.
type Rand interface {
	Uint64() uint64
}

// Env is everything a node needs from the world. The simulator and the real
// runtime each build one per node.
type Env struct {
	Clock Clock
	Net   Transport
	FS    vfs.FS
	Dir   string // the node's data directory on FS
	Rand  Rand
	Log   *slog.Logger
	// Buggify is the node's handle on the simulation's fault hooks and
	// coverage counters (core/buggify). It is nil in real mode, where
	// every hook is a nil check that fires nothing.
	Buggify *buggify.B
}

// Intn returns a uniform integer in [0, n) drawn from r. n must be > 0.
func Intn(r Rand, n int) int {
	if n <= 0 {
		panic("core.Intn: n must be positive")
	}
	bound := uint64(n)
	for { // Lemire's multiply-shift with rejection: unbiased
		hi, lo := bits.Mul64(r.Uint64(), bound)
		if lo >= bound || lo >= (-bound)%bound {
			return int(hi)
		}
	}
}
