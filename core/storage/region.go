package storage

import (
	"bytes"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/session"
)

// Region is one region's local state: meta, raft log and hard state, apply
// state and keys. It implements raft.Storage for the region's RawNode.
// Callers must treat returned protobufs as read-only and change state only
// through the methods, which queue the matching durable records.
type Region struct {
	e          *Engine
	id         uint64
	meta       *pb.Region
	state      pb.PeerState
	applied    uint64
	truncIndex uint64
	truncTerm  uint64
	hard       *raftpb.HardState
	conf       *raftpb.ConfState
	entries    []*raftpb.Entry // entries[i].Index == truncIndex+1+i
	kv         *kv.Data
	sessions   *session.Table // client sessions: part of the state machine
	// sessionsAt is the engine's written count when sessions last
	// changed: the sessions it handed out since are in pending updates.
	sessionsAt uint64
	image      *Image // the keys as of the last raft snapshot handed out
}

// Image is a consistent copy of a region's keys at one applied index, taken
// when raft asks for a snapshot: the data a leader streams to a peer. It is
// a copy-on-write clone, so taking it costs nothing and later writes do not
// change it.
type Image struct {
	Region *pb.Region
	Index  uint64
	Term   uint64
	Data   *kv.Data
}

var _ raft.Storage = (*Region)(nil)

func newRegionFromCheckpoint(e *Engine, ck *pb.RegionCheckpoint) *Region {
	ck = cloneCk(ck)
	r := &Region{
		e:          e,
		id:         ck.GetRegion().GetId(),
		meta:       ck.Region,
		state:      ck.PeerState,
		applied:    ck.AppliedIndex,
		truncIndex: ck.TruncatedIndex,
		truncTerm:  ck.TruncatedTerm,
		hard:       ck.HardState,
		conf:       ck.ConfState,
		entries:    ck.Entries,
		kv:         kv.New(),
		sessions:   session.FromProto(e.opts.SessionLimits, ck.Sessions),
	}
	if r.hard == nil {
		r.hard = &raftpb.HardState{}
	}
	if r.conf == nil {
		r.conf = &raftpb.ConfState{}
	}
	for _, p := range ck.Pairs {
		r.kv.Set(p.Key, p.Value, p.Version)
	}
	return r
}

// checkpoint returns the region's whole state. It shares the region's own
// entries, pairs and sessions, so it must be marshalled before the region
// changes (Engine.checkpoint marshals it at once).
func (r *Region) checkpoint() *pb.RegionCheckpoint {
	ck := &pb.RegionCheckpoint{
		Region:         r.meta,
		PeerState:      r.state,
		AppliedIndex:   r.applied,
		TruncatedIndex: r.truncIndex,
		TruncatedTerm:  r.truncTerm,
		HardState:      r.hard,
		ConfState:      r.conf,
		Entries:        r.entries,
		Pairs:          pairsOf(r.kv),
		Sessions:       r.sessions.View(),
	}
	return ck
}

// pairsOf lists d's pairs for a checkpoint, from one slab rather than an
// allocation each. They share d's keys and values.
func pairsOf(d *kv.Data) []*pb.KvPair {
	slab := make([]pb.KvPair, d.Len())
	out := make([]*pb.KvPair, 0, len(slab))
	d.Ascend(func(it kv.Item) bool {
		p := &slab[len(out)]
		p.Key, p.Value, p.Version = it.Key, it.Value, it.Version
		out = append(out, p)
		return true
	})
	return out
}

// ID is the region id.
func (r *Region) ID() uint64 { return r.id }

// Meta is the region's range, epoch and peers as this store knows them.
func (r *Region) Meta() *pb.Region { return r.meta }

// State is NORMAL or TOMBSTONE.
func (r *Region) State() pb.PeerState { return r.state }

// Applied is the index of the last applied entry.
func (r *Region) Applied() uint64 { return r.applied }

// Data gives read access to the region's keys. Do not modify it.
func (r *Region) Data() *kv.Data { return r.kv }

// HardState is the persisted raft hard state.
func (r *Region) HardState() *raftpb.HardState { return r.hard }

// ConfState is the membership as of the applied index.
func (r *Region) ConfState() *raftpb.ConfState { return r.conf }

