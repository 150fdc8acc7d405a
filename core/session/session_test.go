package session

import (
	"bytes"
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

// writeAt is write first sent by its client at startedMs.
func writeAt(id string, seq, lowest, startedMs uint64) *pb.Session {
	w := write(id, seq, lowest)
	w.StartedMs = startedMs
	return w
}

func putResp(v uint64) *pb.KvResponse {
	return &pb.KvResponse{RequestId: 99, Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: v}}}
}

func TestRepeatIsAnsweredWithTheStoredResult(t *testing.T) {
	tb := New(Limits{})
	tb.Advance(1000)
	if v, _, _ := tb.Admit(write("a", 1, 1)); v != Apply {
		t.Fatalf("first write: %v", v)
	}
	tb.Record(write("a", 1, 1), putResp(3))
	v, got, _ := tb.Admit(write("a", 1, 1))
	if v != Repeat || got.GetPut().GetVersion() != 3 || got.GetRequestId() != 0 {
		t.Fatalf("repeat: %v %v", v, got)
	}
	// The client moves on: results below its lowest go, a late duplicate is
	// refused.
	tb.Record(write("a", 2, 2), putResp(4))
	if v, _, _ := tb.Admit(write("a", 1, 1)); v != Expired {
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
	if v, _, _ := tb.Admit(write("idle", 1, 1)); v != Expired {
		t.Fatalf("expired session: %v", v)
	}
	if v, _, _ := tb.Admit(write("busy", 1, 1)); v != Repeat {
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
	if v, _, _ := tb.Admit(write("a", 1, 1)); v != Expired {
		t.Fatalf("evicted session: %v", v)
	}
	tb.Record(write("b", 2, 1), putResp(2))
	if v, _, _ := tb.Admit(write("b", 3, 1)); v != Busy {
		t.Fatalf("third outstanding result: %v", v)
	}
	if v, _, _ := tb.Admit(write("b", 3, 2)); v != Apply {
		t.Fatalf("once the client acknowledges 1: %v", v)
	}
}

// A write of a session the table does not know that started more than TTL
// before the table's clock is refused: its session may have been dropped
// after applying it.
func TestUnknownSessionOlderThanTTLIsRefused(t *testing.T) {
	tb := New(Limits{TTL: 100 * time.Millisecond})
	tb.Advance(1000)
	if v, _, _ := tb.Admit(writeAt("a", 1, 1, 899)); v != Expired {
		t.Fatalf("started 101 ms before the clock, TTL 100 ms: %v", v)
	}
	if v, _, _ := tb.Admit(writeAt("a", 1, 1, 900)); v != Apply {
		t.Fatalf("started TTL before the clock: %v", v)
	}
}

// The reviewer's case at the table: a write applied once, its session
// expired and its marker dropped, then a retry of the write. The retry is
// refused, also once the session exists again (a later write of the same
// client created it anew), and whatever the clock says: the dropped
// session's writes all started before the horizon.
func TestRetryAfterTheMarkerIsDroppedIsRefused(t *testing.T) {
	tb := New(Limits{TTL: 100 * time.Millisecond})
	tb.Advance(1000)
	first := writeAt("s", 1, 1, 990)
	tb.Record(first, putResp(1))
	tb.Advance(1100) // expired
	tb.Advance(1175)
	if tb.Len() != 1 || tb.Markers() != 1 {
		t.Fatalf("want s as a marker: %v", tb.Proto())
	}
	c := tb.Advance(1225) // marker dropped
	if len(c.Dropped) != 1 || tb.Len() != 0 || tb.Horizon() != 991 || c.Horizon != 991 {
		t.Fatalf("want s dropped, horizon 991: %+v, horizon %d", c, tb.Horizon())
	}
	if v, _, _ := tb.Admit(first); v != Expired {
		t.Fatalf("retry after the marker was dropped: %v", v)
	}
	// The same session, a new write sent now: the session exists again,
	// and knows writes started from 1125 (clock - TTL) on only.
	tb.Record(writeAt("s", 2, 1, 1225), putResp(2))
	if v, _, _ := tb.Admit(first); v != Expired {
		t.Fatalf("retry once the session exists again: %v", v)
	}
	if v, _, _ := tb.Admit(writeAt("s", 3, 1, 1130)); v != Apply {
		t.Fatalf("a write started after the session was known: %v", v)
	}
	// Past the TTL rule, only the horizon refuses: with a TTL this long the
	// clock would let the retry in.
	long := FromProto(Limits{TTL: time.Hour}, tb.Proto())
	long.byID = map[string]*pb.SessionState{}
	long.live.Clear(false)
	long.markers.Clear(false)
	if v, _, _ := long.Admit(first); v != Expired {
		t.Fatalf("retry refused by the horizon only: %v", v)
	}
}

// Refusals are final. A marker refuses a write it never applied (its
// session was evicted first); the marker is dropped early (at the bound)
// and a copy of the refused write comes back: it is refused too, since the
// refusal raised the marker's max_started_ms and the drop the horizon past
// it; also once the session exists again. (Found by review: the horizon
// covered the writes a session applied, not those it refused, so the copy
// applied while its client had sent the write again in a new session.)
func TestRefusedWriteStaysRefusedAfterItsMarkerIsDropped(t *testing.T) {
	tb := New(Limits{MaxSessions: 1, MaxMarkers: 1})
	tb.Advance(10)
	tb.Record(writeAt("s", 1, 1, 9), putResp(1))
	tb.Advance(20)
	tb.Record(writeAt("o", 1, 1, 19), putResp(1)) // s evicted: a marker
	refused := writeAt("s", 2, 2, 20)
	v, _, c := tb.Admit(refused)
	if v != NeverApplied {
		t.Fatalf("a write the marker never applied: %v", v)
	}
	if len(c.Upserts) != 1 || c.Upserts[0].GetMaxStartedMs() != 20 {
		t.Fatalf("the refusal is not recorded: %+v", c)
	}
	tb.Advance(30)
	c = tb.Record(writeAt("p", 1, 1, 29), putResp(1)) // o evicted, s dropped
	if len(c.Dropped) != 1 || string(c.Dropped[0]) != "s" || tb.Horizon() != 21 {
		t.Fatalf("want s dropped, horizon 21: %+v, horizon %d", c, tb.Horizon())
	}
	if v, _, _ := tb.Admit(refused); v == Apply {
		t.Fatal("a copy of the refused write applies once the marker is dropped")
	}
	tb.Record(writeAt("s", 3, 3, 30), putResp(3)) // s again
	if v, _, _ := tb.Admit(refused); v == Apply {
		t.Fatal("a copy of the refused write applies once the session exists again")
	}
}

// A marker says NeverApplied only of a write of its session it never
// applied: at or above the session's lowest, not among the results it held
// when it expired, started since the session was known.
func TestMarkerSaysWhichWritesNeverApplied(t *testing.T) {
	tb := New(Limits{TTL: 100 * time.Millisecond, MaxSessions: 1})
	tb.Advance(1000)
	tb.Record(writeAt("s", 1, 1, 1000), putResp(1))
	tb.Record(writeAt("s", 3, 2, 1000), putResp(3)) // 1 acknowledged; 2 never arrived
	tb.Advance(1010)
	tb.Record(writeAt("o", 1, 1, 1010), putResp(1)) // s evicted
	for _, c := range []struct {
		w    *pb.Session
		want Verdict
	}{
		{writeAt("s", 1, 1, 1000), Expired},      // applied, result dropped
		{writeAt("s", 3, 2, 1000), Expired},      // applied, result held at expiry
		{writeAt("s", 2, 2, 1000), NeverApplied}, // never applied
		{writeAt("s", 4, 2, 1005), NeverApplied}, // never applied
	} {
		if v, _, _ := tb.Admit(c.w); v != c.want {
			t.Errorf("write %d of s: %v, want %v", c.w.GetSequence(), v, c.want)
		}
	}
	// Dropped, and known again from 1300 (clock - TTL) on: a write started
	// before may have applied in the session's earlier life.
	tb.Advance(1400)
	if tb.byID["s"] != nil {
		t.Fatalf("want s dropped: %v", tb.Proto())
	}
	tb.Record(writeAt("s", 5, 5, 1400), putResp(5))
	tb.Advance(1500) // expired
	if s := tb.byID["s"]; s.GetExpiredAtMs() == 0 || s.GetKnownFromMs() != 1300 {
		t.Fatalf("want s a marker known from 1300: %v", s)
	}
	if v, _, _ := tb.Admit(writeAt("s", 6, 5, 1299)); v != Expired {
		t.Errorf("a write started before the session was known again: %v", v)
	}
	if v, _, _ := tb.Admit(writeAt("s", 6, 5, 1300)); v != NeverApplied {
		t.Errorf("a write started since the session was known again: %v", v)
	}
	// A marker persisted by a version that did not keep the sequences of
	// its results vouches for nothing.
	tb.byID["s"].AppliedKept = false
	if v, _, _ := tb.Admit(writeAt("s", 6, 5, 1300)); v != Expired {
		t.Errorf("a marker without the sequences of its results: %v", v)
	}
}

// A write started more than TTL ahead of the table's clock is refused.
func TestWriteFromTheFutureIsRefused(t *testing.T) {
	tb := New(Limits{TTL: 100 * time.Millisecond})
	tb.Advance(1000)
	if v, _, _ := tb.Admit(writeAt("a", 1, 1, 1101)); v != ClockAhead {
		t.Fatalf("started 101 ms ahead, TTL 100 ms: %v", v)
	}
	if v, _, _ := tb.Admit(writeAt("a", 1, 1, 1100)); v != Apply {
		t.Fatalf("started TTL ahead: %v", v)
	}
	// Unlike an expiry, this refusal is not final: a copy applied once the
	// clock has caught up is accepted (so the client cannot call the write
	// failed).
	tb.Advance(1001)
	if v, _, _ := tb.Admit(writeAt("a", 1, 1, 1101)); v != Apply {
		t.Fatalf("a copy of the refused write, one ms later: %v", v)
	}
}

// At the marker bound the marker expired longest ago is dropped at once,
// and the horizon moves past its writes: a retry of one is refused.
func TestEarlyMarkerDropRaisesTheHorizon(t *testing.T) {
	tb := New(Limits{MaxSessions: 1, MaxMarkers: 1})
	tb.Advance(10)
	tb.Record(writeAt("a", 1, 1, 8), putResp(1))
	tb.Advance(20)
	tb.Record(writeAt("b", 1, 1, 19), putResp(1)) // a evicted: a marker
	tb.Advance(30)
	c := tb.Record(writeAt("c", 1, 1, 29), putResp(1)) // b evicted, a dropped
	if len(c.Dropped) != 1 || string(c.Dropped[0]) != "a" || tb.Horizon() != 9 {
		t.Fatalf("want a dropped, horizon 9: %+v, horizon %d", c, tb.Horizon())
	}
	if tb.Live() != 1 || tb.Markers() != 1 {
		t.Fatalf("live %d markers %d, want 1 and 1", tb.Live(), tb.Markers())
	}
	if v, _, _ := tb.Admit(writeAt("a", 1, 1, 8)); v != Expired {
		t.Fatalf("retry of a's write after its marker went early: %v", v)
	}
	if v, _, _ := tb.Admit(writeAt("a", 2, 1, 9)); v != Apply {
		t.Fatalf("a write started at the horizon: %v", v)
	}
}

// "At most MaxResults stored results per session": a client whose lowest
// moves on by one while it keeps more than MaxResults writes outstanding
// (a pipelining client, or a hostile one) is refused Busy all the same.
func TestResultsPerSessionStayWithinMaxResults(t *testing.T) {
	tb := New(Limits{MaxResults: 4})
	tb.Advance(1)
	for seq := uint64(1); seq <= 200; seq++ {
		w := write("s", seq, max(1, seq/2)) // lowest trails at half
		if v, _, _ := tb.Admit(w); v != Apply {
			continue
		}
		tb.Record(w, putResp(seq))
	}
	n := len(tb.byID["s"].GetResults())
	if n > 4 {
		t.Fatalf("session holds %d results, MaxResults is 4", n)
	}
}

// A flood of new sessions (one write each) keeps both the live sessions
// and the markers within their bounds: the table, copied into every
// snapshot, both halves of every split and every checkpoint, stays bounded.
func TestTableSizeIsBoundedUnderASessionFlood(t *testing.T) {
	tb := New(Limits{MaxSessions: 100})
	tb.Advance(1)
	for i := 0; i < 1000; i++ {
		w := write(fmt.Sprintf("flood-%06d", i), 1, 1)
		tb.Record(w, putResp(1))
	}
	if tb.Len() > 2*100 {
		t.Fatalf("table holds %d sessions (live limit 100)", tb.Len())
	}
}

// At the live limit, with the markers at theirs too, a new session costs
// O(log n): finding the idlest and the oldest marker are index lookups.
func TestNewSessionAtTheLimitIsCheap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 200,000-session table")
	}
	tb := fullTable(DefaultMaxSessions)
	const n = 1000
	start := time.Now()
	for i := 0; i < n; i++ {
		tb.Record(write(fmt.Sprintf("new-%08d", i), 1, 1), putResp(1))
	}
	per := time.Since(start) / n
	if per > time.Millisecond {
		t.Fatalf("a new session at the limit costs %v to apply (table of %d)", per, tb.Len())
	}
	t.Logf("a new session at the limit (table of %d: %d live, %d markers) costs %v", tb.Len(), tb.Live(), tb.Markers(), per)
}

