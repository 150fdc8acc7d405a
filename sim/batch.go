package sim

import (
	"github.com/multiraft/multiraft/core/pb"
)

// With Config.BatchRaft, a store's raft messages to another store, sent
// within one event (a ready round, a tick), cross the simulated network
// in batches, as the real transport's stream to a peer store sends what
// queued meanwhile in one gRPC message (server/transport.go, raftSender):
// one decision to lose or duplicate a batch, one latency, delivery in the
// order sent. On a store with hundreds of regions this turns each tick's
// heartbeats to a peer from hundreds of network events into one or two.
//
// The real stream's sender wakes when it will, so a real batch may end
// anywhere: half the time the event's messages to a store are cut in two
// at a random place. Without cuts, a removed peer would always get the
// commit of its removal together with the leader's GC notice, which
// destroys it first, and the path where it applies its own removal would
// never run (it ran in a third of the swarm seeds before batching, in
// none with uncut batches).

// wireMsg is one message of a batch: what the receiver gets (a copy of
// what the bytes decode to, or nil to decode data), and the bytes' hash
// and size.
type wireMsg struct {
	m    *pb.Envelope
	data []byte
	sum  uint64
	size int
}

// outBatch is the raft messages queued from one store to another in the
// current event.
type outBatch struct {
	from, to uint64
	msgs     []wireMsg
}

// queueRaft adds a raft message to the batch from -> to of this event.
func (w *World) queueRaft(from, to uint64, msg wireMsg) {
	w.k.endDue = true // sendOutbox sends the batch
	for i := range w.outbox {
		if b := &w.outbox[i]; b.from == from && b.to == to {
			b.msgs = append(b.msgs, msg)
			return
		}
	}
	w.outbox = append(w.outbox, outBatch{from: from, to: to, msgs: []wireMsg{msg}})
}

// sendOutbox puts the batches queued by the last event on the network, in
// the order of their first messages. The kernel calls it at the end of
// each event (and before each step, for messages sent between events).
func (w *World) sendOutbox() {
	if len(w.outbox) == 0 {
		return
	}
	for i := range w.outbox {
		b := w.outbox[i]
		if n := len(b.msgs); n > 1 && w.rs.batch.Chance(0.5) {
			cut := 1 + w.rs.batch.Intn(n-1)
			w.routeBatch(b.from, b.to, b.msgs[:cut:cut])
			w.routeBatch(b.from, b.to, b.msgs[cut:])
			continue
		}
		w.routeBatch(b.from, b.to, b.msgs)
	}
	clear(w.outbox)
	w.outbox = w.outbox[:0]
}

// routeBatch puts one batch on the network.
func (w *World) routeBatch(from, to uint64, msgs []wireMsg) {
	size := 0
	for _, x := range msgs {
		size += x.size
	}
	for j, d := range w.net.Route(w.k.now, from, to, size) {
		batch := msgs
		if j > 0 {
			batch = copyBatch(msgs) // a duplicate: copies of its own
		}
		*w.k.schedule(d) = event{kind: evDeliverBatch, from: from, to: to, batch: batch}
	}
}

// copyBatch copies messages not yet delivered, for a second delivery.
func copyBatch(msgs []wireMsg) []wireMsg {
	out := make([]wireMsg, len(msgs))
	for i, x := range msgs {
		out[i] = x.again()
	}
	return out
}

// again is x for a second delivery (a duplicate), before either is
// delivered: a copy of its own, the bytes shared (no one writes them).
func (x wireMsg) again() wireMsg {
	if x.m != nil {
		x.m, _ = pb.WireCopy(x.m)
	}
	return x
}

// deliverBatch hands a batch of raft messages to their store, in order,
// and queues one ready round for them.
func (w *World) deliverBatch(from, to uint64, msgs []wireMsg) {
	n := w.stores[to-1]
	for _, x := range msgs {
		m := w.received(from, to, x)
		if n.up() {
			n.st.Receive(m)
		}
	}
	w.queueFlush(n)
}
