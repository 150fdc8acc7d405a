package raftstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/session"
)

// Exactly-once writes: a region applies each (session, sequence) once and
// answers repeats with the stored result.

// withSession makes a request a write of session id with sequence seq
// (the client waits for nothing lower).
func withSession(id string, seq uint64, op func(*pb.KvRequest)) func(*pb.KvRequest) {
	return inSession(id, seq, seq, op)
}

// inSession makes a request a write of session id with sequence seq, the
// client still waiting for lowest and above.
func inSession(id string, seq, lowest uint64, op func(*pb.KvRequest)) func(*pb.KvRequest) {
	return func(r *pb.KvRequest) {
		op(r)
		r.Session = &pb.Session{Id: sessionID(id), Sequence: seq, Lowest: lowest}
	}
}

// sessionID is the 16-byte session id a test names name (at most 16 bytes).
func sessionID(name string) []byte {
	if len(name) > pb.SessionIDBytes {
		panic("session name " + name + " is longer than a session id")
	}
	id := make([]byte, pb.SessionIDBytes)
	copy(id, name)
	return id
}

// A duplicate of a write delivered after every store restarted (the old
// per-store duplicate window forgot it then) is answered with the first
// result while the client still waits for it, refused once the client has
// moved past it, and never applied again.
func TestSessionDuplicateAfterRestartAppliesOnce(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	first := c.ok(1, withSession("s1", 1, put("k", "v1")))
	c.ok(1, inSession("s1", 2, 1, put("other", "x"))) // still waiting for 1
	c.restartAll()
	again := c.ok(1, inSession("s1", 1, 1, put("k", "v1")))
	if !proto.Equal(again.GetPut(), first.GetPut()) {
		t.Fatalf("repeat answered %v, first answer %v", again, first)
	}
	c.ok(1, inSession("s1", 3, 3, put("other", "y"))) // the client has 1 and 2
	leader := c.waitLeader(1)
	if e := c.regionErr(leader, c.header(leader, 1), inSession("s1", 1, 1, put("k", "v1"))); e.GetSessionExpired() == nil {
		t.Fatalf("a late duplicate of an answered write got %v, want SessionExpired", e)
	}
	c.mustGet(1, "k", "v1", 1) // version 1: applied once
	var repeats uint64
	for _, id := range c.ids {
		repeats += c.store(id).Stats().SessionRepeats
	}
	if repeats == 0 {
		t.Fatal("no store counted a repeat")
	}
}

// A client that restarts opens a new session and numbers from 1 again:
// its writes are new writes, not repeats of the old session's.
func TestNewSessionIsNotConfusedWithAnOldOne(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	c.ok(1, withSession("old", 1, put("k", "v1")))
	if r := c.ok(1, withSession("new", 1, put("k", "v2"))); r.GetPut().GetVersion() != 2 {
		t.Fatalf("the new session's first write answered %v: taken for the old session's", r)
	}
	c.mustGet(1, "k", "v2", 2)
}

// A session idle past its lifetime (by the proposal times in the log)
// expires: a late retry of one of its writes is refused with
// SessionExpired, never applied again.
func TestWriteOnExpiredSessionIsRefused(t *testing.T) {
	cfg := defaultConfig()
	cfg.SessionLimits = session.Limits{TTL: 10 * time.Second}
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	c.ok(1, withSession("idle", 1, put("k", "v1")))
	for i := 0; i < 200; i++ { // 20 s of fake time
		c.step()
	}
	c.ok(1, withSession("busy", 1, put("other", "x"))) // moves the region's clock on
	c.ok(1, withSession("busy", 2, put("other", "y")))
	leader := c.waitLeader(1)
	e := c.regionErr(leader, c.header(leader, 1), withSession("idle", 1, put("k", "v1")))
	if e.GetSessionExpired() == nil {
		t.Fatalf("a retry on the expired session got %v, want SessionExpired", e)
	}
	c.mustGet(1, "k", "v1", 1)
}

// A write applied before a split whose retry lands on the other half (the
// key moved to the new region): the new region has the session table too
// and answers with the stored result.
func TestRetryAfterSplitLandsOnTheOtherHalf(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	first := c.ok(1, withSession("s", 7, put("t", "v1")))
	c.ok(1, put("a", "x"))
	leader := c.waitLeader(1)
	if err := c.store(leader).RequestSplit(1, []byte("m")); err != nil {
		t.Fatal(err)
	}
	var right uint64
	c.waitFor(100, "the split", func() bool {
		right = c.splitSeen(1, "", "m", "")
		return right != 0
	})
	again := c.ok(right, withSession("s", 7, put("t", "v1")))
	if !proto.Equal(again.GetPut(), first.GetPut()) {
		t.Fatalf("retry on the new region answered %v, first answer %v", again, first)
	}
	c.mustGet(right, "t", "v1", 1)
}

