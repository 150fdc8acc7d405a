package sim

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/cespare/xxhash/v2"
)

// epoch is the virtual wall time at which every simulation starts.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// event is the work an event does, named what in the trace when what is
// not empty: fn, or, when fn is nil, one of the world's frequent events
// (World.runEvent), which make most of a run's events: its kind and
// operands are held here, as a closure would hold them, without the
// closure's allocation.
type event struct {
	what string
	fn   func()
	kind eventKind
	// The operands of the world's events.
	node     *storeNode
	gen      int
	from, to uint64
	msg      wireMsg
	batch    []wireMsg
}

// eventKind is the kind of a world event (World.runEvent).
type eventKind uint8

const (
	evDeliver      eventKind = iota + 1 // World.deliver(from, to, msg)
	evDeliverBatch                      // World.deliverBatch(from, to, batch)
	evFlush                             // World.flush(node, gen)
	evTick                              // World.tickStore(node, gen)
)

// queued is an event's place in the queue: its time and the order it was
// scheduled in, which order the queue, and the slot its event is kept in.
// It holds no pointers, so the heap's moves need no GC write barriers
// (with events held in the heap, they were a third of its cost).
type queued struct {
	at   time.Duration
	seq  uint64
	slot int
}

// before orders events by time, then by the order they were scheduled in.
// Sequence numbers are unique, so this is a total order: any correct heap
// pops the same events in the same order.
func (e *queued) before(o *queued) bool {
	if e.at != o.at {
		return e.at < o.at
	}
	return e.seq < o.seq
}

// eventQueue is a binary min-heap of queued events. Their events wait in
// slots, reused once run: queueing an event allocates nothing but, for an
// event with fn, its closure.
type eventQueue struct {
	heap  []queued
	slots []event
	free  []int // slots not in use
}

func (q *eventQueue) len() int { return len(q.heap) }

// next is the time of the first event; the queue must not be empty.
func (q *eventQueue) next() time.Duration { return q.heap[0].at }

// push queues an event for time at, in sequence seq, and returns its slot
// for the caller to fill in (valid until the next push).
func (q *eventQueue) push(at time.Duration, seq uint64) *event {
	var slot int
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		slot = len(q.slots)
		q.slots = append(q.slots, event{})
	}
	q.heap = append(q.heap, queued{at: at, seq: seq, slot: slot})
	h := q.heap
	i := len(h) - 1
	x := h[i]
	for i > 0 {
		parent := (i - 1) / 2
		if !x.before(&h[parent]) {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = x
	return &q.slots[slot]
}

// pop removes the first event from the heap; the queue must not be empty.
// Its event stays in its slot until release.
func (q *eventQueue) pop() queued {
	h := q.heap
	top := h[0]
	last := len(h) - 1
	x := h[last]
	h = h[:last]
	q.heap = h
	if last > 0 {
		// Sift the last element down from the root.
		i := 0
		for {
			l := 2*i + 1
			if l >= last {
				break
			}
			m := l
			if r := l + 1; r < last && h[r].before(&h[l]) {
				m = r
			}
			if !h[m].before(&x) {
				break
			}
			h[i] = h[m]
			i = m
		}
		h[i] = x
	}
	return top
}

// event is the event in slot (valid until the next push).
func (q *eventQueue) event(slot int) *event { return &q.slots[slot] }

// release frees the slot of an event popped and run.
func (q *eventQueue) release(slot int) {
	q.slots[slot] = event{} // let go of what it holds
	q.free = append(q.free, slot)
}

// kernel is the clock, the queue and the trace of a run.
type kernel struct {
	now    time.Duration
	seq    uint64
	queue  eventQueue
	events uint64
	hash   *xxhash.Digest
	trace  io.Writer
	// endEvent runs, when endDue is set, after each event, and before
	// each step looks at the queue (for work done between events): it
	// finishes what the event left for its end (the world sends the raft
	// batches stores queued, and sets endDue as it queues them; most
	// events leave nothing, and skip the call).
	endEvent func()
	endDue   bool
	// run runs the events without fn (World.runEvent). The event is
	// valid until the next event is scheduled: run takes its operands
	// before it does anything.
	run func(*event)
	// nowTime is Now at virtual time nowAt (an event's nodes ask for the
	// time again and again).
	nowAt   time.Duration
	nowTime time.Time
}

func newKernel(trace io.Writer) *kernel {
	return &kernel{hash: xxhash.New(), trace: trace, nowTime: epoch}
}

// Now is the virtual time as a time.Time.
func (k *kernel) Now() time.Time {
	if k.nowAt != k.now {
		k.nowAt, k.nowTime = k.now, epoch.Add(k.now)
	}
	return k.nowTime
}

// clock is the kernel's clock as the nodes see it (core.Clock).
type clock struct{ k *kernel }

func (c clock) Now() time.Time { return c.k.Now() }

// skewedClock is a client's clock set off the simulated time by a fixed
// offset (Config.ClientClockSkew).
type skewedClock struct {
	k      *kernel
	offset time.Duration
}

func (c skewedClock) Now() time.Time { return c.k.Now().Add(c.offset) }

// after schedules fn to run after delay. A non-empty what names the event
// in the trace.
func (k *kernel) after(delay time.Duration, what string, fn func()) {
	*k.schedule(delay) = event{what: what, fn: fn}
}

// schedule schedules an event to run after delay, and returns it for the
// caller to fill in (valid until the next one is scheduled).
func (k *kernel) schedule(delay time.Duration) *event {
	if delay < 0 {
		delay = 0
	}
	k.seq++
	return k.queue.push(k.now+delay, k.seq)
}

// step runs the next event; false when the queue is empty or the next
// event is after until.
func (k *kernel) step(until time.Duration) bool {
	k.finishEvent()
	if k.queue.len() == 0 || k.queue.next() > until {
		return false
	}
	q := k.queue.pop()
	k.now = q.at
	k.events++
	e := k.queue.event(q.slot)
	if e.what != "" {
		k.record(e.what)
	}
	// The event runs from its slot, kept until it is done; e is not used
	// after the call, which may move the slots as it schedules events.
	if e.fn != nil {
		e.fn()
	} else {
		k.run(e)
	}
	k.queue.release(q.slot)
	k.finishEvent()
	return true
}

// finishEvent runs endEvent if it is due.
func (k *kernel) finishEvent() {
	if k.endDue {
		k.endDue = false
		k.endEvent()
	}
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

// putUint64 writes v little-endian, in one store.
func putUint64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }
