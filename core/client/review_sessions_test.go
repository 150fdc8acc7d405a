package client

import (
	"bytes"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/session"
)

// Review tests (sessions): the client against real session tables, one per
// region, standing in for the regions' replicated state machines. Every
// store of a region answers for it (the tests are about sessions, not
// routing).

type sessionRegion struct {
	r       *pb.Region
	table   *session.Table
	version uint64
	applied int // writes applied (not answered from the table)
}

type sessionWorld struct {
	t       *testing.T
	regions []*sessionRegion
	nowMs   uint64
}

func newSessionWorld(t *testing.T, l session.Limits, rs ...*pb.Region) *sessionWorld {
	w := &sessionWorld{t: t, nowMs: 1}
	for _, r := range rs {
		w.regions = append(w.regions, &sessionRegion{r: r, table: session.New(l)})
	}
	return w
}

func (w *sessionWorld) region(id uint64) *sessionRegion {
	for _, r := range w.regions {
		if r.r.GetId() == id {
			return r
		}
	}
	w.t.Fatalf("no region %d", id)
	return nil
}

// apply runs a put through region's state machine the way applyCommand
// does (Advance, Check, apply, Record) and returns the store's answer.
func (w *sessionWorld) apply(e *pb.Envelope) *pb.Envelope {
	req := e.GetKvRequest()
	sr := w.region(req.GetHeader().GetRegionId())
	s := req.GetSession()
	// The region's clock (its leader's at proposal) is in step with the
	// client's: at least the write's start.
	w.nowMs = max(w.nowMs, s.GetStartedMs())
	sr.table.Advance(w.nowMs)
	switch v, stored, _ := sr.table.Admit(s); v {
	case session.ClockAhead:
		return regionErr(e, &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "started in the future", ClockDependent: true}})
	case session.Repeat:
		return kvReply(e, stored)
	case session.Expired, session.NeverApplied:
		return regionErr(e, &pb.RegionError{SessionExpired: &pb.SessionExpired{SessionId: s.GetId(), Sequence: s.GetSequence(),
			NeverApplied: v == session.NeverApplied}})
	case session.Busy:
		return regionErr(e, &pb.RegionError{StoreBusy: &pb.StoreBusy{}})
	}
	sr.version++
	sr.applied++
	resp := &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: sr.version}}}
	sr.table.Record(s, resp)
	return kvReply(e, resp)
}

// answerPD answers every PD lookup among sent (led by store 1) and returns
// the other envelopes.
func (h *harness) answerPD(w *sessionWorld, sent []*pb.Envelope) []*pb.Envelope {
	var rest []*pb.Envelope
	for _, e := range sent {
		if g := e.GetGetRegion(); g != nil {
			for _, sr := range w.regions {
				if sr.r.ContainsKey(g.GetKey()) {
					h.c.Receive(pdReply(e, sr.r, 1))
				}
			}
			continue
		}
		rest = append(rest, e)
	}
	return rest
}

// kvFor picks the KvRequest of a put of key among sent.
func kvFor(t *testing.T, sent []*pb.Envelope, key string) *pb.Envelope {
	t.Helper()
	for _, e := range sent {
		if e.GetKvRequest().GetPut() != nil && string(e.GetKvRequest().GetPut().GetKey()) == key {
			return e
		}
	}
	t.Fatalf("no put of %q among %v", key, sent)
	return nil
}

// sendsUntil runs the clock until the client has sent a put of each key,
// answering PD lookups on the way, and returns those puts.
func (h *harness) sendsUntil(w *sessionWorld, keys ...string) map[string]*pb.Envelope {
	h.t.Helper()
	out := map[string]*pb.Envelope{}
	for step := 0; step < 4000 && len(out) < len(keys); step++ {
		for _, e := range h.answerPD(w, h.take()) {
			if p := e.GetKvRequest().GetPut(); p != nil {
				out[string(p.GetKey())] = e
			}
		}
		if len(out) < len(keys) {
			h.clock.t = h.clock.t.Add(5 * time.Millisecond)
			h.c.Tick()
		}
	}
	for _, k := range keys {
		if out[k] == nil {
			h.t.Fatalf("no put of %q was sent", k)
		}
	}
	return out
}