// A write applied once whose answer was lost is retried by its client for
// up to OpTimeout (10 s by default), which nothing ties to the stores' TTL.
// Here the session is idle past its TTL (1 s), expired, and its marker
// dropped TTL later; a retry 3 s after the write finds no session, but it
// carries the time the write was first sent, which is before anything the
// region can vouch for: it is refused, never applied a second time.
func TestRetryAfterTheSessionMarkerIsDroppedIsNotAppliedTwice(t *testing.T) {
	cfg := defaultConfig()
	cfg.SessionLimits = session.Limits{TTL: time.Second}
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	first := c.ok(1, withSession("s", 1, put("k", "v1"))) // its answer is lost
	// Three seconds of other clients' writes move the region's clock on.
	for i := uint64(1); i <= 6; i++ {
		for j := 0; j < 5; j++ {
			c.step()
		}
		c.ok(1, withSession("busy", i, put("other", fmt.Sprint(i))))
	}
	leader := c.waitLeader(1)
	req := &pb.KvRequest{Header: c.header(leader, 1)}
	withSession("s", 1, put("k", "v1"))(req)
	again := c.call(leader, req)
	if e := again.GetRegionError(); e != nil {
		t.Logf("retry refused: %v", e)
	} else if again.GetPut().GetVersion() != first.GetPut().GetVersion() {
		t.Errorf("retry of an applied write answered version %d, first answer %d: applied twice",
			again.GetPut().GetVersion(), first.GetPut().GetVersion())
	}
	c.mustGet(1, "k", "v1", 1)
}

// A write its session's marker refused (the session was evicted at the
// bound) stays refused in the half of a split that holds its key, after
// every store restarted, and after the marker is dropped: the refusal is
// part of the replicated session table. The refusal says whether the write
// ever applied (never_applied), which is what lets a client send it again
// in a new session.
func TestRefusedWriteStaysRefusedAcrossSplitAndRestart(t *testing.T) {
	cfg := defaultConfig()
	cfg.SessionLimits = session.Limits{MaxSessions: 1, MaxMarkers: 1}
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	c.ok(1, inSession("s", 1, 1, put("t", "v1")))
	c.ok(1, withSession("o", 1, put("a", "x"))) // s evicted: a marker
	leader := c.waitLeader(1)
	refuse := func(store, rid uint64, op func(*pb.KvRequest)) *pb.SessionExpired {
		t.Helper()
		e := c.regionErr(store, c.header(store, rid), op).GetSessionExpired()
		if e == nil {
			t.Fatalf("region %d: want SessionExpired", rid)
		}
		return e
	}
	if e := refuse(leader, 1, inSession("s", 1, 1, put("t", "v1"))); e.GetNeverApplied() {
		t.Fatalf("s/1 applied, but its refusal says it never did: %v", e)
	}
	for i := 0; i < 5; i++ { // s/2 starts later than anything s applied
		c.step()
	}
	if e := refuse(leader, 1, inSession("s", 2, 1, put("t", "v2"))); !e.GetNeverApplied() {
		t.Fatalf("s/2 never applied, but its refusal does not say so: %v", e)
	}
	if err := c.store(leader).RequestSplit(1, []byte("m")); err != nil {
		t.Fatal(err)
	}
	var right uint64
	c.waitFor(100, "the split", func() bool {
		right = c.splitSeen(1, "", "m", "")
		return right != 0
	})
	c.restartAll()
	// A new session in the right half evicts o; at the marker bound, s's
	// marker is dropped.
	c.ok(right, withSession("p", 1, put("u", "y")))
	leader = c.waitLeader(right)
	refuse(leader, right, inSession("s", 2, 1, put("t", "v2")))
	c.mustGet(right, "t", "v1", 1)
}

