package client

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
)

const (
	clientID = 1000
	pdID     = 100
)

type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time { return f.t }

type fakeNet struct{ sent []*pb.Envelope }

func (f *fakeNet) Send(e *pb.Envelope) { f.sent = append(f.sent, e) }

type harness struct {
	t     *testing.T
	clock *fakeClock
	net   *fakeNet
	c     *Client
}

func testConfig() Config {
	return Config{ID: clientID, PD: pdID}
}

func newHarness(t *testing.T, cfg Config, seed uint64) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		clock: &fakeClock{t: time.Unix(1_000_000, 0)},
		net:   &fakeNet{},
	}
	h.c = New(core.Env{Clock: h.clock, Net: h.net, Rand: rng.New(seed)}, cfg)
	return h
}

// take pops every envelope sent so far.
func (h *harness) take() []*pb.Envelope {
	out := h.net.sent
	h.net.sent = nil
	return out
}

// one pops the single envelope sent so far.
func (h *harness) one() *pb.Envelope {
	h.t.Helper()
	out := h.take()
	if len(out) != 1 {
		h.t.Fatalf("want exactly one send, got %d: %v", len(out), out)
	}
	return out[0]
}

// none asserts nothing was sent.
func (h *harness) none() {
	h.t.Helper()
	if out := h.take(); len(out) != 0 {
		h.t.Fatalf("want no send, got %d: %v", len(out), out)
	}
}

// run advances the clock by d in 5ms steps, ticking after each, and stops
// early once something was sent (if stopOnSend).
func (h *harness) run(d time.Duration, stopOnSend bool) {
	for step := time.Duration(0); step < d; step += 5 * time.Millisecond {
		h.clock.t = h.clock.t.Add(5 * time.Millisecond)
		h.c.Tick()
		if stopOnSend && len(h.net.sent) > 0 {
			return
		}
	}
}

func (h *harness) completed(n int) []Completion {
	h.t.Helper()
	out := h.c.Completed()
	if len(out) != n {
		h.t.Fatalf("want %d completions, got %d: %+v", n, len(out), out)
	}
	return out
}

func peers(regionID uint64) []*pb.Peer {
	return []*pb.Peer{
		{Id: regionID*10 + 1, StoreId: 1},
		{Id: regionID*10 + 2, StoreId: 2},
		{Id: regionID*10 + 3, StoreId: 3},
	}
}

func region(id uint64, start, end string, ver uint64) *pb.Region {
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	return &pb.Region{Id: id, StartKey: []byte(start), EndKey: e,
		Epoch: &pb.Epoch{ConfVer: 1, Version: ver}, Peers: peers(id)}
}

// three regions: ["", g) [g, p) [p, +inf)
func threeRegions() []*pb.Region {
	return []*pb.Region{region(1, "", "g", 1), region(2, "g", "p", 1), region(3, "p", "", 1)}
}

func leaderOn(r *pb.Region, store uint64) *pb.Peer { return r.PeerOnStore(store) }

func pdReply(req *pb.Envelope, r *pb.Region, leaderStore uint64) *pb.Envelope {
	return &pb.Envelope{From: pdID, To: clientID, Body: &pb.Envelope_GetRegionResponse{
		GetRegionResponse: &pb.GetRegionResponse{
			RequestId: req.GetGetRegion().GetRequestId(), Region: r, Leader: leaderOn(r, leaderStore),
		}}}
}

func kvReply(req *pb.Envelope, resp *pb.KvResponse) *pb.Envelope {
	resp.RequestId = req.GetKvRequest().GetRequestId()
	return &pb.Envelope{From: req.GetTo(), To: clientID, Body: &pb.Envelope_KvResponse{KvResponse: resp}}
}

func regionErr(req *pb.Envelope, re *pb.RegionError) *pb.Envelope {
	return kvReply(req, &pb.KvResponse{RegionError: re})
}

func wantPD(t *testing.T, e *pb.Envelope, key string) {
	t.Helper()
	g := e.GetGetRegion()
	if g == nil || e.GetTo() != pdID || e.GetFrom() != clientID || string(g.GetKey()) != key {
		t.Fatalf("want GetRegion(%q) to PD, got %v", key, e)
	}
}

func wantKv(t *testing.T, e *pb.Envelope, store, regionID, version uint64) *pb.KvRequest {
	t.Helper()
	r := e.GetKvRequest()
	if r == nil || e.GetTo() != store || e.GetFrom() != clientID ||
		r.GetHeader().GetRegionId() != regionID || r.GetHeader().GetRegionEpoch().GetVersion() != version {
		t.Fatalf("want KvRequest to store %d region %d v%d, got %v", store, regionID, version, e)
	}
	return r
}

// warm answers the first PD lookup of the next op with r led by store.
func (h *harness) warm(r *pb.Region, store uint64) {
	h.t.Helper()
	pd := h.one()
	h.c.Receive(pdReply(pd, r, store))
}

