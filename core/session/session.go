// Package session is the client-session table of one region: the state that
// makes writes exactly-once (the Raft dissertation, section 6.3).
//
// A client numbers the writes of its session 1, 2, 3, ... and sends each with
// (session id, sequence, lowest sequence it still waits for). Applying a
// write, a region's state machine asks the table first: a (session,
// sequence) it holds a result for is a repeat (a retry after a timeout, a
// network duplicate), answered with the stored result and applied again
// never; results below the client's lowest are dropped, since the client has
// them. The table is part of the region's replicated state: the same log
// gives every replica the same table, and it is persisted, snapshotted and
// copied to both halves of a split with the keys.
//
// # Time and expiry
//
// Sessions expire by the time the leader proposed each write, carried in the
// log (never by a replica's own clock), so every replica expires the same
// sessions at the same entry. The table's clock is the latest such time it
// has applied (it never goes back, even when leaders' clocks disagree). A
// session with no write for TTL is expired: its results are dropped and it is
// kept as a marker for another TTL, so a write on it gets a definite "session
// expired", never a silent second application. Expired sessions are
// collected every TTL/4 of table time.
//
// # Bounds
//
// At most MaxSessions live sessions per region: a new one beyond that
// expires the session idle longest (its writes then get "session expired").
// At most MaxResults stored results per session: a write beyond that is
// refused as busy until the client's lowest sequence moves on (the client
// sees StoreBusy and retries).
package session