// lazyUpdate returns an update record for apply-side changes, merging into
// the previous record when that one holds only apply-side changes of this
// region (replay order is preserved either way).
func (r *Region) lazyUpdate() *pb.RegionUpdate {
	if n := len(r.e.pending); n > 0 {
		last := r.e.pending[n-1]
		if last.RegionId == r.id && last.Reset_ == nil && last.Split == nil && last.Region == nil &&
			last.PeerState == pb.PeerState_NORMAL && last.CompactIndex == 0 && len(last.Entries) == 0 &&
			last.HardState == nil && last.ConfState == nil {
			return last
		}
	}
	u := r.e.newUpdate(r.id)
	r.e.queue(u, false)
	return u
}

// Sessions is the region's session table, for reading: change it only
// through AdvanceSessions, AdmitSession and RecordSession.
func (r *Region) Sessions() *session.Table { return r.sessions }

// changeSessions readies the session table for a change: once the engine
// has written the updates that hold the sessions the table handed out, it
// may change them in place again (session.Table.Release).
func (r *Region) changeSessions() *session.Table {
	if r.sessionsAt != r.e.written {
		r.sessions.Release()
		r.sessionsAt = r.e.written
	}
	return r.sessions
}

// AdmitSession asks the session table what to do with a session write
// (session.Table.Admit), logging what a refusal records as a lazy record.
func (r *Region) AdmitSession(w *pb.Session) (session.Verdict, *pb.KvResponse) {
	v, resp, c := r.changeSessions().Admit(w)
	if len(c.Upserts) > 0 || len(c.Dropped) > 0 {
		r.logSessions(c) // Admit moves neither the clock nor the horizon
	}
	return v, resp
}

// AdvanceSessions moves the session table's clock to a write's proposal
// time (expiring idle sessions when a sweep is due), as a lazy record.
func (r *Region) AdvanceSessions(nowMs uint64) {
	r.logSessions(r.changeSessions().Advance(nowMs))
}

// RecordSession stores the response of an applied session write, as a
// lazy record (with the write's mutations and applied index).
func (r *Region) RecordSession(w *pb.Session, resp *pb.KvResponse) {
	r.logSessions(r.changeSessions().Record(w, resp))
}

// logSessions records table changes, the clock included: the clock decides
// expiry, so a replica that restarts must come back with the clock it had
// at its durable applied index, or it could decide differently from the
// others.
func (r *Region) logSessions(c session.Changes) {
	u := r.lazyUpdate()
	if len(c.Dropped) > 0 && len(u.Sessions) > 0 {
		// Replay drops before upserts within a record: keep drops of a
		// later write out of a record that already upserts.
		u = &pb.RegionUpdate{RegionId: r.id}
		r.e.queue(u, false)
	}
	u.SessionClockMs, u.SessionSweepMs, u.SessionHorizonMs = c.Clock, c.Sweep, c.Horizon
	u.Sessions = append(u.Sessions, c.Upserts...)
	u.SessionsDropped = append(u.SessionsDropped, c.Dropped...)
}

// Put writes key and returns its new version.
func (r *Region) Put(key, value []byte) uint64 {
	it := r.kv.PutItem(key, value)
	r.logWrite(it)
	return it.Version
}

// logWrite logs a write as a lazy record. The mutation shares the stored
// item's key and value: the map never changes them, and neither does the
// engine, which only encodes the record.
func (r *Region) logWrite(it kv.Item) {
	u := r.lazyUpdate()
	u.Mutations = append(u.Mutations, &pb.KvMutation{Key: it.Key, Value: it.Value, Version: it.Version})
}

// Delete removes key and reports whether it existed.
func (r *Region) Delete(key []byte) bool {
	ok := r.kv.Delete(key)
	if ok {
		u := r.lazyUpdate()
		u.Mutations = append(u.Mutations, &pb.KvMutation{Key: bytes.Clone(key), Delete: true})
	}
	return ok
}

// CompareAndSwap writes value if key's version is expected.
func (r *Region) CompareAndSwap(key []byte, expected uint64, value []byte) (bool, uint64) {
	it, ok := r.kv.CompareAndSwapItem(key, expected, value)
	if ok {
		r.logWrite(it)
	}
	return ok, it.Version
}

// SetApplied records that entries up to index are applied.
func (r *Region) SetApplied(index uint64) {
	if index < r.applied {
		panic(fmt.Sprintf("storage: region %d applied index going back from %d to %d", r.id, r.applied, index))
	}
	r.applied = index
	r.lazyUpdate().AppliedIndex = index
}

