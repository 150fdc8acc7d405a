// Package sim is the deterministic simulator: a virtual clock and an event
// queue, a world of stores, PD and clients wired through the simulated
// network (netsim), crashable in-memory disks, a fault plan, and a report.
//
// A run is a pure function of (Config, seed). Everything random is drawn
// from separate streams split from the seed (network, disk, workload,
// faults, raft), events at the same virtual time run in the order they were
// scheduled, and etcd raft's crypto/rand.Reader is replaced by a seeded
// stream for the length of a run — so only one run may be in progress per
// process at a time (Run holds a process-wide lock). Every event is fed to a
// trace hash; the same seed gives the same hash.
package sim

import (
	"container/heap"
	"fmt"
	"io"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/multiraft/multiraft/core/rng"
)

// epoch is the virtual wall time at which every simulation starts.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type event struct {
	at   time.Duration
	seq  uint64
	what string
	fn   func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// kernel is the clock, the queue and the trace of a run.
type kernel struct {
	now    time.Duration
	seq    uint64
	queue  eventQueue
	events uint64
	hash   *xxhash.Digest
	trace  io.Writer
}

func newKernel(trace io.Writer) *kernel {
	return &kernel{hash: xxhash.New(), trace: trace}
}

// Now is the virtual time as a time.Time (core.Clock).
func (k *kernel) Now() time.Time { return epoch.Add(k.now) }

// at schedules fn to run after delay.
func (k *kernel) after(delay time.Duration, what string, fn func()) {
	if delay < 0 {
		delay = 0
	}
	k.seq++
	heap.Push(&k.queue, &event{at: k.now + delay, seq: k.seq, what: what, fn: fn})
}

// step runs the next event; false when the queue is empty or the next
// event is after until.
func (k *kernel) step(until time.Duration) bool {
	if len(k.queue) == 0 || k.queue[0].at > until {
		return false
	}
	e := heap.Pop(&k.queue).(*event)
	k.now = e.at
	k.events++
	if e.what != "" {
		k.record(e.what)
	}
	e.fn()
	return true
}

// record feeds one line to the trace hash (and the trace file).
func (k *kernel) record(line string) {
	var b [8]byte
	putUint64(b[:], uint64(k.now))
	k.hash.Write(b[:])
	k.hash.WriteString(line)
	if k.trace != nil {
		fmt.Fprintf(k.trace, "%12.3fms %s\n", float64(k.now)/1e6, line)
	}
}

// note adds a line that is not an event (a fault decision, an observation).
func (k *kernel) note(format string, args ...any) {
	k.record(fmt.Sprintf(format, args...))
}

// noteDelivery records a message delivery. The hash takes the sender, the
// receiver and the bytes (which say everything else); the readable line is
// only built when a trace is being written.
func (k *kernel) noteDelivery(from, to uint64, data []byte, describe func() string) {
	var b [32]byte
	putUint64(b[0:], uint64(k.now))
	putUint64(b[8:], from)
	putUint64(b[16:], to)
	h := xxhash.Sum64(data)
	putUint64(b[24:], h)
	k.hash.Write(b[:])
	if k.trace != nil {
		fmt.Fprintf(k.trace, "%12.3fms deliver %d->%d %s h=%016x\n", float64(k.now)/1e6, from, to, describe(), h)
	}
}

func putUint64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

// streams are the independent random sources of a run.
type streams struct {
	net, disk, work, fault, raft, node *rng.Rand
}

func newStreams(seed uint64) streams {
	return streams{
		net:   rng.Stream(seed, "network"),
		disk:  rng.Stream(seed, "disk"),
		work:  rng.Stream(seed, "workload"),
		fault: rng.Stream(seed, "faults"),
		raft:  rng.Stream(seed, "raft"),
		node:  rng.Stream(seed, "nodes"),
	}
}

// Latency draws a duration uniformly in [Min, Max].
type Latency struct{ Min, Max time.Duration }

func (l Latency) draw(r *rng.Rand) time.Duration {
	if l.Max <= l.Min {
		return l.Min
	}
	return l.Min + time.Duration(r.Int63n(int64(l.Max-l.Min)+1))
}