// fullTable is a table of default limits but n live sessions, then
// n markers and n live sessions: both bounds reached.
func fullTable(n int) *Table {
	tb := New(Limits{MaxSessions: n})
	for i := 0; i < 2*n; i++ {
		tb.Advance(uint64(i + 1))
		tb.Record(writeAt(fmt.Sprintf("s-%08d", i), 1, 1, uint64(i+1)), putResp(1))
	}
	return tb
}

// BenchmarkNewSessionAtTheLimit: one write opening a session on a region
// holding MaxSessions live sessions and MaxMarkers markers (the default
// limits), so it evicts the idlest and drops the oldest marker.
func BenchmarkNewSessionAtTheLimit(b *testing.B) {
	tb := fullTable(DefaultMaxSessions)
	now := tb.Clock()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now++
		tb.Advance(now)
		tb.Record(writeAt(fmt.Sprintf("new-%08d", i), 1, 1, now), putResp(1))
	}
}

// randomWrites drives a table with random writes, each first sent at a
// random time around the table's clock (the clocks of the client that
// sends it, and of the leader that proposes it, may be anything) and
// retried at random later with the same start, with random sequences and
// lowests. It passes every change the table reports to changes, calls
// decided with each write and the table's verdict (after recording an
// applied one), and step after every write.
func randomWrites(rt *rapid.T, tb *Table, changes func(Changes), decided func(w *pb.Session, v Verdict), step func()) {
	started := map[string]uint64{} // "id/seq" -> when first sent
	type write struct {
		id  string
		seq uint64
	}
	var sent []write // in the order first sent
	now := uint64(1)
	for i := rapid.IntRange(1, 200).Draw(rt, "steps"); i > 0; i-- {
		now += uint64(rapid.IntRange(0, 40).Draw(rt, "dt"))
		changes(tb.Advance(now))
		id := fmt.Sprint(rapid.IntRange(0, 5).Draw(rt, "session"))
		seq := uint64(rapid.IntRange(1, 8).Draw(rt, "seq"))
		if len(sent) > 0 && rapid.Bool().Draw(rt, "retry") {
			// A late copy of a write sent before: what exactly-once is about.
			w := sent[rapid.IntRange(0, len(sent)-1).Draw(rt, "which")]
			id, seq = w.id, w.seq
		}
		k := fmt.Sprint(id, "/", seq)
		if _, ok := started[k]; !ok {
			started[k] = max(1, now+uint64(rapid.IntRange(0, 200).Draw(rt, "skew"))) - min(now, 120)
			sent = append(sent, write{id, seq})
		}
		w := writeAt(id, seq, uint64(rapid.IntRange(1, int(seq)).Draw(rt, "lowest")), started[k])
		v, _, c := tb.Admit(w)
		changes(c)
		if v == Apply {
			changes(tb.Record(w, putResp(seq)))
		}
		decided(w, v)
		step()
	}
}