func (r *Region) applyPeerState(s pb.PeerState) {
	r.state = s
	if s == pb.PeerState_TOMBSTONE {
		r.kv = kv.New()
		r.sessions = session.New(r.e.opts.SessionLimits)
		r.entries = nil
		r.hard = &raftpb.HardState{}
		r.conf = &raftpb.ConfState{}
		r.applied, r.truncIndex, r.truncTerm = 0, 0, 0
	}
}

// Split shrinks this region to left and creates the region right.Region
// holding every key >= right.Region.StartKey, with right's raft state. The
// new region is returned. It is one durable record. A region already
// present under right's id is replaced only if it is uninitialized (a
// placeholder created by an early raft message).
//
// With right nil, the keys past left's end are dropped instead: the new
// region already exists here (initialized by a snapshot) or was removed.
func (r *Region) Split(left *pb.Region, right *pb.RegionCheckpoint) (*Region, error) {
	rec := &pb.SplitRecord{Left: left.CloneVT()}
	if right != nil {
		rec.Right = cloneCk(right)
	}
	if right != nil {
		rid := right.GetRegion().GetId()
		if old, ok := r.e.regions[rid]; ok && (old.meta.Initialized() || old.state != pb.PeerState_NORMAL) {
			return nil, fmt.Errorf("storage: split of region %d: region %d already exists (state %v)", r.id, rid, old.state)
		}
	}
	nr, err := r.split(rec)
	if err != nil {
		return nil, err
	}
	r.e.queue(&pb.RegionUpdate{RegionId: r.id, Split: rec}, true)
	return nr, nil
}

// split carries out a split record, live or replayed: this region shrinks to
// rec.Left, and rec.Right (when set) is created with the keys past the cut.
func (r *Region) split(rec *pb.SplitRecord) (*Region, error) {
	left := rec.Left
	at := left.GetEndKey()
	if len(at) == 0 || !bytes.Equal(left.GetStartKey(), r.meta.GetStartKey()) {
		return nil, fmt.Errorf("storage: split of region %d: left half [%q, %q) does not start the region", r.id, left.GetStartKey(), at)
	}
	right := rec.Right
	if right == nil {
		r.kv.SplitOff(at) // dropped
		r.meta = left
		return nil, nil
	}
	rid := right.GetRegion().GetId()
	if rid == 0 || rid == r.id {
		return nil, fmt.Errorf("storage: split of region %d: bad new region id %d", r.id, rid)
	}
	if !bytes.Equal(right.GetRegion().GetStartKey(), at) {
		return nil, fmt.Errorf("storage: split of region %d: left ends at %q but right starts at %q", r.id, at, right.GetRegion().GetStartKey())
	}
	moved := r.kv.SplitOff(at)
	nr := newRegionFromCheckpoint(r.e, right)
	nr.kv = moved
	r.meta = left
	r.e.regions[rid] = nr
	return nr, nil
}

// Append adds raft entries, cutting any existing entries at or after the
// first new index.
func (r *Region) Append(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	if err := r.append(ents); err != nil {
		return err
	}
	u := r.e.newUpdate(r.id)
	u.Entries = ents
	r.e.queue(u, true)
	return nil
}

func (r *Region) append(ents []*raftpb.Entry) error {
	for i := 1; i < len(ents); i++ {
		if ents[i].GetIndex() != ents[i-1].GetIndex()+1 {
			return fmt.Errorf("storage: region %d: append of entry %d after entry %d", r.id, ents[i].GetIndex(), ents[i-1].GetIndex())
		}
	}
	first := ents[0].GetIndex()
	last := r.lastIndex()
	if first <= r.truncIndex {
		// Entries already covered by the compacted prefix: skip them.
		skip := r.truncIndex + 1 - first
		if skip >= uint64(len(ents)) {
			return nil
		}
		ents = ents[skip:]
		first = ents[0].GetIndex()
	}
	if first > last+1 {
		return fmt.Errorf("storage: region %d: append at %d leaves a gap after %d", r.id, first, last)
	}
	keep := first - r.truncIndex - 1
	if keep == uint64(len(r.entries)) {
		// At the end: slices Entries handed out are capped at their length,
		// so growing in place changes nothing they see.
		r.entries = append(r.entries, ents...)
		return nil
	}
	// A conflicting suffix is replaced: into a new array, so slices handed
	// out earlier keep the entries they were given.
	r.entries = append(r.entries[:keep:keep], ents...)
	return nil
}

