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
// # Sessions the table does not know
//
// A marker does not stay forever, so an unknown session is not necessarily
// a new one: it may be a session whose marker was dropped, and the write a
// late retry of one applied before. Every write therefore carries
// started_ms, when its client first sent it (the same in every attempt).
// The table refuses (Expired) a write of a session it does not know that
// started before max(clock - TTL, horizon):
//
//   - clock - TTL: a write first sent at t0 is applied at a table clock of
//     at least t0 (the clock is the leader's at proposal, after the client
//     sent it; client clocks are assumed to be off by well under TTL). Its
//     session is then seen at >= t0, so it is expired (idle, or evicted at
//     the bound) at >= t0 and its marker dropped at least TTL later, at a
//     clock >= t0 + TTL: a retry arriving after that started at t0 <
//     clock - TTL (the marker is kept TTL, evicted ones too, for this).
//   - horizon: every session dropped from the table (its marker's TTL
//     over, or dropped early at the marker bound) raises the horizon past
//     the latest started_ms of the writes it applied or refused
//     (max_started_ms). So a retry of any write applied or refused in a
//     dropped session started before the horizon, whatever the clocks: the
//     horizon makes the rule exact, the TTL rule is what refuses most such
//     writes in practice (with clocks in step, the horizon of a marker
//     dropped on time is at most clock - TTL + 1).
//
// A session created again after it was dropped keeps that threshold as its
// known_from_ms: a write of it started before, that it holds no result for,
// is refused as if the session were still unknown (it may be a retry of a
// write applied before the drop). A write started more than TTL ahead of
// the table's clock is refused (ClockAhead): its start would push the
// horizon past honest clients' writes when its session is dropped, and a
// client clock that far off breaks the assumption above.
//
// Clocks decide availability only (an honest client whose clock is more
// than TTL behind, or an op retried for longer than TTL on a session the
// region does not know, is refused); exactly-once holds whatever they say.
//
// # Refusals are final
//
// Once the table refuses a write as expired (Expired or NeverApplied), it
// refuses every later copy of the same (session, sequence, started_ms):
//
//   - refused as unknown (started before max(clock - TTL, horizon)): the
//     clock and the horizon never go back;
//   - refused by a session it holds (a marker; a live session whose
//     lowest is past the sequence, or that it knows only since after the
//     write started): a marker never becomes live again and lowest and
//     known_from_ms never go down, and the refusal raises the session's
//     max_started_ms to the write's start, so once the session is dropped
//     the horizon is past it; a session of that id created again later
//     has known_from_ms past it too.
//
// The table is copied whole into snapshots and both halves of a split, and
// every change a refusal makes is logged with the entry's other changes,
// so this holds in every replica, after restarts, and in the region that
// holds the write's key after any split. A copy refused once is refused
// forever, which is what lets the client rely on a refusal at all.
//
// What a refusal says about earlier copies: NeverApplied only when the
// session is a marker, the write's sequence is at or above its lowest, the
// write started at or after known_from_ms and its sequence is not among
// the results the session held when it expired (applied_at_expiry; a
// marker persisted before those were kept, without applied_kept, vouches
// for nothing). Lowest never goes down, so the sequence was at or above it all the
// session's life: had a copy applied, its result would have been stored
// (a write that would store one result too many is refused Busy, never
// applied) and held until expiry. Started at or after known_from_ms, it
// was not applied in an earlier life of the session either (that life's
// drop raised the horizon past its start, and known_from_ms is at least
// the horizon). So no copy ever applied: the client may send the write
// again in a new session. Any other refusal is Expired: a copy may have
// applied (an evicted session, a dropped marker, a result dropped when the
// client moved lowest on) and the client must not send it again.
//
// # Bounds
//
// At most MaxSessions live sessions per region: a new one beyond that
// expires the session idle longest (its writes then get "session expired").
// At most MaxMarkers expired sessions kept as markers: one beyond that
// drops the marker expired longest ago at once, raising the horizon past its
// writes (see above: exactly-once holds; a write of a session the region
// does not know that started before the horizon is refused, so under a
// flood of sessions an op retried longer than it took the flood to turn
// over MaxSessions+MaxMarkers sessions is refused). At most MaxResults
// stored results per session, whatever lowest the client sends: a write
// that would store one more is refused as busy until the client's lowest
// sequence moves on (the client sees StoreBusy and retries); a marker
// keeps as many sequences (applied_at_expiry, 8 bytes each). Finding the
// session idle longest, the marker expired longest ago and the sessions a
// sweep expires costs O(log n) each (ordered indexes).
package session

import (
	"bytes"
	"slices"
	"time"

	"github.com/google/btree"

	"github.com/multiraft/multiraft/core/pb"
)