// Whatever the clocks and the client do, a table applies a write at most
// once, never applies a write it refused as expired (refusals are final),
// says NeverApplied only of a write it never applied, and stays within its
// bounds.
func TestExactlyOnceAndBoundsWhateverTheClocks(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		lim := Limits{TTL: 50 * time.Millisecond, MaxSessions: 3, MaxMarkers: 2, MaxResults: 3}
		tb := New(lim)
		applied, refused := map[string]bool{}, map[string]bool{}
		randomWrites(rt, tb, func(Changes) {}, func(w *pb.Session, v Verdict) {
			k := fmt.Sprintf("%s/%d", w.GetId(), w.GetSequence())
			switch v {
			case Apply:
				if applied[k] {
					rt.Fatalf("write %s (started %d) applied twice; table %v", k, w.GetStartedMs(), tb.Proto())
				}
				if refused[k] {
					rt.Fatalf("write %s (started %d) applied after it was refused as expired; table %v", k, w.GetStartedMs(), tb.Proto())
				}
				applied[k] = true
			case NeverApplied:
				if applied[k] {
					rt.Fatalf("write %s (started %d) applied, but the table says it never was; table %v", k, w.GetStartedMs(), tb.Proto())
				}
				refused[k] = true
			case Expired:
				refused[k] = true
			}
		}, func() {
			if tb.Live() > lim.MaxSessions || tb.Markers() > lim.MaxMarkers || tb.Len() != tb.Live()+tb.Markers() {
				rt.Fatalf("%d sessions: %d live, %d markers", tb.Len(), tb.Live(), tb.Markers())
			}
			for _, s := range tb.byID {
				if len(s.GetResults()) > lim.MaxResults || len(s.GetAppliedAtExpiry()) > lim.MaxResults {
					rt.Fatalf("session %s holds %d results, %d sequences", s.GetId(), len(s.GetResults()), len(s.GetAppliedAtExpiry()))
				}
			}
		})
	})
}