func TestRouteToLeader(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	rs := threeRegions()
	id := h.c.Submit(Op{Kind: Get, Key: []byte("h")})
	pd := h.one()
	wantPD(t, pd, "h")
	h.c.Receive(pdReply(pd, rs[1], 2)) // region 2, led by store 2
	req := h.one()
	kv := wantKv(t, req, 2, 2, 1)
	if string(kv.GetGet().GetKey()) != "h" {
		t.Fatalf("bad get %v", kv)
	}
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Found: true, Value: []byte("v"), Version: 7}}}))
	c := h.completed(1)[0]
	if c.ID != id || c.Outcome != OK || !c.Found || string(c.Value) != "v" || c.Version != 7 || c.Attempts != 1 {
		t.Fatalf("bad completion %+v", c)
	}
	// A second op in the same region is routed from the cache: no PD lookup.
	h.c.Submit(Op{Kind: Put, Key: []byte("i"), Value: []byte("x")})
	req = h.one()
	kv = wantKv(t, req, 2, 2, 1)
	if string(kv.GetPut().GetKey()) != "i" || string(kv.GetPut().GetValue()) != "x" {
		t.Fatalf("bad put %v", kv)
	}
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 8}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || c.Version != 8 {
		t.Fatalf("bad completion %+v", c)
	}
	// A key of another region needs its own lookup.
	h.c.Submit(Op{Kind: Get, Key: []byte("a")})
	wantPD(t, h.one(), "a")
	if h.c.Pending() != 1 {
		t.Fatalf("pending %d", h.c.Pending())
	}
}

func TestNotLeaderHint(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	r := threeRegions()[1]
	h.c.Submit(Op{Kind: Put, Key: []byte("k"), Value: []byte("v")})
	h.warm(r, 1)
	req := h.one()
	wantKv(t, req, 1, 2, 1)
	h.c.Receive(regionErr(req, &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 2, Leader: r.PeerOnStore(3)}}))
	req = h.one() // at once, no tick
	wantKv(t, req, 3, 2, 1)
	// Without a hint: back off, then try another peer than the one that refused.
	h.c.Receive(regionErr(req, &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 2}}))
	h.none()
	h.run(2*time.Second, true)
	req = h.one()
	wantKv(t, req, 1, 2, 1) // round robin after store 3 wraps to store 1
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 1}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || c.Attempts != 3 {
		t.Fatalf("bad completion %+v", c)
	}
	// The hinted leader is remembered... until a later hint replaces it.
	h.c.Submit(Op{Kind: Get, Key: []byte("k")})
	wantKv(t, h.one(), 1, 2, 1)
	if s := h.c.Stats(); s.NotLeader != 2 || s.Retries != 2 || s.PDLookups != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEpochNotMatchUpdatesCache(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	old := region(2, "g", "p", 1)
	h.c.Submit(Op{Kind: Get, Key: []byte("m")})
	h.warm(old, 2)
	req := h.one()
	wantKv(t, req, 2, 2, 1)
	// Region 2 split at "k": [g,k) v2 and region 4 [k,p) v2.
	left, right := region(2, "g", "k", 2), region(4, "k", "p", 2)
	h.c.Receive(regionErr(req, &pb.RegionError{EpochNotMatch: &pb.EpochNotMatch{CurrentRegions: []*pb.Region{left, right}}}))
	req = h.one() // at once, from the new cache, no PD lookup
	kv := wantKv(t, req, 2, 4, 2)
	if string(kv.GetGet().GetKey()) != "m" {
		t.Fatalf("bad request %v", kv)
	}
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || c.Found {
		t.Fatalf("bad completion %+v", c)
	}
	// The left half is cached with its new epoch too.
	h.c.Submit(Op{Kind: Get, Key: []byte("h")})
	wantKv(t, h.one(), 2, 2, 2)
	// A stale region from PD does not replace the newer entries.
	if h.c.cache.insert(old, nil, nil) {
		t.Fatal("stale region replaced newer ones")
	}
	if e := h.c.cache.find([]byte("m")); e == nil || e.region.GetId() != 4 {
		t.Fatalf("cache lost region 4: %v", e)
	}
}

func TestKeyNotInRegionAsksPD(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Delete, Key: []byte("m")})
	h.warm(region(2, "g", "p", 1), 2)
	req := h.one()
	h.c.Receive(regionErr(req, &pb.RegionError{KeyNotInRegion: &pb.KeyNotInRegion{Key: []byte("m"), RegionId: 2}}))
	pd := h.one()
	wantPD(t, pd, "m")
	h.c.Receive(pdReply(pd, region(5, "l", "p", 2), 3))
	req = h.one()
	wantKv(t, req, 3, 5, 2)
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Delete{Delete: &pb.DeleteResponse{Deleted: true}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || !c.Deleted || c.Attempts != 2 {
		t.Fatalf("bad completion %+v", c)
	}
	if s := h.c.Stats(); s.KeyNotInRegion != 1 || s.PDLookups != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRegionNotFoundAsksPDAfterBackoff(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Get, Key: []byte("m")})
	h.warm(region(2, "g", "p", 1), 2)
	req := h.one()
	h.c.Receive(regionErr(req, &pb.RegionError{RegionNotFound: &pb.RegionNotFound{RegionId: 2}}))
	h.none()
	h.run(time.Second, true)
	wantPD(t, h.one(), "m")
}

func TestGetTimeoutRetriesAndLateReplyIgnored(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Get, Key: []byte("b")})
	h.warm(region(1, "", "g", 1), 1)
	first := h.one()
	wantKv(t, first, 1, 1, 1)
	h.run(DefaultAttemptTimeout-10*time.Millisecond, false)
	h.none()
	h.run(2*time.Second, true) // timeout, then backoff, then retry
	second := h.one()
	wantKv(t, second, 2, 1, 1) // the silent store is skipped
	if second.GetKvRequest().GetRequestId() == first.GetKvRequest().GetRequestId() {
		t.Fatal("retry reused the request id")
	}
	// The first attempt's reply arrives late: ignored.
	h.c.Receive(kvReply(first, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Found: true, Value: []byte("old")}}}))
	h.completed(0)
	h.none()
	h.c.Receive(kvReply(second, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Found: true, Value: []byte("new")}}}))
	c := h.completed(1)[0]
	if c.Outcome != OK || string(c.Value) != "new" || c.Attempts != 2 {
		t.Fatalf("bad completion %+v", c)
	}
	// A duplicate of the answer is ignored too.
	h.c.Receive(kvReply(second, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}))
	h.completed(0)
	if s := h.c.Stats(); s.Timeouts != 1 || s.LateReplies != 2 || s.OK != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A write attempt that times out is retried with the same session and