// Once the client rotated its session (a write got SessionExpired), writes
// still in flight in the old session send Lowest = their own sequence, not
// the lowest old-session write still waiting. A region then drops the
// stored result of an older write of that session whose client still waits
// for it: its retry is refused SessionExpired, and a write that was applied
// exactly once is reported Ambiguous instead of OK.
func TestOldSessionRetryDropsResultOfAnOlderWriteStillWaiting(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	w := newSessionWorld(t, session.Limits{}, threeRegions()...)

	h.c.Submit(Op{Kind: Put, Key: []byte("a"), Value: []byte("1")}) // seq 1, region 1
	h.c.Submit(Op{Kind: Put, Key: []byte("h"), Value: []byte("2")}) // seq 2, region 2
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("3")}) // seq 3, region 1
	first := h.sendsUntil(w, "a", "h", "b")

	// Region 1 applies seq 1, its answer is lost; seq 3's first attempt
	// is lost on the way.
	w.apply(first["a"])
	// Region 2 no longer knows the session (evicted at MaxSessions, or
	// expired there) and vouches that seq 2 never applied there: the
	// client opens a new session and sends seq 2 again in it.
	h.c.Receive(regionErr(first["h"], &pb.RegionError{SessionExpired: &pb.SessionExpired{
		SessionId: first["h"].GetKvRequest().GetSession().GetId(), Sequence: 2, NeverApplied: true}}))
	resent := kvFor(t, h.take(), "h")
	if s := resent.GetKvRequest().GetSession(); bytes.Equal(s.GetId(), first["h"].GetKvRequest().GetSession().GetId()) || s.GetSequence() != 1 {
		t.Fatalf("seq 2 resent as %v, want the first write of a new session", s)
	}
	h.c.Receive(w.apply(resent))
	if c := h.completed(1)[0]; c.Outcome != OK {
		t.Fatalf("seq 2: %+v", c)
	}

	// Both old-session writes time out and are retried; the network
	// delivers seq 3's retry first.
	retries := h.sendsUntil(w, "a", "b")
	rb, ra := retries["b"], retries["a"]
	if low := rb.GetKvRequest().GetSession().GetLowest(); low > 1 {
		t.Errorf("seq 3's retry says lowest=%d while seq 1 of the same session still waits", low)
	}
	h.c.Receive(w.apply(rb))
	h.c.Receive(w.apply(ra))
	got := map[string]Completion{}
	for _, c := range h.c.Completed() {
		got[string(c.Op.Key)] = c
	}
	if c := got["a"]; c.Outcome != OK || c.Version != 1 {
		t.Errorf("seq 1 was applied exactly once (version 1), but completed %v: %v", c.Outcome, c.Err)
	}
	if n := w.region(1).applied; n != 2 {
		t.Errorf("region 1 applied %d writes, want 2", n)
	}
}

// The same, with a network duplicate: seq 1's first attempt was refused
// (NotLeader, a definite "not applied") but a duplicate of it applied. The
// old-session retry of seq 3 drops seq 1's result, seq 1's retry gets
// SessionExpired, and with no unanswered attempt the client reports the
// write Failed: a wrong answer, the write is in the store.
func TestOldSessionRetryTurnsAnAppliedWriteIntoFailed(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	w := newSessionWorld(t, session.Limits{}, threeRegions()...)
	r1 := w.region(1).r

	h.c.Submit(Op{Kind: Put, Key: []byte("a"), Value: []byte("1")}) // seq 1
	h.c.Submit(Op{Kind: Put, Key: []byte("h"), Value: []byte("2")}) // seq 2
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("3")}) // seq 3
	first := h.sendsUntil(w, "a", "h", "b")

	// seq 1: the first copy finds store 1 not leading (hint: store 2); the
	// network's duplicate of the same request reaches store 1 once it
	// leads, and applies. Its answer goes to an attempt the client closed.
	h.c.Receive(regionErr(first["a"], &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 1, Leader: r1.PeerOnStore(2)}}))
	dupA := first["a"]
	late := w.apply(dupA)
	retryA := kvFor(t, h.take(), "a") // at once, to store 2
	// seq 3's first attempt is lost; seq 2 is refused SessionExpired, never
	// applied (and resent in a new session, where it applies).
	h.c.Receive(regionErr(first["h"], &pb.RegionError{SessionExpired: &pb.SessionExpired{
		SessionId: first["h"].GetKvRequest().GetSession().GetId(), Sequence: 2, NeverApplied: true}}))
	h.c.Receive(w.apply(kvFor(t, h.take(), "h")))
	// The duplicate's answer reaches the client while seq 1's retry is in
	// flight: it is seq 1's answer.
	h.c.Receive(late)
	// seq 1's retry at store 2 meets a NotLeader without hint (now late);
	// meanwhile seq 3 times out and its retry applies.
	h.c.Receive(regionErr(retryA, &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 1}}))
	retries := h.sendsUntil(w, "b")
	if low := retries["b"].GetKvRequest().GetSession().GetLowest(); low > 3 {
		t.Errorf("seq 3's retry says lowest=%d", low)
	}
	h.c.Receive(w.apply(retries["b"]))

	var ca Completion
	for _, c := range append(h.c.Completed(), h.c.Completed()...) {
		if string(c.Op.Key) == "a" {
			ca = c
		}
	}
	if w.region(1).applied < 1 || ca.Outcome == Failed {
		t.Errorf("seq 1 was applied (region 1 applied %d writes) but the client reports %v: %v", w.region(1).applied, ca.Outcome, ca.Err)
	}
}