// SetHardState records the raft hard state.
//
// A hard state that moves only the commit index is written lazily, with
// the next synced record (raft's MustSync rule): a commit index lost in a
// crash is learned again from the leader, and the applied state that rides
// in the same record or later ones never gets ahead of it on disk. A new
// term or vote must be durable before anyone hears of it.
func (r *Region) SetHardState(hs *raftpb.HardState) {
	if hs == nil {
		return
	}
	critical := r.hard == nil || hs.GetTerm() != r.hard.GetTerm() || hs.GetVote() != r.hard.GetVote()
	r.hard = pb.CloneHardState(hs)
	u := r.e.newUpdate(r.id)
	u.HardState = r.hard
	r.e.queue(u, critical)
}

// ApplySnapshot replaces the region's state with a raft snapshot whose data
// is a pb.RegionSnapshot. The keys are in the snapshot data when it is
// carried inline, or given as pairs (assembled from the streamed chunks,
// already checksummed) when it is streamed. It is one durable record: all
// of the snapshot or none of it survives a crash.
func (r *Region) ApplySnapshot(snap *raftpb.Snapshot, streamed []*pb.KvPair) error {
	rs := &pb.RegionSnapshot{}
	if err := proto.Unmarshal(snap.GetData(), rs); err != nil {
		return fmt.Errorf("storage: region %d: decode snapshot: %w", r.id, err)
	}
	if rs.GetRegion().GetId() != r.id {
		return fmt.Errorf("storage: region %d: snapshot is for region %d", r.id, rs.GetRegion().GetId())
	}
	pairs := rs.GetPairs()
	if rs.GetStreamed() {
		if uint64(len(streamed)) != rs.GetTotalPairs() {
			return fmt.Errorf("storage: region %d: streamed snapshot has %d pairs, its data says %d", r.id, len(streamed), rs.GetTotalPairs())
		}
		pairs = streamed
	}
	md := snap.GetMetadata()
	hard := pb.CloneHardState(r.hard)
	if hard.GetCommit() < md.GetIndex() {
		hard.Commit = proto.Uint64(md.GetIndex())
	}
	ck := &pb.RegionCheckpoint{
		Region:         rs.Region,
		PeerState:      pb.PeerState_NORMAL,
		AppliedIndex:   md.GetIndex(),
		TruncatedIndex: md.GetIndex(),
		TruncatedTerm:  md.GetTerm(),
		HardState:      hard,
		ConfState:      md.GetConfState(),
		Pairs:          pairs,
		Sessions:       rs.GetSessions(),
	}
	nr := newRegionFromCheckpoint(r.e, ck)
	*r = *nr
	r.e.queue(&pb.RegionUpdate{RegionId: r.id, Reset_: ck}, true)
	return nil
}

// ApplyMembership records a membership change applied at index: the
// region's new meta (peers, conf_ver) and raft's new conf state, with the
// applied index, as one durable record, so that a replay never sees one
// without the others.
func (r *Region) ApplyMembership(meta *pb.Region, cs *raftpb.ConfState, index uint64) {
	if index < r.applied {
		panic(fmt.Sprintf("storage: region %d applied index going back from %d to %d", r.id, r.applied, index))
	}
	r.meta = meta.CloneVT()
	r.conf = proto.Clone(cs).(*raftpb.ConfState)
	r.applied = index
	r.e.queue(&pb.RegionUpdate{RegionId: r.id, Region: r.meta, ConfState: r.conf, AppliedIndex: index}, true)
}

// Tombstone marks the peer of this region on this store removed: its keys
// and raft log are dropped and only the region's last meta is kept, so that
// a late message for it (at an epoch no newer than meta's) creates nothing.
// It is a critical record: durable before the round's messages leave.
func (r *Region) Tombstone(meta *pb.Region) {
	r.meta = meta.CloneVT()
	r.applyPeerState(pb.PeerState_TOMBSTONE)
	r.image = nil
	r.e.queue(&pb.RegionUpdate{RegionId: r.id, Region: r.meta, PeerState: pb.PeerState_TOMBSTONE}, true)
}