// sequence (the region applies it at most once); the write is ambiguous only
// if its deadline passes first.
func TestWriteTimeoutIsRetriedWithTheSameSequence(t *testing.T) {
	for _, kind := range []OpKind{Put, Delete, Cas} {
		t.Run(kind.String(), func(t *testing.T) {
			cfg := testConfig()
			h := newHarness(t, cfg, 1)
			h.c.Submit(Op{Kind: kind, Key: []byte("b"), Value: []byte("v")})
			h.warm(region(1, "", "g", 1), 1)
			first := h.one()
			h.run(DefaultAttemptTimeout, true)
			h.run(2*DefaultBackoffMax, true)
			retry := h.one()
			s1, s2 := first.GetKvRequest().GetSession(), retry.GetKvRequest().GetSession()
			if s1 == nil || !proto.Equal(s1, s2) || s1.GetSequence() != 1 {
				t.Fatalf("first attempt's session %v, retry's %v: want the same, sequence 1", s1, s2)
			}
			h.completed(0)
			// The retry's answer completes the write.
			h.c.Receive(kvReply(retry, okResponse(kind)))
			if c := h.completed(1)[0]; c.Outcome != OK || c.Attempts != 2 {
				t.Fatalf("bad completion %+v", c)
			}
			// The first attempt's late answer is ignored.
			h.c.Receive(kvReply(first, okResponse(kind)))
			h.completed(0)
		})
	}
}

func okResponse(kind OpKind) *pb.KvResponse {
	switch kind {
	case Delete:
		return &pb.KvResponse{Result: &pb.KvResponse_Delete{Delete: &pb.DeleteResponse{Deleted: true}}}
	case Cas:
		return &pb.KvResponse{Result: &pb.KvResponse_Cas{Cas: &pb.CasResponse{Succeeded: true, Version: 1}}}
	}
	return &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 1}}}
}

// Timeouts until the op's deadline: ambiguous, and only then.
func TestWriteUnansweredUntilItsDeadlineIsAmbiguous(t *testing.T) {
	cfg := testConfig()
	cfg.OpTimeout = 5 * time.Second
	h := newHarness(t, cfg, 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	h.run(cfg.OpTimeout+time.Second, false)
	c := h.completed(1)[0]
	if c.Outcome != Ambiguous || !errors.Is(c.Err, ErrOpTimeout) || c.Attempts < 2 {
		t.Fatalf("bad completion %+v", c)
	}
}

// A session the region no longer knows, and the region vouches that the
// write never applied in it (never_applied): the client opens a new session
// and sends the write again in it, at once, even after earlier attempts
// (the region's word covers every copy); later writes follow in the new
// session.
func TestSessionExpiredNeverAppliedResendsInANewSession(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	first := h.one()
	h.c.Receive(regionErr(first, &pb.RegionError{StaleCommand: &pb.StaleCommand{}}))
	h.run(2*time.Second, true)
	req := h.one()
	old := req.GetKvRequest().GetSession().GetId()
	h.c.Receive(regionErr(req, &pb.RegionError{SessionExpired: &pb.SessionExpired{SessionId: old, Sequence: 1, NeverApplied: true}}))
	h.completed(0)
	resent := h.one()
	s := resent.GetKvRequest().GetSession()
	if bytes.Equal(s.GetId(), old) || s.GetSequence() != 1 {
		t.Fatalf("resent in session %x seq %d, want a new session from 1", s.GetId(), s.GetSequence())
	}
	h.c.Receive(kvReply(resent, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 1}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || c.Version != 1 {
		t.Fatalf("bad completion %+v", c)
	}
	if st := h.c.Stats(); st.SessionResends != 1 || st.Sessions != 2 {
		t.Fatalf("stats %+v: want 1 resend, 2 sessions", st)
	}
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("w")})
	if n := h.one().GetKvRequest().GetSession(); !bytes.Equal(n.GetId(), s.GetId()) || n.GetSequence() != 2 {
		t.Fatalf("next write in session %x seq %d, want %x seq 2", n.GetId(), n.GetSequence(), s.GetId())
	}
}

// A session the region no longer knows, on a write's only attempt, without
// the region's word that it never applied: a duplicate of that attempt may
// have applied before this copy was refused (the session evicted, its
// marker holding no results). Resending could apply it twice: the write
// ends Ambiguous, and the next write opens a new session. The same when
// never_applied names another write.
func TestSessionExpiredOnTheOnlyAttemptIsAmbiguous(t *testing.T) {
	for _, other := range []bool{false, true} {
		h := newHarness(t, testConfig(), 1)
		h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
		h.warm(region(1, "", "g", 1), 1)
		req := h.one()
		old := req.GetKvRequest().GetSession().GetId()
		se := &pb.SessionExpired{SessionId: old, Sequence: 1}
		if other {
			se.Sequence, se.NeverApplied = 2, true
		}
		h.c.Receive(regionErr(req, &pb.RegionError{SessionExpired: se}))
		if c := h.completed(1)[0]; c.Outcome != Ambiguous || !errors.Is(c.Err, ErrSessionExpired) {
			t.Fatalf("bad completion %+v", c)
		}
		h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("w")})
		if s := h.one().GetKvRequest().GetSession(); bytes.Equal(s.GetId(), old) || s.GetSequence() != 1 {
			t.Fatalf("next write in session %x seq %d, want a new session from 1", s.GetId(), s.GetSequence())
		}
	}
}