import (
	"bytes"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// Limits bound a table. Zero fields take the defaults.
type Limits struct {
	TTL         time.Duration // default 10 minutes
	MaxSessions int           // live sessions per region; default 100,000
	MaxResults  int           // stored results per session; default 1,024
}

// Defaults of Limits.
const (
	DefaultTTL         = 10 * time.Minute
	DefaultMaxSessions = 100_000
	DefaultMaxResults  = 1024
)

func (l Limits) withDefaults() Limits {
	if l.TTL <= 0 {
		l.TTL = DefaultTTL
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = DefaultMaxSessions
	}
	if l.MaxResults <= 0 {
		l.MaxResults = DefaultMaxResults
	}
	return l
}

// Verdict is what the table says of a write.
type Verdict int

const (
	// Apply: a write the region has not applied; apply it, then Record.
	Apply Verdict = iota
	// Repeat: applied before; answer with the stored result.
	Repeat
	// Expired: the session expired here, or the write was answered and its
	// result dropped; refuse it (SessionExpired).
	Expired
	// Busy: the session holds MaxResults results; refuse for now.
	Busy
)

// Table is one region's sessions. It is not safe for concurrent use.
type Table struct {
	limits    Limits
	clock     uint64 // ms
	lastSweep uint64 // ms
	byID      map[string]*pb.SessionState
	live      int // sessions not expired
}

// New returns an empty table.
func New(l Limits) *Table {
	return &Table{limits: l.withDefaults(), byID: map[string]*pb.SessionState{}}
}

// FromProto rebuilds a table from its persisted or snapshotted form.
func FromProto(l Limits, pt *pb.SessionTable) *Table {
	t := New(l)
	t.clock, t.lastSweep = pt.GetClockMs(), pt.GetLastSweepMs()
	for _, s := range pt.GetSessions() {
		t.put(proto.Clone(s).(*pb.SessionState))
	}
	return t
}

// Proto returns the whole table, sessions sorted by id (a copy).
func (t *Table) Proto() *pb.SessionTable {
	out := &pb.SessionTable{ClockMs: t.clock, LastSweepMs: t.lastSweep}
	for _, id := range t.ids() {
		out.Sessions = append(out.Sessions, proto.Clone(t.byID[id]).(*pb.SessionState))
	}
	return out
}

// Clone returns an independent copy.
func (t *Table) Clone() *Table { return FromProto(t.limits, t.Proto()) }

// Len is the number of sessions held, expired markers included.
func (t *Table) Len() int { return len(t.byID) }

// Clock is the table's time: the latest proposal time applied, in ms.
func (t *Table) Clock() uint64 { return t.clock }

func (t *Table) ids() []string {
	ids := make([]string, 0, len(t.byID))
	for id := range t.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (t *Table) put(s *pb.SessionState) {
	id := string(s.GetId())
	if old, ok := t.byID[id]; ok && old.GetExpiredAtMs() == 0 {
		t.live--
	}
	t.byID[id] = s
	if s.GetExpiredAtMs() == 0 {
		t.live++
	}
}

func (t *Table) drop(id string) {
	if old, ok := t.byID[id]; ok {
		if old.GetExpiredAtMs() == 0 {
			t.live--
		}
		delete(t.byID, id)
	}
}

// Changes is what a step did to the table, for the durable log: the clock
// and sweep time after it, sessions to write whole, sessions dropped.
type Changes struct {
	Clock, Sweep uint64
	Upserts      []*pb.SessionState
	Dropped      [][]byte
}

func (c *Changes) upsert(s *pb.SessionState) {
	c.Upserts = append(c.Upserts, proto.Clone(s).(*pb.SessionState))
}

// Advance moves the table's clock to nowMs (never back) and, once a quarter
// of the lifetime has passed since the last time, expires idle sessions
// and drops expired markers older than the lifetime.
func (t *Table) Advance(nowMs uint64) Changes {
	if nowMs > t.clock {
		t.clock = nowMs
	}
	c := Changes{Clock: t.clock, Sweep: t.lastSweep}
	ttl := uint64(t.limits.TTL / time.Millisecond)
	if t.clock < t.lastSweep+ttl/4 {
		return c
	}
	t.lastSweep = t.clock
	c.Sweep = t.lastSweep
	for _, id := range t.ids() {
		s := t.byID[id]
		switch {
		case s.GetExpiredAtMs() != 0 && s.GetExpiredAtMs()+ttl <= t.clock:
			t.drop(id)
			c.Dropped = append(c.Dropped, []byte(id))
		case s.GetExpiredAtMs() == 0 && s.GetLastSeenMs()+ttl <= t.clock:
			t.expire(s)
			c.upsert(s)
		}
	}
	return c
}

func (t *Table) expire(s *pb.SessionState) {
	s.ExpiredAtMs = max(t.clock, 1)
	s.Results = nil
	t.live--
}

// Check says what to do with write w. For a repeat it returns the stored
// response (a copy).
func (t *Table) Check(w *pb.Session) (Verdict, *pb.KvResponse) {
	s, ok := t.byID[string(w.GetId())]
	if !ok {
		return Apply, nil
	}
	if s.GetExpiredAtMs() != 0 {
		return Expired, nil
	}
	for _, r := range s.GetResults() {
		if r.GetSequence() == w.GetSequence() {
			return Repeat, proto.Clone(r.GetResponse()).(*pb.KvResponse)
		}
	}
	if w.GetSequence() < s.GetLowest() {
		return Expired, nil // answered, and the client said so: a late duplicate
	}
	if len(s.GetResults()) >= t.limits.MaxResults && w.GetLowest() <= s.GetLowest() {
		return Busy, nil
	}
	return Apply, nil
}

// Record stores the response of write w, applied at the table's clock, and
// drops the results the client no longer waits for. A new session beyond
// MaxSessions expires the session idle longest.
func (t *Table) Record(w *pb.Session, resp *pb.KvResponse) Changes {
	c := Changes{Clock: t.clock, Sweep: t.lastSweep}
	id := string(w.GetId())
	s, ok := t.byID[id]
	if !ok {
		if t.live >= t.limits.MaxSessions {
			if victim := t.idlest(); victim != nil {
				t.expire(victim)
				c.upsert(victim)
			}
		}
		s = &pb.SessionState{Id: bytes.Clone(w.GetId())}
		t.put(s)
	}
	s.LastSeenMs = t.clock
	if w.GetLowest() > s.GetLowest() {
		s.Lowest = w.GetLowest()
	}
	kept := s.Results[:0]
	for _, r := range s.GetResults() {
		if r.GetSequence() >= s.GetLowest() {
			kept = append(kept, r)
		}
	}
	s.Results = kept
	if w.GetSequence() >= s.GetLowest() {
		stored := proto.Clone(resp).(*pb.KvResponse)
		stored.RequestId = 0
		s.Results = append(s.Results, &pb.SessionResult{Sequence: w.GetSequence(), Response: stored})
	}
	c.upsert(s)
	return c
}

// idlest returns the live session seen longest ago (ties: lowest id).
func (t *Table) idlest() *pb.SessionState {
	var best *pb.SessionState
	for _, id := range t.ids() {
		s := t.byID[id]
		if s.GetExpiredAtMs() == 0 && (best == nil || s.GetLastSeenMs() < best.GetLastSeenMs()) {
			best = s
		}
	}
	return best
}

// Replay applies persisted changes (at recovery).
func (t *Table) Replay(clock, sweep uint64, upserts []*pb.SessionState, dropped [][]byte) {
	t.clock, t.lastSweep = max(t.clock, clock), max(t.lastSweep, sweep)
	for _, s := range upserts {
		t.put(proto.Clone(s).(*pb.SessionState))
	}
	for _, id := range dropped {
		t.drop(string(id))
	}
}