// Limits bound a table. Zero fields take the defaults.
type Limits struct {
	TTL         time.Duration // default 10 minutes
	MaxSessions int           // live sessions per region; default 100,000
	MaxMarkers  int           // expired sessions kept as markers per region; default MaxSessions
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
	if l.MaxMarkers <= 0 {
		l.MaxMarkers = l.MaxSessions
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
	// result dropped, or the table cannot vouch that a write of a session
	// it does not know (or knows only since after the write started) was
	// never applied; refuse it (SessionExpired). No copy of the write will
	// ever be applied here; an earlier one may have been.
	Expired
	// NeverApplied: refuse it as Expired, and say that no copy of it was
	// ever applied here either: its session is a marker that knows every
	// write of it the client may still wait for, and this is not one of
	// them (SessionExpired.never_applied). Only then may the client send
	// the write again in a new session.
	NeverApplied
	// Busy: the session holds MaxResults results; refuse for now.
	Busy
	// ClockAhead: the write started more than TTL after the table's clock;
	// refuse it.
	ClockAhead
)

// Table is one region's sessions. It is not safe for concurrent use.
type Table struct {
	limits    Limits
	ttl       uint64 // limits.TTL in ms
	clock     uint64 // ms
	lastSweep uint64 // ms
	horizon   uint64 // ms; see the package doc
	byID      map[string]*pb.SessionState
	live      *btree.BTreeG[slot] // live sessions by (last_seen_ms, id)
	markers   *btree.BTreeG[slot] // expired sessions by (expired_at_ms, id)
	// shared holds the sessions handed out in Changes.Upserts since the
	// last Release: the caller may still hold them (the storage engine
	// queues them until its next write), so the table never changes one
	// in place; writable copies it first (copy on write). Handing out
	// the session itself instead of a copy saves copying a session, with
	// all its results, on every write.
	shared map[*pb.SessionState]struct{}
}

// slot is a session's place in an ordered index.
type slot struct {
	at uint64
	id string
}

func lessSlot(a, b slot) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

// New returns an empty table.
func New(l Limits) *Table {
	l = l.withDefaults()
	return &Table{
		limits:  l,
		ttl:     uint64(l.TTL / time.Millisecond),
		byID:    map[string]*pb.SessionState{},
		shared:  map[*pb.SessionState]struct{}{},
		live:    btree.NewG(16, lessSlot),
		markers: btree.NewG(16, lessSlot),
	}
}

// FromProto rebuilds a table from its persisted or snapshotted form.
func FromProto(l Limits, pt *pb.SessionTable) *Table {
	t := New(l)
	t.clock, t.lastSweep, t.horizon = pt.GetClockMs(), pt.GetLastSweepMs(), pt.GetHorizonMs()
	for _, s := range pt.GetSessions() {
		t.put(s.CloneVT())
	}
	return t
}

// Proto returns the whole table, sessions sorted by id (a copy).
func (t *Table) Proto() *pb.SessionTable {
	out := t.View()
	for i, s := range out.Sessions {
		out.Sessions[i] = s.CloneVT()
	}
	return out
}

// View is Proto without the copies: its sessions are the table's own, so
// it is good only until the table next changes. A checkpoint marshals it
// at once; anything that keeps it must use Proto.
func (t *Table) View() *pb.SessionTable {
	out := &pb.SessionTable{ClockMs: t.clock, LastSweepMs: t.lastSweep, HorizonMs: t.horizon}
	if ids := t.ids(); len(ids) > 0 {
		out.Sessions = make([]*pb.SessionState, len(ids))
		for i, id := range ids {
			out.Sessions[i] = t.byID[id]
		}
	}
	return out
}

// Clone returns an independent copy.
func (t *Table) Clone() *Table { return FromProto(t.limits, t.Proto()) }

// Len is the number of sessions held, expired markers included.
func (t *Table) Len() int { return len(t.byID) }

// Live is the number of live (not expired) sessions.
func (t *Table) Live() int { return t.live.Len() }

// Markers is the number of expired sessions kept as markers.
func (t *Table) Markers() int { return t.markers.Len() }

// Clock is the table's time: the latest proposal time applied, in ms.
func (t *Table) Clock() uint64 { return t.clock }

// Horizon is the time every dropped session's writes started before, in ms.
func (t *Table) Horizon() uint64 { return t.horizon }

func (t *Table) ids() []string {
	ids := make([]string, 0, len(t.byID))
	for id := range t.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// slotOf is the index of s, whose id is id, and its place there. (The
// callers have the id as a string already: converting s's every time
// would allocate.)
func (t *Table) slotOf(s *pb.SessionState, id string) (*btree.BTreeG[slot], slot) {
	if at := s.GetExpiredAtMs(); at != 0 {
		return t.markers, slot{at, id}
	}
	return t.live, slot{s.GetLastSeenMs(), id}
}

// index and unindex keep s's place in the ordered indexes: every change to
// a held session's last_seen_ms or expired_at_ms is made between the two.
func (t *Table) index(s *pb.SessionState, id string) {
	tr, sl := t.slotOf(s, id)
	tr.ReplaceOrInsert(sl)
}

func (t *Table) unindex(s *pb.SessionState, id string) {
	tr, sl := t.slotOf(s, id)
	tr.Delete(sl)
}

// put holds s, replacing any session of its id.
func (t *Table) put(s *pb.SessionState) {
	id := string(s.GetId())
	if old, ok := t.byID[id]; ok {
		t.unindex(old, id)
	}
	t.byID[id] = s
	t.index(s, id)
}

// remove forgets session id, if held, and returns it.
func (t *Table) remove(id string) *pb.SessionState {
	s, ok := t.byID[id]
	if !ok {
		return nil
	}
	t.unindex(s, id)
	delete(t.byID, id)
	return s
}

// knownFrom is the earliest start of a write the table can take for a
// session it does not know: later than every write of a dropped session,
// and than clock - TTL (see the package doc).
func (t *Table) knownFrom() uint64 {
	f := t.horizon
	if t.clock > t.ttl {
		f = max(f, t.clock-t.ttl)
	}
	return f
}

// Changes is what a step did to the table, for the durable log: the clock,
// sweep time and horizon after it, sessions to write whole, sessions
// dropped. No session is in both; replaying the drops, then the upserts,
// into the table as it was gives the table as it is.
//
// The upserts are the table's own sessions, read-only: the table leaves
// them as they are (it changes copies) until Release says the caller is
// done with every upsert handed out so far.
type Changes struct {
	Clock, Sweep, Horizon uint64
	Upserts               []*pb.SessionState
	Dropped               [][]byte
}

// step collects the changes of one Advance or Record.
type step struct {
	touched []*pb.SessionState
	dropped [][]byte
}

// finish returns the step's changes: each session it touched that is
// still held, once, shared until the next Release.
func (t *Table) finish(st *step) Changes {
	c := Changes{Clock: t.clock, Sweep: t.lastSweep, Horizon: t.horizon, Dropped: st.dropped}
	for _, s := range st.touched {
		if t.byID[string(s.GetId())] != s || slices.Contains(c.Upserts, s) {
			continue // dropped later in the step, or already listed
		}
		t.shared[s] = struct{}{}
		c.Upserts = append(c.Upserts, s)
	}
	return c
}

// Release tells the table that the caller no longer holds the upserts of
// the changes it returned so far (the storage engine has encoded them):
// it may change those sessions in place again.
func (t *Table) Release() { clear(t.shared) }

// writable returns held session s ready to be changed: s itself, or, if
// s went out in an upsert not yet released, a copy that takes its place.
// The copy has the same last_seen_ms and expired_at_ms, so its place in
// the ordered indexes is s's.
func (t *Table) writable(s *pb.SessionState) *pb.SessionState {
	if _, ok := t.shared[s]; !ok {
		return s
	}
	c := s.CloneVT()
	t.byID[string(c.GetId())] = c
	return c
}

// Advance moves the table's clock to nowMs (never back) and, once a quarter
// of the lifetime has passed since the last time, drops expired markers
// older than the lifetime and expires idle sessions.
func (t *Table) Advance(nowMs uint64) Changes {
	if nowMs > t.clock {
		t.clock = nowMs
	}
	var st step
	if t.clock >= t.lastSweep+t.ttl/4 {
		t.lastSweep = t.clock
		for {
			m, ok := t.markers.Min()
			if !ok || m.at+t.ttl > t.clock {
				break
			}
			t.drop(&st, m.id)
		}
		for {
			m, ok := t.live.Min()
			if !ok || m.at+t.ttl > t.clock {
				break
			}
			t.expire(&st, m.id)
		}
	}
	return t.finish(&st)
}

// expire turns live session id into a marker, keeping the sequences of
// its results (the writes it applied that its client may still wait for);
// beyond MaxMarkers markers, the one expired longest ago is dropped.
func (t *Table) expire(st *step, id string) {
	s := t.writable(t.byID[id])
	t.unindex(s, id)
	s.ExpiredAtMs = max(t.clock, 1)
	s.AppliedAtExpiry = make([]uint64, 0, len(s.GetResults()))
	for _, r := range s.GetResults() {
		s.AppliedAtExpiry = append(s.AppliedAtExpiry, r.GetSequence())
	}
	slices.Sort(s.AppliedAtExpiry)
	s.AppliedKept = true
	s.Results = nil
	t.index(s, id)
	st.touched = append(st.touched, s)
	for t.markers.Len() > t.limits.MaxMarkers {
		m, _ := t.markers.Min()
		t.drop(st, m.id)
	}
}

// drop forgets session id and raises the horizon past the starts of the
// writes it applied or refused.
func (t *Table) drop(st *step, id string) {
	s := t.remove(id)
	t.horizon = max(t.horizon, s.GetMaxStartedMs()+1)
	st.dropped = append(st.dropped, []byte(id))
}

// Admit says what to do with write w, at the table's clock. For a repeat
// it returns the stored response (a copy). A refusal by a session the
// table holds is recorded (refusals are final: see the package doc), so
// the changes must be made durable like Record's.
func (t *Table) Admit(w *pb.Session) (Verdict, *pb.KvResponse, Changes) {
	var st step
	v, resp := t.admit(&st, w)
	return v, resp, t.finish(&st)
}

func (t *Table) admit(st *step, w *pb.Session) (Verdict, *pb.KvResponse) {
	if w.GetStartedMs() > t.clock+t.ttl {
		return ClockAhead, nil
	}
	s, ok := t.byID[string(w.GetId())]
	if !ok {
		if w.GetStartedMs() < t.knownFrom() {
			// Maybe a retry of a write applied before the session was
			// dropped: refused, never applied a second time. The
			// threshold never goes down: every copy is refused alike.
			return Expired, nil
		}
		return Apply, nil
	}
	if s.GetExpiredAtMs() != 0 {
		s = t.refuse(st, s, w)
		if s.GetAppliedKept() && w.GetSequence() >= s.GetLowest() && w.GetStartedMs() >= s.GetKnownFromMs() {
			if _, applied := slices.BinarySearch(s.GetAppliedAtExpiry(), w.GetSequence()); !applied {
				return NeverApplied, nil
			}
		}
		return Expired, nil
	}
	for _, r := range s.GetResults() {
		if r.GetSequence() == w.GetSequence() {
			return Repeat, r.GetResponse().CloneVT()
		}
	}
	if w.GetSequence() < s.GetLowest() {
		t.refuse(st, s, w)
		return Expired, nil // answered, and the client said so: a late duplicate
	}
	if w.GetStartedMs() < s.GetKnownFromMs() {
		t.refuse(st, s, w)
		return Expired, nil // as if the session were unknown (it was, then)
	}
	// Record keeps the results from the new lowest on, this one included:
	// refuse if that would be more than MaxResults, whatever the lowest.
	low := max(s.GetLowest(), w.GetLowest())
	if w.GetSequence() >= low {
		kept := 0
		for _, r := range s.GetResults() {
			if r.GetSequence() >= low {
				kept++
			}
		}
		if kept >= t.limits.MaxResults {
			return Busy, nil
		}
	}
	return Apply, nil
}

// refuse records that session s refused write w: once s is dropped, the
// horizon is past w's start, so a copy of w is refused then too. It
// returns the session as held now (see writable).
func (t *Table) refuse(st *step, s *pb.SessionState, w *pb.Session) *pb.SessionState {
	if w.GetStartedMs() > s.GetMaxStartedMs() {
		s = t.writable(s)
		s.MaxStartedMs = w.GetStartedMs()
		st.touched = append(st.touched, s)
	}
	return s
}

// Record stores the response of write w, applied at the table's clock, and
// drops the results the client no longer waits for. A new session beyond
// MaxSessions expires the session idle longest.
func (t *Table) Record(w *pb.Session, resp *pb.KvResponse) Changes {
	var st step
	id := string(w.GetId())
	s, ok := t.byID[id]
	if ok {
		s = t.writable(s)
		t.unindex(s, id)
	} else {
		// What the table could vouch for before this write: evicting the
		// idlest below may raise the horizon, but only past the writes of
		// another session.
		s = &pb.SessionState{Id: bytes.Clone(w.GetId()), KnownFromMs: t.knownFrom()}
		if t.live.Len() >= t.limits.MaxSessions {
			if m, ok := t.live.Min(); ok {
				t.expire(&st, m.id)
			}
		}
		t.byID[id] = s
	}
	s.LastSeenMs = t.clock
	s.MaxStartedMs = max(s.GetMaxStartedMs(), w.GetStartedMs())
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
		stored := resp.CloneVT()
		stored.RequestId = 0
		s.Results = append(s.Results, &pb.SessionResult{Sequence: w.GetSequence(), Response: stored})
	}
	t.index(s, id)
	st.touched = append(st.touched, s)
	return t.finish(&st)
}

// Replay applies persisted changes (at recovery): drops, then upserts.
func (t *Table) Replay(c Changes) {
	t.clock, t.lastSweep, t.horizon = max(t.clock, c.Clock), max(t.lastSweep, c.Sweep), max(t.horizon, c.Horizon)
	for _, id := range c.Dropped {
		t.remove(string(id))
	}
	for _, s := range c.Upserts {
		t.put(s.CloneVT())
	}
}