// A session the region no longer knows, after an earlier attempt: that one
// may have applied in the old session, so resending could apply it twice.
// The write ends Ambiguous.
func TestSessionExpiredAfterAnEarlierAttemptIsAmbiguous(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	first := h.one()
	h.c.Receive(regionErr(first, &pb.RegionError{StaleCommand: &pb.StaleCommand{}}))
	h.run(2*time.Second, true)
	req := h.one()
	old := req.GetKvRequest().GetSession().GetId()
	h.c.Receive(regionErr(req, &pb.RegionError{SessionExpired: &pb.SessionExpired{SessionId: old, Sequence: 1}}))
	if c := h.completed(1)[0]; c.Outcome != Ambiguous || !errors.Is(c.Err, ErrSessionExpired) {
		t.Fatalf("bad completion %+v", c)
	}
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("w")})
	if s := h.one().GetKvRequest().GetSession(); bytes.Equal(s.GetId(), old) || s.GetSequence() != 1 {
		t.Fatalf("next write in session %x seq %d, want a new session from 1", s.GetId(), s.GetSequence())
	}
}

func TestWriteInFlightAtOpDeadlineIsAmbiguous(t *testing.T) {
	cfg := testConfig()
	cfg.OpTimeout, cfg.AttemptTimeout = time.Second, 5*time.Second
	h := newHarness(t, cfg, 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	h.one()
	h.run(time.Second, false)
	if c := h.completed(1)[0]; c.Outcome != Ambiguous || !errors.Is(c.Err, ErrOpTimeout) {
		t.Fatalf("bad completion %+v", c)
	}
}

func TestExhaustedAttemptsFailARead(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAttempts = 3
	h := newHarness(t, cfg, 1)
	h.c.Submit(Op{Kind: Get, Key: []byte("b")})
	h.warm(region(1, "", "g", 1), 1)
	for i := 0; i < 3; i++ {
		h.run(2*time.Second, true)
		req := h.one()
		wantKv(t, req, 1, 1, 1)
		h.c.Receive(regionErr(req, &pb.RegionError{StoreBusy: &pb.StoreBusy{}}))
	}
	c := h.completed(1)[0]
	if c.Outcome != Failed || !errors.Is(c.Err, ErrTooManyAttempts) || c.Attempts != 3 {
		t.Fatalf("bad completion %+v", c)
	}
	h.run(5*time.Second, false)
	h.none()
	if s := h.c.Stats(); s.StoreBusy != 3 || s.Backoffs != 2 || s.Failed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A write is not given up after MaxAttempts refusals: a copy of an attempt
// may still apply, so giving up early would only trade a possible success
// for an unknown outcome. It is retried, same session and sequence, until
// it succeeds or its deadline passes.
func TestWriteOutlivesMaxAttempts(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAttempts = 3
	h := newHarness(t, cfg, 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	var first *pb.Session
	for i := 0; i < 6; i++ {
		h.run(2*time.Second, true)
		req := h.one()
		if first == nil {
			first = req.GetKvRequest().GetSession()
		} else if !proto.Equal(req.GetKvRequest().GetSession(), first) {
			t.Fatalf("attempt %d in session %v, want %v", i+1, req.GetKvRequest().GetSession(), first)
		}
		if i < 5 {
			h.c.Receive(regionErr(req, &pb.RegionError{StoreBusy: &pb.StoreBusy{}}))
			h.completed(0)
			continue
		}
		h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 4}}}))
	}
	if c := h.completed(1)[0]; c.Outcome != OK || c.Version != 4 || c.Attempts != 6 {
		t.Fatalf("bad completion %+v", c)
	}
}

// An answer to an earlier attempt of a write still in flight is its
// answer: a duplicate of a refused copy applied.
func TestLateAnswerToAnEarlierAttemptCompletesAWrite(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	first := h.one()
	h.c.Receive(regionErr(first, &pb.RegionError{StaleCommand: &pb.StaleCommand{}}))
	h.run(2*time.Second, true)
	h.one() // the retry, in flight
	h.c.Receive(kvReply(first, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 7}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || c.Version != 7 {
		t.Fatalf("bad completion %+v", c)
	}
	// A read's late answer is not taken: its retry may see newer state.
	h.c.Submit(Op{Kind: Get, Key: []byte("b")})
	g := h.one()
	h.c.Receive(regionErr(g, &pb.RegionError{StaleCommand: &pb.StaleCommand{}}))
	h.c.Receive(kvReply(g, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}))
	h.completed(0)
}

