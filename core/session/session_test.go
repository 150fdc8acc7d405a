package session

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/multiraft/multiraft/core/pb"
)

func write(id string, seq, lowest uint64) *pb.Session {
	return &pb.Session{Id: []byte(id), Sequence: seq, Lowest: lowest}
}

func putResp(v uint64) *pb.KvResponse {
	return &pb.KvResponse{RequestId: 99, Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: v}}}
}

func TestRepeatIsAnsweredWithTheStoredResult(t *testing.T) {
	tb := New(Limits{})
	tb.Advance(1000)
	if v, _ := tb.Check(write("a", 1, 1)); v != Apply {
		t.Fatalf("first write: %v", v)
	}
	tb.Record(write("a", 1, 1), putResp(3))
	v, got := tb.Check(write("a", 1, 1))
	if v != Repeat || got.GetPut().GetVersion() != 3 || got.GetRequestId() != 0 {
		t.Fatalf("repeat: %v %v", v, got)
	}
	// The client moves on: results below its lowest go, a late duplicate is
	// refused.
	tb.Record(write("a", 2, 2), putResp(4))
	if v, _ := tb.Check(write("a", 1, 1)); v != Expired {
		t.Fatalf("answered and dropped: %v", v)
	}
}

func TestSessionsExpireByLogTime(t *testing.T) {
	tb := New(Limits{TTL: 100 * time.Millisecond})
	tb.Advance(1000)
	tb.Record(write("idle", 1, 1), putResp(1))
	tb.Advance(1050)
	tb.Record(write("busy", 1, 1), putResp(1))
	c := tb.Advance(1120) // past idle's lifetime, a sweep due
	if len(c.Upserts) != 1 || c.Upserts[0].GetExpiredAtMs() == 0 {
		t.Fatalf("sweep changes %+v", c)
	}
	if v, _ := tb.Check(write("idle", 1, 1)); v != Expired {
		t.Fatalf("expired session: %v", v)
	}
	if v, _ := tb.Check(write("busy", 1, 1)); v != Repeat {
		t.Fatalf("live session: %v", v)
	}
	// A leader with a slow clock does not move time back.
	tb.Advance(900)
	if tb.Clock() != 1120 {
		t.Fatalf("clock %d", tb.Clock())
	}
	// The marker goes after another lifetime; then the id is unknown.
	c = tb.Advance(1300)
	if len(c.Dropped) != 1 || string(c.Dropped[0]) != "idle" {
		t.Fatalf("second sweep %+v", c)
	}
}

func TestBounds(t *testing.T) {
	tb := New(Limits{MaxSessions: 2, MaxResults: 2})
	tb.Advance(10)
	tb.Record(write("a", 1, 1), putResp(1))
	tb.Advance(20)
	tb.Record(write("b", 1, 1), putResp(1))
	tb.Advance(30)
	tb.Record(write("c", 1, 1), putResp(1)) // evicts a, the idlest
	if v, _ := tb.Check(write("a", 1, 1)); v != Expired {
		t.Fatalf("evicted session: %v", v)
	}
	tb.Record(write("b", 2, 1), putResp(2))
	if v, _ := tb.Check(write("b", 3, 1)); v != Busy {
		t.Fatalf("third outstanding result: %v", v)
	}
	if v, _ := tb.Check(write("b", 3, 2)); v != Apply {
		t.Fatalf("once the client acknowledges 1: %v", v)
	}
}

// TestReplayGivesTheSameTable drives a table with random steps and checks
// that replaying the changes it reported, into an empty table (and through
// its protobuf form), gives the same table: what the storage engine relies
// on.
func TestReplayGivesTheSameTable(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		lim := Limits{TTL: 50 * time.Millisecond, MaxSessions: 3, MaxResults: 3}
		live, replayed := New(lim), New(lim)
		apply := func(c Changes) {
			replayed.Replay(c.Clock, c.Sweep, nil, c.Dropped)
			replayed.Replay(c.Clock, c.Sweep, c.Upserts, nil)
		}
		now := uint64(1)
		for i := rapid.IntRange(1, 60).Draw(rt, "steps"); i > 0; i-- {
			now += uint64(rapid.IntRange(0, 30).Draw(rt, "dt"))
			apply(live.Advance(now))
			id := fmt.Sprint(rapid.IntRange(0, 4).Draw(rt, "session"))
			seq := uint64(rapid.IntRange(1, 6).Draw(rt, "seq"))
			w := write(id, seq, uint64(rapid.IntRange(1, int(seq)).Draw(rt, "lowest")))
			if v, _ := live.Check(w); v == Apply {
				apply(live.Record(w, putResp(seq)))
			}
		}
		if !proto.Equal(live.Proto(), replayed.Proto()) {
			rt.Fatalf("replayed table differs:\n live %v\n replayed %v", live.Proto(), replayed.Proto())
		}
		if !proto.Equal(live.Proto(), FromProto(lim, live.Proto()).Proto()) {
			rt.Fatal("a table does not survive its protobuf form")
		}
	})
}
