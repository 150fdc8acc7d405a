package raftstore_test

import (
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
		r.Session = &pb.Session{Id: []byte(id), Sequence: seq, Lowest: lowest}
	}
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