// TestReplayGivesTheSameTable drives a table with random steps and checks
// that replaying the changes it reported, into an empty table (and through
// its protobuf form), gives the same table: what the storage engine relies
// on.
func TestReplayGivesTheSameTable(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		lim := Limits{TTL: 50 * time.Millisecond, MaxSessions: 3, MaxMarkers: 2, MaxResults: 3}
		live, replayed := New(lim), New(lim)
		randomWrites(rt, live, replayed.Replay, func(*pb.Session, Verdict) {}, func() {})
		if !proto.Equal(live.Proto(), replayed.Proto()) {
			rt.Fatalf("replayed table differs:\n live %v\n replayed %v", live.Proto(), replayed.Proto())
		}
		if !proto.Equal(live.Proto(), FromProto(lim, live.Proto()).Proto()) {
			rt.Fatal("a table does not survive its protobuf form")
		}
	})
}

// The upserts a table hands out are its own sessions, not copies: until
// Release, every change it reported must still read as it did when
// reported (the storage engine encodes them only at its next write), and
// Release, at any point, must not change what the table decides.
func TestUpsertsStayAsReportedUntilRelease(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		lim := Limits{TTL: 50 * time.Millisecond, MaxSessions: 3, MaxMarkers: 2, MaxResults: 3}
		tb, copied := New(lim), New(lim)
		type reported struct {
			s   *pb.SessionState
			enc []byte
		}
		var held []reported
		check := func() {
			for _, r := range held {
				if enc, _ := r.s.MarshalVT(); !bytes.Equal(enc, r.enc) {
					rt.Fatalf("session %s changed before Release: %v", r.s.GetId(), r.s)
				}
			}
		}
		randomWrites(rt, tb, func(c Changes) {
			check()
			for _, s := range c.Upserts {
				enc, _ := s.MarshalVT()
				held = append(held, reported{s, enc})
			}
			copied.Replay(c)
		}, func(*pb.Session, Verdict) {}, func() {
			check()
			if rapid.Bool().Draw(rt, "release") {
				tb.Release()
				held = nil
			}
		})
		if !proto.Equal(tb.Proto(), copied.Proto()) {
			rt.Fatalf("replayed table differs:\n live %v\n replayed %v", tb.Proto(), copied.Proto())
		}
	})
}