func TestPDSilentFailsAfterOpTimeout(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.run(DefaultOpTimeout+time.Second, false)
	sent := h.take()
	if len(sent) < 3 {
		t.Fatalf("want several PD lookups, got %d", len(sent))
	}
	ids := map[uint64]bool{}
	for _, e := range sent {
		wantPD(t, e, "b")
		ids[e.GetGetRegion().GetRequestId()] = true
	}
	if len(ids) != len(sent) {
		t.Fatal("PD retries reused request ids")
	}
	c := h.completed(1)[0]
	if c.Outcome != Failed || !errors.Is(c.Err, ErrOpTimeout) || c.Attempts != 0 {
		t.Fatalf("bad completion %+v", c)
	}
	if s := h.c.Stats(); s.PDTimeouts == 0 || s.PDLookups != uint64(len(sent)) || s.Attempts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPDErrorRetries(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Get, Key: []byte("b")})
	pd := h.one()
	h.c.Receive(&pb.Envelope{From: pdID, To: clientID, Body: &pb.Envelope_GetRegionResponse{
		GetRegionResponse: &pb.GetRegionResponse{RequestId: pd.GetGetRegion().GetRequestId(), Error: "not bootstrapped"}}})
	h.none()
	h.run(time.Second, true)
	pd = h.one()
	wantPD(t, pd, "b")
	// A region that does not hold the key is an error too.
	h.c.Receive(pdReply(pd, region(2, "g", "p", 1), 1))
	h.none()
	h.run(time.Second, true)
	h.warm(region(1, "", "g", 1), 1)
	wantKv(t, h.one(), 1, 1, 1)
	if s := h.c.Stats(); s.PDErrors != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMalformedReplies(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Get, Key: []byte("b")})
	h.warm(region(1, "", "g", 1), 1)
	req := h.one()
	h.c.Receive(kvReply(req, &pb.KvResponse{})) // neither result nor error
	h.completed(0)
	h.run(time.Second, true)
	req = h.one()
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{}}})) // wrong type
	h.completed(0)
	h.run(time.Second, true)
	req = h.one()
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}))
	if c := h.completed(1)[0]; c.Outcome != OK || c.Attempts != 3 {
		t.Fatalf("bad completion %+v", c)
	}
	// A write is retried (with the same sequence: applied at most once).
	h.c.Submit(Op{Kind: Cas, Key: []byte("b"), Value: []byte("v")})
	req = h.one()
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}))
	h.completed(0)
	h.run(time.Second, true)
	retry := h.one()
	if !proto.Equal(retry.GetKvRequest().GetSession(), req.GetKvRequest().GetSession()) {
		t.Fatal("the retry of a write has another session or sequence")
	}
	if s := h.c.Stats(); s.Malformed != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// Every attempt refused until the deadline: a read fails; a write is
// ambiguous (a refusal is definite only for the copy that got it, and the
// network may hold another), unless it was never sent.
func TestDefiniteErrorsThenDeadline(t *testing.T) {
	for _, tc := range []struct {
		kind OpKind
		want Outcome
	}{{Get, Failed}, {Put, Ambiguous}} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			cfg := testConfig()
			cfg.OpTimeout = 500 * time.Millisecond
			h := newHarness(t, cfg, 1)
			h.c.Submit(Op{Kind: tc.kind, Key: []byte("b"), Value: []byte("v")})
			h.warm(region(1, "", "g", 1), 1)
			for h.c.Pending() > 0 {
				for _, req := range h.take() {
					h.c.Receive(regionErr(req, &pb.RegionError{StaleCommand: &pb.StaleCommand{}}))
				}
				h.run(5*time.Millisecond, false)
			}
			c := h.completed(1)[0]
			if c.Outcome != tc.want || !errors.Is(c.Err, ErrOpTimeout) || c.Attempts < 2 {
				t.Fatalf("bad completion %+v", c)
			}
		})
	}
}

func TestInvalidRequestFailsAtOnce(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	req := h.one()
	h.c.Receive(regionErr(req, &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "value too large"}}))
	c := h.completed(1)[0]
	if c.Outcome != Failed || !errors.Is(c.Err, ErrInvalidOp) || c.Attempts != 1 {
		t.Fatalf("bad completion %+v", c)
	}
	h.run(5*time.Second, false)
	h.none()
}

// An InvalidRequest to a later attempt of a write is not definite: the
// earlier attempt went to another store, which may check sizes against
// other limits (a rolling change of them) and have accepted it. The write
// ends Ambiguous. A read refused on its second attempt still fails.
func TestInvalidRequestToARetriedWriteIsAmbiguous(t *testing.T) {
	for _, kind := range []OpKind{Put, Get} {
		t.Run(kind.String(), func(t *testing.T) {
			h := newHarness(t, testConfig(), 1)
			h.c.Submit(Op{Kind: kind, Key: []byte("b"), Value: []byte("v")})
			h.warm(region(1, "", "g", 1), 1)
			h.one() // lost
			h.run(DefaultAttemptTimeout, true)
			h.run(2*DefaultBackoffMax, true)
			retry := h.one()
			h.c.Receive(regionErr(retry, &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "value too large"}}))
			c := h.completed(1)[0]
			want := Ambiguous
			if kind == Get {
				want = Failed
			}
			if c.Outcome != want || !errors.Is(c.Err, ErrInvalidOp) || c.Attempts != 2 {
				t.Fatalf("bad completion %+v, want %v after 2 attempts", c, want)
			}
			h.run(5*time.Second, false)
			h.none()
		})
	}
}