// Compact drops raft entries up to and including index, which must be
// applied.
func (r *Region) Compact(index uint64) error {
	if index <= r.truncIndex {
		return nil
	}
	if index > r.applied {
		return fmt.Errorf("storage: region %d: compact to %d beyond applied %d", r.id, index, r.applied)
	}
	term, err := r.Term(index)
	if err != nil {
		return fmt.Errorf("storage: region %d: compact to %d: %w", r.id, index, err)
	}
	if err := r.compact(index, term); err != nil {
		return err
	}
	r.e.queue(&pb.RegionUpdate{RegionId: r.id, CompactIndex: index, CompactTerm: term}, false)
	return nil
}

func (r *Region) compact(index, term uint64) error {
	if index <= r.truncIndex {
		return nil
	}
	if index > r.lastIndex() {
		return fmt.Errorf("storage: region %d: compact to %d beyond last index %d", r.id, index, r.lastIndex())
	}
	drop := index - r.truncIndex
	r.entries = append([]*raftpb.Entry(nil), r.entries[drop:]...)
	r.truncIndex, r.truncTerm = index, term
	return nil
}

func (r *Region) lastIndex() uint64 { return r.truncIndex + uint64(len(r.entries)) }

// ---- raft.Storage

// InitialState implements raft.Storage.
func (r *Region) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	return pb.CloneHardState(r.hard), proto.Clone(r.conf).(*raftpb.ConfState), nil
}

// Entries implements raft.Storage.
func (r *Region) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	if lo <= r.truncIndex {
		return nil, raft.ErrCompacted
	}
	if hi > r.lastIndex()+1 {
		return nil, fmt.Errorf("storage: region %d: entries [%d,%d) beyond last index %d: %w", r.id, lo, hi, r.lastIndex(), raft.ErrUnavailable)
	}
	if lo >= hi {
		return nil, nil
	}
	s := r.entries[lo-r.truncIndex-1 : hi-r.truncIndex-1]
	size := uint64(0)
	for i, e := range s {
		size += uint64(pb.RaftEntrySize(e))
		if i > 0 && size > maxSize {
			s = s[:i]
			break
		}
	}
	return s[:len(s):len(s)], nil
}

// Term implements raft.Storage.
func (r *Region) Term(i uint64) (uint64, error) {
	if i < r.truncIndex {
		return 0, raft.ErrCompacted
	}
	if i == r.truncIndex {
		return r.truncTerm, nil
	}
	if i > r.lastIndex() {
		return 0, raft.ErrUnavailable
	}
	return r.entries[i-r.truncIndex-1].GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (r *Region) LastIndex() (uint64, error) { return r.lastIndex(), nil }

// FirstIndex implements raft.Storage.
func (r *Region) FirstIndex() (uint64, error) { return r.truncIndex + 1, nil }

// Snapshot implements raft.Storage. The raft snapshot it returns describes
// the region at the applied index (meta, key count and bytes) but carries no
// keys: they are streamed to the peer in chunks from the Image taken here
// (see SnapshotImage). Raft sends snapshots only through the store, which does
// the streaming.
func (r *Region) Snapshot() (*raftpb.Snapshot, error) {
	term, err := r.Term(r.applied)
	if err != nil {
		return nil, fmt.Errorf("storage: region %d: snapshot at applied %d: %w", r.id, r.applied, err)
	}
	r.image = &Image{Region: r.meta.CloneVT(), Index: r.applied, Term: term, Data: r.kv.Clone()}
	data, err := proto.Marshal(&pb.RegionSnapshot{
		Sessions:   r.sessions.Proto(),
		Region:     r.meta,
		Streamed:   true,
		TotalPairs: uint64(r.kv.Len()),
		TotalBytes: uint64(r.kv.Bytes()),
	})
	if err != nil {
		return nil, fmt.Errorf("storage: region %d: encode snapshot: %w", r.id, err)
	}
	return &raftpb.Snapshot{
		Data: data,
		Metadata: &raftpb.SnapshotMetadata{
			ConfState: proto.Clone(r.conf).(*raftpb.ConfState),
			Index:     proto.Uint64(r.applied),
			Term:      proto.Uint64(term),
		},
	}, nil
}

// SnapshotImage returns the image of the last snapshot raft asked for, if
// it is at index. Images are read-only: several transfers can stream from
// one.
func (r *Region) SnapshotImage(index uint64) *Image {
	if r.image == nil || r.image.Index != index {
		return nil
	}
	return r.image
}