// Sessions expire per region, by that region's idle time: a client that
// writes to region 2 all the time but to region 1 only now and then has its
// session expired in region 1. Its next write there, never sent before and
// so certainly not applied, is refused SessionExpired and the client fails
// it instead of sending it again in the new session it opens anyway.
func TestFreshWriteToARegionIdleForTTLFailsThoughTheClientIsActive(t *testing.T) {
	ttl := 10 * time.Minute
	h := newHarness(t, testConfig(), 1)
	w := newSessionWorld(t, session.Limits{TTL: ttl}, threeRegions()...)
	do := func(key string) Completion {
		t.Helper()
		h.c.Submit(Op{Kind: Put, Key: []byte(key), Value: []byte("v")})
		for i := 0; i < 3 && h.c.Pending() > 0; i++ {
			h.c.Receive(w.apply(h.sendsUntil(w, key)[key]))
		}
		out := h.c.Completed()
		if len(out) != 1 {
			t.Fatalf("want one completion, got %+v", out)
		}
		return out[0]
	}
	if c := do("a"); c.Outcome != OK { // region 1
		t.Fatalf("first write: %+v", c)
	}
	// Eleven minutes of writes to region 2, one a minute.
	for i := 0; i < 11; i++ {
		w.nowMs += uint64(time.Minute / time.Millisecond)
		h.clock.t = h.clock.t.Add(time.Minute)
		if c := do("h"); c.Outcome != OK {
			t.Fatalf("write %d to region 2: %+v", i, c)
		}
	}
	// Another write moves region 1's clock on (someone else's session).
	w.region(1).table.Advance(w.nowMs)
	if c := do("b"); c.Outcome != OK {
		t.Errorf("a fresh write of an active client to region 1 completed %v: %v", c.Outcome, c.Err)
	}
}

// "Ambiguous only at the op deadline": a write whose first attempt went
// unanswered is given up as Ambiguous after MaxAttempts definite refusals,
// long before its deadline (NotLeader answers with hints, as during a leader
// change, burn the budget in a few seconds).
func TestUncertainWriteIsAmbiguousBeforeItsDeadline(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	r := region(1, "", "g", 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(r, 1)
	h.one() // unanswered
	start := h.clock.t
	for i := 0; i < 100; i++ {
		h.run(2*DefaultOpTimeout, true)
		sent := h.take()
		if len(sent) == 0 {
			break
		}
		// Stores that each believe another leads (a leader change in
		// progress): every answer is definite and hints elsewhere.
		to := sent[0].GetTo()%3 + 1
		h.c.Receive(regionErr(sent[0], &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 1, Leader: r.PeerOnStore(to)}}))
		if out := h.c.Completed(); len(out) == 1 {
			if el := h.clock.t.Sub(start); out[0].Outcome == Ambiguous && el < DefaultOpTimeout {
				t.Fatalf("ambiguous after %v (deadline %v), %d attempts: %v", el, DefaultOpTimeout, out[0].Attempts, out[0].Err)
			}
			t.Logf("completed %v after %v: %v", out[0].Outcome, h.clock.t.Sub(start), out[0].Err)
			return
		}
	}
}

// Region errors are definite for the copy of a request that got them, not
// for the request: the simulated network (and the claim's threat model)
// duplicates messages. A write's first attempt is refused NotLeader, a
// duplicate of the same request reaches the store after it became leader
// and applies (its answer goes to a closed attempt), and every later
// attempt is refused definitely (an election elsewhere) until the attempts
// run out: the client reports Failed, "definitely did not take effect",
// for a write that is in the store.
func TestDuplicatedAttemptAppliesAfterADefiniteRefusal(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAttempts = 4
	h := newHarness(t, cfg, 1)
	w := newSessionWorld(t, session.Limits{}, threeRegions()...)
	h.c.Submit(Op{Kind: Put, Key: []byte("a"), Value: []byte("1")})
	first := h.sendsUntil(w, "a")["a"]
	h.c.Receive(regionErr(first, &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 1}}))
	h.c.Receive(w.apply(first)) // the duplicate, later: applied; a late reply
	for i := 0; i < 10 && h.c.Pending() > 0; i++ {
		e := h.sendsUntil(w, "a")["a"]
		h.c.Receive(regionErr(e, &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 1}}))
	}
	out := h.c.Completed()
	if len(out) != 1 {
		t.Fatalf("completions %+v", out)
	}
	if w.region(1).applied == 1 && out[0].Outcome == Failed {
		t.Errorf("the write is applied but the client reports it Failed: %v", out[0].Err)
	}
}