// An InvalidRequest that depends on the region's clock (the write started
// more than the session lifetime ahead of it) is not the same for every
// copy: a copy applied once the region's clock caught up is accepted. The
// write ends Ambiguous, not Failed, and is not retried.
func TestClockDependentInvalidRequestIsAmbiguous(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Put, Key: []byte("b"), Value: []byte("v")})
	h.warm(region(1, "", "g", 1), 1)
	req := h.one()
	h.c.Receive(regionErr(req, &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "started in the future", ClockDependent: true}}))
	c := h.completed(1)[0]
	if c.Outcome != Ambiguous || !errors.Is(c.Err, ErrInvalidOp) || c.Attempts != 1 {
		t.Fatalf("bad completion %+v", c)
	}
	h.run(5*time.Second, false)
	h.none()
}

func TestValidation(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	for _, op := range []Op{
		{Kind: Put, Value: []byte("v")},
		{Kind: Cas, Value: []byte("v")},
		{Kind: Get},
		{Kind: Scan, Start: []byte("b"), End: []byte("b")},
		{Kind: Scan, Start: []byte("c"), End: []byte("b")},
		{Kind: Scan, Limit: -1},
		{},
	} {
		id := h.c.Submit(op)
		c := h.completed(1)[0]
		if c.ID != id || c.Outcome != Failed || !errors.Is(c.Err, ErrInvalidOp) {
			t.Fatalf("%+v: bad completion %+v", op, c)
		}
	}
	h.none()
	if h.c.Pending() != 0 {
		t.Fatal("invalid ops pending")
	}
}

// world is a correct fake cluster: PD and stores, with data.
type world struct {
	regions []*pb.Region
	leader  map[uint64]uint64 // region id -> store
	data    map[string]string
	maxScan int // a store's bound on one scan answer; 0: none
}

func newWorld(rs []*pb.Region) *world {
	w := &world{regions: rs, leader: map[uint64]uint64{}, data: map[string]string{}}
	for _, r := range rs {
		w.leader[r.GetId()] = 1
	}
	return w
}

func (w *world) regionOf(key []byte) *pb.Region {
	for _, r := range w.regions {
		if r.ContainsKey(key) {
			return r
		}
	}
	return nil
}

func (w *world) serve(e *pb.Envelope) *pb.Envelope {
	if g := e.GetGetRegion(); g != nil {
		r := w.regionOf(g.GetKey())
		return pdReply(e, r, w.leader[r.GetId()])
	}
	req := e.GetKvRequest()
	var r *pb.Region
	for _, x := range w.regions {
		if x.GetId() == req.GetHeader().GetRegionId() {
			r = x
		}
	}
	if r == nil {
		return regionErr(e, &pb.RegionError{RegionNotFound: &pb.RegionNotFound{RegionId: req.GetHeader().GetRegionId()}})
	}
	if l := w.leader[r.GetId()]; l != e.GetTo() {
		return regionErr(e, &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: r.GetId(), Leader: r.PeerOnStore(l)}})
	}
	if !r.GetEpoch().Equal(req.GetHeader().GetRegionEpoch()) {
		return regionErr(e, &pb.RegionError{EpochNotMatch: &pb.EpochNotMatch{CurrentRegions: []*pb.Region{r}}})
	}
	switch op := req.GetOp().(type) {
	case *pb.KvRequest_Get:
		v, ok := w.data[string(op.Get.GetKey())]
		return kvReply(e, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Found: ok, Value: []byte(v)}}})
	case *pb.KvRequest_Put:
		w.data[string(op.Put.GetKey())] = string(op.Put.GetValue())
		return kvReply(e, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 1}}})
	case *pb.KvRequest_Scan:
		s := op.Scan
		end := minEnd(s.GetEndKey(), r.GetEndKey())
		var keys []string
		for k := range w.data {
			if bytes.Compare([]byte(k), s.GetStartKey()) >= 0 && (len(end) == 0 || bytes.Compare([]byte(k), end) < 0) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if s.GetLimit() > 0 && len(keys) > int(s.GetLimit()) {
			keys = keys[:s.GetLimit()]
		}
		more := false
		if w.maxScan > 0 && len(keys) > w.maxScan {
			keys, more = keys[:w.maxScan], true
		}
		var pairs []*pb.KvPair
		for _, k := range keys {
			pairs = append(pairs, &pb.KvPair{Key: []byte(k), Value: []byte(w.data[k])})
		}
		return kvReply(e, &pb.KvResponse{Result: &pb.KvResponse_Scan{Scan: &pb.ScanResponse{Pairs: pairs, More: more}}})
	}
	return kvReply(e, &pb.KvResponse{})
}

// pump answers every send from w until nothing more is sent.
func (h *harness) pump(w *world) []*pb.Envelope {
	var all []*pb.Envelope
	for {
		sent := h.take()
		if len(sent) == 0 {
			return all
		}
		all = append(all, sent...)
		for _, e := range sent {
			h.c.Receive(w.serve(e))
		}
	}
}

func keysOf(pairs []*pb.KvPair) string {
	var b bytes.Buffer
	for _, p := range pairs {
		b.Write(p.GetKey())
		b.WriteByte(' ')
	}
	return b.String()
}

func scanRequests(sent []*pb.Envelope) []string {
	var out []string
	for _, e := range sent {
		if s := e.GetKvRequest().GetScan(); s != nil {
			out = append(out, fmt.Sprintf("r%d[%s,%s)#%d", e.GetKvRequest().GetHeader().GetRegionId(),
				s.GetStartKey(), s.GetEndKey(), s.GetLimit()))
		}
	}
	return out
}