// Session fields are checked at the store boundary: a session id of 16
// bytes, a sequence from 1, lowest <= sequence, a start time. Each bad
// write gets InvalidRequest naming the rule and is never proposed.
func TestSessionFieldsAreValidated(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	good := func() *pb.Session {
		return &pb.Session{Id: sessionID("v"), Sequence: 2, Lowest: 2, StartedMs: uint64(c.clock.now.UnixMilli())}
	}
	before := c.store(leader).Stats().Proposals
	for _, tc := range []struct {
		name   string
		mutate func(*pb.Session)
		want   string
	}{
		{"short id", func(s *pb.Session) { s.Id = []byte("v") }, "session id of 1 bytes, want 16"},
		{"long id", func(s *pb.Session) { s.Id = make([]byte, 1<<10) }, "session id of 1024 bytes, want 16"},
		{"sequence 0", func(s *pb.Session) { s.Sequence, s.Lowest = 0, 0 }, "session sequence 0"},
		{"lowest above sequence", func(s *pb.Session) { s.Lowest = 3 }, "lowest 3 is above the write's sequence 2"},
		{"no start", func(s *pb.Session) { s.StartedMs = 0 }, "without started_ms"},
	} {
		req := &pb.KvRequest{Header: c.header(leader, 1), Session: good()}
		put("k", "bad")(req)
		tc.mutate(req.Session)
		resp := c.await(c.post(leader, req)) // as it is: no start time stamped
		if e := resp.GetRegionError(); e.GetInvalidRequest() == nil || !strings.Contains(e.GetMessage(), tc.want) {
			t.Errorf("%s: got %v, want InvalidRequest naming %q", tc.name, resp, tc.want)
		}
	}
	if n := c.store(leader).Stats().Proposals - before; n != 0 {
		t.Errorf("%d invalid session writes were proposed", n)
	}
	c.ok(1, func(r *pb.KvRequest) { put("k", "good")(r); r.Session = good() })
	c.mustGet(1, "k", "good", 1)
}

// A write started more than the session lifetime ahead of the region's
// clock (the leader's at proposal) is refused at apply with InvalidRequest
// on every replica, and not applied; the refusal says it depends on the
// clock.
func TestWriteStartedFarAheadIsRefused(t *testing.T) {
	cfg := defaultConfig()
	cfg.SessionLimits = session.Limits{TTL: 10 * time.Second}
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	ahead := func(d time.Duration) func(*pb.KvRequest) {
		return func(r *pb.KvRequest) {
			put("k", "v")(r)
			r.Session = &pb.Session{Id: sessionID("ahead"), Sequence: 1, Lowest: 1,
				StartedMs: uint64(c.clock.now.Add(d).UnixMilli())}
		}
	}
	e := c.regionErr(leader, c.header(leader, 1), ahead(time.Minute))
	if e.GetInvalidRequest() == nil || !strings.Contains(e.GetMessage(), "ahead of region 1's clock") {
		t.Fatalf("a write started a minute ahead (TTL 10 s) got %v, want InvalidRequest", e)
	}
	if !e.GetInvalidRequest().GetClockDependent() {
		t.Fatalf("the refusal %v does not say it depends on the clock (a later copy may be accepted)", e)
	}
	if r := c.ok(1, get("k")); r.GetGet().GetFound() {
		t.Fatal("the refused write was applied")
	}
	c.ok(1, ahead(5*time.Second)) // within the lifetime: fine
	c.mustGet(1, "k", "v", 1)
}

// At the marker bound a marker is dropped early and the region's horizon
// moves past its session's writes: a retry of one, however recent, is
// refused, also after every store restarted (the horizon is replicated
// state, persisted with the table's changes).
func TestEarlyDroppedMarkerRefusesRetriesAfterRestart(t *testing.T) {
	cfg := defaultConfig()
	cfg.SessionLimits = session.Limits{MaxSessions: 1, MaxMarkers: 1}
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	c.ok(1, withSession("s", 1, put("k", "v1"))) // its answer is lost
	c.step()
	c.ok(1, withSession("a", 1, put("a", "x"))) // s evicted: a marker
	c.step()
	c.ok(1, withSession("b", 1, put("b", "x"))) // a evicted, s's marker dropped
	// Later writes carry the drop's lazy record to disk with theirs: the
	// restarted stores take the table from the log of changes, not by
	// applying the entries again.
	for i := 0; i < 3; i++ {
		c.ok(1, put("later", fmt.Sprint(i)))
		c.step()
	}
	c.restartAll()
	leader := c.waitLeader(1)
	e := c.regionErr(leader, c.header(leader, 1), withSession("s", 1, put("k", "v1")))
	if e.GetSessionExpired() == nil {
		t.Fatalf("a retry of a write of a session dropped at the bound got %v, want SessionExpired", e)
	}
	c.mustGet(1, "k", "v1", 1)
	c.ok(1, withSession("c", 1, put("c", "x"))) // a new session is welcome
}
