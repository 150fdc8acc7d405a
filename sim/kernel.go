package sim

import (
	"fmt"
	"io"
	"time"

	"github.com/cespare/xxhash/v2"
)

// epoch is the virtual wall time at which every simulation starts.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type event struct {
	at   time.Duration
	seq  uint64
	what string
	fn   func()
}

// before orders events by time, then by the order they were scheduled in.
func (e *event) before(o *event) bool {
	if e.at != o.at {
		return e.at < o.at
	}
	return e.seq < o.seq
}

// eventQueue is a binary min-heap of events held by value (no allocation
// per event beyond its closure, no interface calls).
type eventQueue []event

func (q *eventQueue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(&h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (q *eventQueue) pop() event {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{} // let the closure go
	h = h[:last]
	*q = h
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			m = r
		}
		if !h[m].before(&h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top
}

// kernel is the clock, the queue and the trace of a run.
type kernel struct {
	now    time.Duration
	seq    uint64
	queue  eventQueue
	events uint64
	hash   *xxhash.Digest
	trace  io.Writer
	// endEvent, when set, runs after each event, and before each step
	// looks at the queue (for work done between events): it finishes what
	// the event left for its end (the world sends the raft batches stores
	// queued).
	endEvent func()
}

func newKernel(trace io.Writer) *kernel {
	return &kernel{hash: xxhash.New(), trace: trace}
}

// Now is the virtual time as a time.Time.
func (k *kernel) Now() time.Time { return epoch.Add(k.now) }

// clock is the kernel's clock as the nodes see it (core.Clock).
type clock struct{ k *kernel }

func (c clock) Now() time.Time { return c.k.Now() }

// after schedules fn to run after delay. A non-empty what names the event
// in the trace.
func (k *kernel) after(delay time.Duration, what string, fn func()) {
	if delay < 0 {
		delay = 0
	}
	k.seq++
	k.queue.push(event{at: k.now + delay, seq: k.seq, what: what, fn: fn})
}

// step runs the next event; false when the queue is empty or the next
// event is after until.
func (k *kernel) step(until time.Duration) bool {
	if k.endEvent != nil {
		k.endEvent()
	}
	if len(k.queue) == 0 || k.queue[0].at > until {
		return false
	}
	e := k.queue.pop()
	k.now = e.at
	k.events++
	if e.what != "" {
		k.record(e.what)
	}
	e.fn()
	if k.endEvent != nil {
		k.endEvent()
	}
	return true
}

// runUntil runs every event due by until; the clock stays at the last one.
func (k *kernel) runUntil(until time.Duration) {
	for k.step(until) {
	}
}

// advanceTo runs every event due by until and moves the clock to until.
func (k *kernel) advanceTo(until time.Duration) {
	k.runUntil(until)
	k.now = until
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
// receiver and the hash of the message's bytes (which say everything
// else); the readable line is only built when a trace is being written.
func (k *kernel) noteDelivery(from, to, sum uint64, describe func() string) {
	var b [32]byte
	putUint64(b[0:], uint64(k.now))
	putUint64(b[8:], from)
	putUint64(b[16:], to)
	putUint64(b[24:], sum)
	k.hash.Write(b[:])
	if k.trace != nil {
		fmt.Fprintf(k.trace, "%12.3fms deliver %d->%d %s h=%016x\n", float64(k.now)/1e6, from, to, describe(), sum)
	}
}

// traceHash is the hash of everything recorded so far.
func (k *kernel) traceHash() string { return fmt.Sprintf("%016x", k.hash.Sum64()) }

func putUint64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}
