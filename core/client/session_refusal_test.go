package client

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/session"
)

// A write's only attempt reaches its region twice (the network duplicates
// it): copy 1 applies (its answer is lost), a flood of new sessions evicts
// the session as the idlest (eviction needs no idleness: MaxSessions new
// sessions after the write make its session the idlest, however recently
// it wrote), and copy 2 meets the marker and is refused SessionExpired.
// The marker does not vouch that the write never applied (it did), so the
// client must not send it again in a new session, where it would apply a
// second time: it ends Ambiguous. (Found by review: the client used to
// take "SessionExpired on the only attempt" for "never applied".)
func TestOnlyAttemptRefusedByAnEvictedSessionIsNotSentAgain(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	w := newSessionWorld(t, session.Limits{MaxSessions: 2}, threeRegions()...)
	h.c.Submit(Op{Kind: Put, Key: []byte("a"), Value: []byte("1")})
	first := h.sendsUntil(w, "a")["a"]
	dup := proto.Clone(first).(*pb.Envelope) // the network's copy of the same attempt

	w.apply(first) // applied; the answer is lost
	// Other clients open sessions in region 1 (each one ms later).
	for i := 0; i < 2; i++ {
		w.nowMs++
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id, uint64(100+i))
		w.apply(&pb.Envelope{From: 500, To: 1, Body: &pb.Envelope_KvRequest{KvRequest: &pb.KvRequest{
			Header:  &pb.RequestHeader{RegionId: 1, RegionEpoch: w.region(1).r.GetEpoch()},
			Op:      &pb.KvRequest_Put{Put: &pb.PutRequest{Key: []byte("b"), Value: []byte("x")}},
			Session: &pb.Session{Id: id, Sequence: 1, Lowest: 1, StartedMs: w.nowMs},
		}}})
	}
	applied := w.region(1).applied // 1 (a) + 2 (b)
	h.c.Receive(w.apply(dup))      // SessionExpired: the only attempt
	for i := 0; i < 3 && h.c.Pending() > 0; i++ {
		for _, e := range h.answerPD(w, h.take()) {
			if e.GetKvRequest() != nil {
				h.c.Receive(w.apply(e))
			}
		}
	}
	out := h.c.Completed()
	if extra := w.region(1).applied - applied; extra > 0 {
		t.Fatalf("put a=1 applied %d more time(s) after its first application; the client reports %+v", extra, out)
	}
	if len(out) != 1 || out[0].Outcome != Ambiguous {
		t.Fatalf("put a=1 applied once, its answer lost: want it ambiguous, got %+v", out)
	}
}

// A write's only attempt meets its session's marker (the session was
// evicted); the marker vouches that it never applied, so the client sends
// it again in a new session, where it applies. A duplicate of the refused
// copy arrives after the marker was dropped (pushed out at MaxMarkers): it
// must be refused too, or the write applies twice. The refusal raised the
// marker's max_started_ms to the write's start, so dropping it raised the
// horizon past it. (Found by review: the horizon covered the writes the
// session applied, not the one it refused.)
func TestRefusedCopyStaysRefusedAfterItsMarkerIsDropped(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	w := newSessionWorld(t, session.Limits{MaxSessions: 1, MaxMarkers: 1}, threeRegions()...)
	other := func(n uint64) {
		w.nowMs++
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id, 100+n)
		w.apply(&pb.Envelope{From: 500, To: 1, Body: &pb.Envelope_KvRequest{KvRequest: &pb.KvRequest{
			Header:  &pb.RequestHeader{RegionId: 1, RegionEpoch: w.region(1).r.GetEpoch()},
			Op:      &pb.KvRequest_Put{Put: &pb.PutRequest{Key: []byte("b"), Value: []byte("x")}},
			Session: &pb.Session{Id: id, Sequence: 1, Lowest: 1, StartedMs: w.nowMs},
		}}})
	}
	// seq 1 applies in session S1; another client's session evicts S1.
	h.c.Submit(Op{Kind: Put, Key: []byte("a"), Value: []byte("1")})
	h.c.Receive(w.apply(h.sendsUntil(w, "a")["a"]))
	h.completed(1)
	other(1)
	// seq 2 in S1: its only attempt meets S1's marker (SessionExpired); a
	// duplicate of that attempt is still in the network.
	h.clock.t = h.clock.t.Add(10e6)
	h.c.Submit(Op{Kind: Put, Key: []byte("c"), Value: []byte("2")})
	first := h.sendsUntil(w, "c")["c"]
	dup := proto.Clone(first).(*pb.Envelope)
	w.nowMs = max(w.nowMs, first.GetKvRequest().GetSession().GetStartedMs())
	before := w.region(1).applied
	h.c.Receive(w.apply(first))
	resent := kvFor(t, h.take(), "c")
	h.c.Receive(w.apply(resent)) // in the new session S2: applied, OK
	// S2 evicted the other session; its marker pushed S1's out (MaxMarkers 1).
	h.c.Receive(w.apply(dup))
	out := h.c.Completed()
	if n := w.region(1).applied - before; n > 1 {
		t.Fatalf("put c=2 applied %d times; the client reports %+v", n, out)
	}
	if n := w.region(1).applied - before; n != 1 || len(out) != 1 || out[0].Outcome != OK {
		t.Fatalf("put c=2 applied %d times, the client reports %+v: want it resent in a new session and applied once", n, out)
	}
}