func TestScanStitchedAcrossRegions(t *testing.T) {
	w := newWorld(threeRegions())
	for _, k := range []string{"a", "c", "e", "g", "h", "j", "l", "n", "q", "s", "u"} {
		w.data[k] = "v" + k
	}
	cases := []struct {
		name       string
		op         Op
		wantKeys   string
		wantScans  []string
		wantLookup int
	}{
		{
			name:       "limit ends in the middle region",
			op:         Op{Kind: Scan, Start: []byte("b"), End: []byte("t"), Limit: 5},
			wantKeys:   "c e g h j ",
			wantScans:  []string{"r1[b,g)#5", "r2[g,p)#3"},
			wantLookup: 2,
		},
		{
			name:       "end in the last region",
			op:         Op{Kind: Scan, Start: []byte("d"), End: []byte("t")},
			wantKeys:   "e g h j l n q s ",
			wantScans:  []string{"r1[d,g)#0", "r2[g,p)#0", "r3[p,t)#0"},
			wantLookup: 3,
		},
		{
			name:       "to +inf with a limit beyond the data",
			op:         Op{Kind: Scan, Start: []byte("f"), Limit: 100},
			wantKeys:   "g h j l n q s u ",
			wantScans:  []string{"r1[f,g)#100", "r2[g,p)#100", "r3[p,)#95"},
			wantLookup: 3,
		},
		{
			name:       "end at a region boundary",
			op:         Op{Kind: Scan, Start: []byte(""), End: []byte("p")},
			wantKeys:   "a c e g h j l n ",
			wantScans:  []string{"r1[,g)#0", "r2[g,p)#0"},
			wantLookup: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig(), 1)
			h.c.Submit(tc.op)
			sent := h.pump(w)
			c := h.completed(1)[0]
			if c.Outcome != OK || keysOf(c.Pairs) != tc.wantKeys {
				t.Fatalf("got %v %q, want %q", c.Outcome, keysOf(c.Pairs), tc.wantKeys)
			}
			if got := scanRequests(sent); fmt.Sprint(got) != fmt.Sprint(tc.wantScans) {
				t.Fatalf("scans %v, want %v", got, tc.wantScans)
			}
			if s := h.c.Stats(); s.PDLookups != uint64(tc.wantLookup) {
				t.Fatalf("lookups %d, want %d", s.PDLookups, tc.wantLookup)
			}
		})
	}
}

// A store that cuts a scan's answer short (its bound) says so; the client
// asks the same region again from just after the last key.
func TestScanContinuesWithinARegionWhenCutShort(t *testing.T) {
	w := newWorld(threeRegions())
	w.maxScan = 2
	for _, k := range []string{"a", "c", "e", "g", "h", "j", "l", "n"} {
		w.data[k] = "v" + k
	}
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Scan, Start: []byte("a"), End: []byte("m"), Limit: 5})
	sent := h.pump(w)
	c := h.completed(1)[0]
	if c.Outcome != OK || keysOf(c.Pairs) != "a c e g h " {
		t.Fatalf("got %v %q", c.Outcome, keysOf(c.Pairs))
	}
	want := []string{"r1[a,g)#5", "r1[c\x00,g)#3", "r2[g,m)#2"}
	if got := scanRequests(sent); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("scans %q, want %q", got, want)
	}
}

func TestScanSubScanRetriesOnTimeout(t *testing.T) {
	w := newWorld(threeRegions())
	for _, k := range []string{"a", "h", "q"} {
		w.data[k] = "v"
	}
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Scan, Start: []byte("a"), End: []byte("z")})
	h.warm(w.regions[0], 1)
	h.c.Receive(w.serve(h.one())) // r1 answered
	h.c.Receive(w.serve(h.one())) // PD for "g"
	h.one()                       // r2 request lost
	h.run(3*time.Second, true)
	w.leader[2] = 2 // the retry goes to store 2, so let it lead
	h.pump(w)
	c := h.completed(1)[0]
	if c.Outcome != OK || keysOf(c.Pairs) != "a h q " || c.Attempts != 4 {
		t.Fatalf("bad completion %+v %q", c, keysOf(c.Pairs))
	}
}

func TestMalformedScanRejected(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	h.c.Submit(Op{Kind: Scan, Start: []byte("b"), End: []byte("d")})
	h.warm(region(1, "", "g", 1), 1)
	req := h.one()
	// A key outside [b, d) is malformed: retried.
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Scan{Scan: &pb.ScanResponse{
		Pairs: []*pb.KvPair{{Key: []byte("e")}}}}}))
	h.completed(0)
	if h.c.Stats().Malformed != 1 {
		t.Fatal("out-of-range pair accepted")
	}
}

func TestSeveralOpsInFlight(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	a := h.c.Submit(Op{Kind: Get, Key: []byte("b")})
	b := h.c.Submit(Op{Kind: Get, Key: []byte("q")})
	sent := h.take()
	if len(sent) != 2 {
		t.Fatalf("want 2 lookups, got %d", len(sent))
	}
	h.c.Receive(pdReply(sent[1], region(3, "p", "", 1), 2))
	h.c.Receive(pdReply(sent[0], region(1, "", "g", 1), 3))
	sent = h.take()
	wantKv(t, sent[0], 2, 3, 1)
	wantKv(t, sent[1], 3, 1, 1)
	h.c.Receive(kvReply(sent[0], &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Value: []byte("B")}}}))
	h.c.Receive(kvReply(sent[1], &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Value: []byte("A")}}}))
	cs := h.completed(2)
	if cs[0].ID != b || string(cs[0].Value) != "B" || cs[1].ID != a || string(cs[1].Value) != "A" {
		t.Fatalf("bad completions %+v", cs)
	}
}

func TestCacheInsertReplacesOverlaps(t *testing.T) {
	var c regionCache
	c.insert(region(1, "", "g", 1), nil, nil)
	c.insert(region(2, "g", "p", 1), nil, nil)
	c.insert(region(3, "p", "", 1), nil, nil)
	// A region spanning the boundary, newer than both: replaces both.
	if !c.insert(region(9, "e", "k", 2), nil, nil) {
		t.Fatal("not inserted")
	}
	var got []uint64
	for _, e := range c.entries {
		got = append(got, e.region.GetId())
	}
	if fmt.Sprint(got) != "[9 3]" {
		t.Fatalf("entries %v", got)
	}
	if c.find([]byte("a")) != nil || c.find([]byte("f")).region.GetId() != 9 || c.find([]byte("z")).region.GetId() != 3 {
		t.Fatal("bad lookups")
	}
	// Same region, newer conf_ver: replaced; the known leader carries over.
	c.find([]byte("q")).leader = region(3, "p", "", 1).PeerOnStore(2)
	r := region(3, "p", "", 1)
	r.Epoch.ConfVer = 2
	c.insert(r, nil, nil)
	if e := c.find([]byte("q")); e.region.GetEpoch().GetConfVer() != 2 || e.target() != 2 {
		t.Fatalf("bad entry %v", e)
	}
	// Older conf_ver: refused.
	if c.insert(region(3, "p", "", 1), nil, nil) {
		t.Fatal("older conf_ver accepted")
	}
}

// TestDeterminism runs the same workload against a world that answers,
// drops and refuses at random (from its own seeded stream) twice, and wants
// byte-identical sends and completions.
func TestDeterminism(t *testing.T) {
	run := func(seed uint64) (string, Stats) {
		h := newHarness(t, testConfig(), seed)
		w := newWorld(threeRegions())
		fate := rng.New(seed + 1)
		var trace bytes.Buffer
		ops := []Op{
			{Kind: Put, Key: []byte("b"), Value: []byte("1")},
			{Kind: Get, Key: []byte("h")},
			{Kind: Scan, Start: []byte("a"), Limit: 4},
			{Kind: Put, Key: []byte("q"), Value: []byte("2")},
			{Kind: Get, Key: []byte("b")},
			{Kind: Scan, Start: []byte("c"), End: []byte("r")},
		}
		for i := 0; i < 40; i++ {
			h.c.Submit(ops[i%len(ops)])
			for h.c.Pending() > 0 {
				for _, e := range h.take() {
					b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&trace, "%d %x\n", h.clock.t.UnixNano(), b)
					switch n := fate.Intn(10); {
					case n == 0: // lost
					case n == 1:
						w.leader[2] = uint64(1 + fate.Intn(3))
						h.c.Receive(w.serve(e))
					case n == 2 && e.GetKvRequest() != nil:
						h.c.Receive(regionErr(e, &pb.RegionError{StoreBusy: &pb.StoreBusy{}}))
					default:
						h.c.Receive(w.serve(e))
					}
				}
				h.run(5*time.Millisecond, false)
			}
			for _, c := range h.c.Completed() {
				fmt.Fprintf(&trace, "done %d %v %v %q %s\n", c.ID, c.Outcome, c.Err, c.Value, keysOf(c.Pairs))
			}
		}
		return trace.String(), h.c.Stats()
	}
	a, sa := run(7)
	b, sb := run(7)
	if a != b || sa != sb {
		t.Fatal("same seed, different sends")
	}
	if sa.Backoffs == 0 || sa.Timeouts == 0 || sa.NotLeader == 0 || sa.OK == 0 {
		t.Fatalf("workload too tame: %+v", sa)
	}
	if c, _ := run(8); c == a {
		t.Fatal("different seeds gave identical traces")
	}
}

// PD has not learned of a split yet, but the client has (from a store's
// EpochNotMatch for another key): PD's stale answer for a key in the new
// region must still lead somewhere — to the old region's store, whose
// EpochNotMatch names the new region — rather than loop on PD.
func TestStalePDAnswerStillReachesTheStore(t *testing.T) {
	h := newHarness(t, testConfig(), 1)
	old := region(2, "g", "p", 1)
	left, right := region(2, "g", "k", 2), region(4, "k", "p", 2)
	if !h.c.cache.insert(left, leaderOn(left, 2), nil) {
		t.Fatal("could not seed the cache")
	}
	id := h.c.Submit(Op{Kind: Get, Key: []byte("m")}) // in the new region, not cached
	pd := h.one()
	wantPD(t, pd, "m")
	h.c.Receive(pdReply(pd, old, 2)) // PD is behind: the pre-split region
	req := h.one()
	wantKv(t, req, 2, 2, 1) // sent with PD's view, to its leader
	h.c.Receive(regionErr(req, &pb.RegionError{EpochNotMatch: &pb.EpochNotMatch{CurrentRegions: []*pb.Region{left, right}}}))
	req = h.one()
	wantKv(t, req, 2, 4, 2) // now routed by the store's answer
	h.c.Receive(kvReply(req, &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}))
	if c := h.completed(1)[0]; c.ID != id || c.Outcome != OK {
		t.Fatalf("bad completion %+v", c)
	}
	// PD's stale view was not cached over the newer halves.
	if e := h.c.cache.find([]byte("h")); e == nil || e.region.GetEpoch().GetVersion() != 2 {
		t.Fatalf("cache for \"h\": %v", e)
	}
}
