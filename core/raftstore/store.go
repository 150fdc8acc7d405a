// Package raftstore is a multiraft store: the peers (one raft group replica
// per region) a node hosts, driven from outside without I/O of its own.
//
// A driver (the simulator or the real runtime) calls Receive for every
// incoming envelope, Tick at a fixed interval, and Flush to run one ready
// round for all regions: raft state of every region is persisted in one
// synced write (group commit), then messages are sent, committed entries
// applied and clients answered. Flush returns an error only for a disk
// failure, after which the store must be dropped and reopened (fail-stop).
package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
)

// Config tunes a store.
type Config struct {
	StoreID uint64
	PD      uint64 // PD's node id

	// TickInterval is how often the driver calls Tick.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks are raft's timeouts in ticks.
	ElectionTicks  int
	HeartbeatTicks int

	// Heartbeat intervals to PD. When both are zero the store uses the
	// interval PD names at bootstrap (PD's default: 30 s).
	RegionHeartbeatInterval time.Duration
	StoreHeartbeatInterval  time.Duration

	// SplitThreshold is the approximate region size in bytes (keys plus
	// values) at which a region splits. 0 disables splitting.
	SplitThreshold int64

	// LogCompactEntries: once more than this many applied entries are in a
	// region's raft log, the log is compacted, keeping LogKeepEntries.
	LogCompactEntries uint64
	LogKeepEntries    uint64

	// SnapshotTimeout: a snapshot the follower has not acknowledged after
	// this long is reported failed, and raft sends a fresh one.
	// Default 20 election timeouts.
	SnapshotTimeout time.Duration

	CheckpointBytes int64
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
}

// Defaults for a real deployment.
const (
	DefaultTickInterval      = 100 * time.Millisecond
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultSplitThreshold    = 96 << 20
)

func (c *Config) fill() {
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 2
	}
	if c.RegionHeartbeatInterval <= 0 {
		c.RegionHeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.StoreHeartbeatInterval <= 0 {
		c.StoreHeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.LogCompactEntries == 0 {
		c.LogCompactEntries = 1000
	}
	if c.LogKeepEntries == 0 || c.LogKeepEntries > c.LogCompactEntries {
		c.LogKeepEntries = c.LogCompactEntries / 4
	}
	if c.SnapshotTimeout <= 0 {
		c.SnapshotTimeout = 20 * c.ElectionTick()
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
}

// Stats counts what a store did and refused.
type Stats struct {
	UnknownRegionMsgs     uint64 // raft messages for a region this store does not have
	MalformedMsgs         uint64
	StalePeerMsgs         uint64 // raft messages for a different peer id of a known region
	SnapshotsRefused      uint64 // snapshots overlapping another region here
	PlaceholderPeers      uint64 // uninitialized peers created for unknown regions
	PlaceholdersTakenOver uint64 // placeholders replaced by a local split
	DuplicateRequests     uint64 // network duplicates of write requests, dropped
	RegionNotFound        uint64
	KeyNotInRegion        uint64
	EpochNotMatch         uint64
	NotLeader             uint64
	InvalidRequests       uint64
	StaleCommands         uint64
	Proposals             uint64
	ReadIndexRequests     uint64
	ReadsServed           uint64
	WritesApplied         uint64
	SnapshotsSent         uint64
	SnapshotsApplied      uint64
	Splits                uint64
	FlushRounds           uint64
	LogCompactions        uint64
	RegionHeartbeatsOut   uint64
}

// Store hosts the peers of one node.
type Store struct {
	env   core.Env
	cfg   Config
	log   *slog.Logger
	eng   *storage.Engine
	peers map[uint64]*peer // by region id

	incarnation  uint64 // distinguishes this process's proposals from earlier ones
	nextProposal uint64
	nextReadCtx  uint64

	bootstrapped  bool
	hbFromPD      bool // heartbeat intervals not configured: use PD's
	lastHello     time.Time
	lastStoreHB   time.Time
	dirty         bool
	stats         Stats
	raftLogger    raft.Logger
	splitRequests map[uint64]*splitRequest     // by PD request id
	stashed       map[uint64][]*pb.RaftMessage // messages for regions a pending split will create
	stashOrder    []uint64
	pendingSnaps  map[uint64]*pb.Region       // ranges of snapshots accepted since the last ready round
	recentWrites  map[clientRequest]time.Time // write requests received, for duplicate detection
	recentOrder   []clientRequest
	nextPDRequest uint64
	hooks         Hooks
}

// Open recovers a store from env.FS/env.Dir. A store that has never
// bootstrapped asks PD for its regions on the first Tick.
func Open(env core.Env, cfg Config) (*Store, error) {
	hbFromPD := cfg.RegionHeartbeatInterval <= 0 && cfg.StoreHeartbeatInterval <= 0
	cfg.fill()
	if cfg.StoreID == 0 {
		return nil, fmt.Errorf("raftstore: store id must be set")
	}
	eng, err := storage.Open(env.FS, env.Dir, storage.Options{CheckpointBytes: cfg.CheckpointBytes})
	if err != nil {
		return nil, fmt.Errorf("raftstore: store %d: %w", cfg.StoreID, err)
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("store", cfg.StoreID)
	s := &Store{
		env:           env,
		cfg:           cfg,
		log:           log,
		eng:           eng,
		peers:         map[uint64]*peer{},
		incarnation:   env.Rand.Uint64(),
		hbFromPD:      hbFromPD,
		splitRequests: map[uint64]*splitRequest{},
		stashed:       map[uint64][]*pb.RaftMessage{},
		pendingSnaps:  map[uint64]*pb.Region{},
		recentWrites:  map[clientRequest]time.Time{},
		raftLogger:    &raftLogger{log: log},
	}
	if id := eng.Ident(); id != nil {
		if id.StoreId != cfg.StoreID {
			return nil, fmt.Errorf("raftstore: data in %s belongs to store %d, not %d", env.Dir, id.StoreId, cfg.StoreID)
		}
		s.bootstrapped = true
		s.adoptHeartbeatInterval(id.GetHeartbeatIntervalMs())
		for _, rid := range eng.RegionIDs() {
			r := eng.Region(rid)
			if r.State() != pb.PeerState_NORMAL {
				continue
			}
			if err := s.startPeer(r); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Hooks let an observer (the simulator's metrics and fault plans, a real
// runtime's metrics) learn what the store does. Any field may be nil.
type Hooks struct {
	// LeaderChanged: a local peer learned of a new leader (0 = none).
	LeaderChanged func(regionID, leaderPeer uint64)
	// SplitDue: the leader decided to split (size over the threshold, or
	// an operator's request) the region at this epoch version.
	SplitDue func(regionID, version uint64)
	// SplitProposed: the leader proposed a split through raft.
	SplitProposed func(regionID uint64)
	// SplitApplied: a local replica applied a split.
	SplitApplied func(left, right *pb.Region)
}

// SetHooks installs observer hooks.
func (s *Store) SetHooks(h Hooks) { s.hooks = h }

// TransferLeader asks the local leader of regionID to hand leadership to
// the peer toPeer.
func (s *Store) TransferLeader(regionID, toPeer uint64) error {
	p := s.peers[regionID]
	if p == nil {
		return fmt.Errorf("raftstore: store %d: region %d not found", s.cfg.StoreID, regionID)
	}
	if !p.leading {
		return fmt.Errorf("raftstore: store %d: not the leader of region %d", s.cfg.StoreID, regionID)
	}
	if findPeer(p.region.Meta(), toPeer) == nil {
		return fmt.Errorf("raftstore: region %d has no peer %d", regionID, toPeer)
	}
	p.rn.TransferLeader(toPeer)
	s.dirty = true
	return nil
}

// Close releases the engine's files.
func (s *Store) Close() error { return s.eng.Close() }

// ID is the store id.
func (s *Store) ID() uint64 { return s.cfg.StoreID }

// Stats returns the store's counters.
func (s *Store) Stats() Stats { return s.stats }

// EngineStats returns the disk engine's counters.
func (s *Store) EngineStats() storage.Stats { return s.eng.Stats() }

// Bootstrapped reports whether the store has its initial regions.
func (s *Store) Bootstrapped() bool { return s.bootstrapped }

func (s *Store) now() time.Time { return s.env.Clock.Now() }

func (s *Store) send(to uint64, body any) {
	s.env.Net.Send(pb.NewEnvelope(s.cfg.StoreID, to, body))
}

// startPeer creates the raft node of a local region.
func (s *Store) startPeer(r *storage.Region) error {
	meta := r.Meta()
	self := findPeerOnStore(meta, s.cfg.StoreID)
	if self == nil {
		return fmt.Errorf("raftstore: store %d: region %d lists no peer on this store", s.cfg.StoreID, r.ID())
	}
	rc := &raft.Config{
		ID:                        self.Id,
		ElectionTick:              s.cfg.ElectionTicks,
		HeartbeatTick:             s.cfg.HeartbeatTicks,
		Storage:                   r,
		Applied:                   r.Applied(),
		MaxSizePerMsg:             s.cfg.MaxSizePerMsg,
		MaxInflightMsgs:           s.cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: 64 << 20,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		Logger:                    s.raftLogger,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("raftstore: store %d: start region %d peer %d: %w", s.cfg.StoreID, r.ID(), self.Id, err)
	}
	p := newPeer(s, r, self.Id, rn)
	s.peers[r.ID()] = p
	s.dirty = true
	return nil
}

func findPeerOnStore(meta *pb.Region, store uint64) *pb.Peer {
	for _, p := range meta.GetPeers() {
		if p.StoreId == store {
			return p
		}
	}
	return nil
}

func findPeer(meta *pb.Region, id uint64) *pb.Peer {
	for _, p := range meta.GetPeers() {
		if p.Id == id {
			return p
		}
	}
	return nil
}

// sortedPeers returns the peers in region id order.
func (s *Store) sortedPeers() []*peer {
	ids := make([]uint64, 0, len(s.peers))
	for id := range s.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*peer, len(ids))
	for i, id := range ids {
		out[i] = s.peers[id]
	}
	return out
}

// Tick advances every peer's logical clock and runs periodic work.
func (s *Store) Tick() {
	now := s.now()
	s.expireRecentWrites(now)
	if !s.bootstrapped {
		if s.lastHello.IsZero() || now.Sub(s.lastHello) >= s.cfg.ElectionTick() {
			s.lastHello = now
			s.send(s.cfg.PD, &pb.StoreHello{StoreId: s.cfg.StoreID})
		}
		return
	}
	for _, p := range s.sortedPeers() {
		p.rn.Tick()
		p.onTick(now)
	}
	if s.lastStoreHB.IsZero() || now.Sub(s.lastStoreHB) >= s.cfg.StoreHeartbeatInterval {
		s.lastStoreHB = now
		s.sendStoreHeartbeat()
	}
	s.dirty = true
}

// adoptHeartbeatInterval uses the heartbeat interval PD asked for, unless
// this store was configured with its own.
func (s *Store) adoptHeartbeatInterval(ms uint64) {
	if s.hbFromPD && ms > 0 {
		d := time.Duration(ms) * time.Millisecond
		s.cfg.RegionHeartbeatInterval, s.cfg.StoreHeartbeatInterval = d, d
	}
}

// ElectionTick is the election timeout as a duration.
func (c Config) ElectionTick() time.Duration {
	return time.Duration(c.ElectionTicks) * c.TickInterval
}

func (s *Store) sendStoreHeartbeat() {
	var leaders, regions uint64
	var used int64
	for _, p := range s.sortedPeers() {
		if !storage.Initialized(p.region.Meta()) {
			continue
		}
		regions++
		if p.isLeader() {
			leaders++
		}
		used += p.region.Data().Bytes()
	}
	s.send(s.cfg.PD, &pb.StoreHeartbeat{
		StoreId:     s.cfg.StoreID,
		RegionCount: regions,
		LeaderCount: leaders,
		UsedBytes:   uint64(used),
	})
}

// NeedsFlush reports whether a Flush could do work.
func (s *Store) NeedsFlush() bool {
	if s.dirty || s.eng.NeedsSync() {
		return true
	}
	for _, p := range s.peers {
		if p.rn.HasReady() {
			return true
		}
	}
	return false
}

// Receive handles one incoming envelope.
func (s *Store) Receive(m *pb.Envelope) {
	s.dirty = true
	switch b := m.GetBody().(type) {
	case *pb.Envelope_Raft:
		if !s.bootstrapped {
			// Peers come from PD's bootstrap answer first; raft traffic
			// before it would create placeholders that block it.
			s.stats.UnknownRegionMsgs++
			return
		}
		s.onRaftMessage(b.Raft)
	case *pb.Envelope_KvRequest:
		if !s.bootstrapped {
			s.stats.RegionNotFound++
			s.sendKv(m.From, &pb.KvResponse{RequestId: b.KvRequest.GetRequestId(), RegionError: regionNotFoundErr(b.KvRequest.GetHeader().GetRegionId())})
			return
		}
		s.onKvRequest(m.From, b.KvRequest)
	case *pb.Envelope_Bootstrap:
		s.onBootstrap(b.Bootstrap)
	case *pb.Envelope_AskSplitResponse:
		s.onAskSplitResponse(b.AskSplitResponse)
	default:
		s.stats.MalformedMsgs++
		s.log.Warn("dropping unexpected message", "from", m.GetFrom(), "type", fmt.Sprintf("%T", m.GetBody()))
	}
}

// onBootstrap creates the store's initial regions from PD's answer.
func (s *Store) onBootstrap(b *pb.Bootstrap) {
	if s.bootstrapped {
		return
	}
	if b.GetError() != "" {
		s.log.Error("PD refused bootstrap", "error", b.GetError())
		return
	}
	if b.GetStoreId() != s.cfg.StoreID {
		s.stats.MalformedMsgs++
		s.log.Warn("bootstrap for another store", "for", b.GetStoreId())
		return
	}
	for _, region := range b.GetRegions() {
		if findPeerOnStore(region, s.cfg.StoreID) == nil {
			s.log.Error("bootstrap region has no peer here", "region", region.GetId())
			return
		}
	}
	for _, region := range b.GetRegions() {
		if s.peers[region.GetId()] != nil {
			continue // created by an earlier, interrupted attempt
		}
		r, err := s.eng.CreateRegion(InitialRegionState(region))
		if err != nil {
			s.log.Error("bootstrap: create region", "region", region.GetId(), "err", err)
			return
		}
		if err := s.startPeer(r); err != nil {
			s.log.Error("bootstrap: start peer", "region", region.GetId(), "err", err)
			return
		}
	}
	s.eng.SetIdent(&pb.StoreIdent{StoreId: s.cfg.StoreID, HeartbeatIntervalMs: b.GetHeartbeatIntervalMs()})
	s.adoptHeartbeatInterval(b.GetHeartbeatIntervalMs())
	s.bootstrapped = true
	s.log.Info("bootstrapped", "regions", len(b.GetRegions()))
}

// Raft's log of a new region starts at this index and term, as if a
// snapshot holding the region's initial state had been applied: every peer
// of the region starts equal and knows the membership.
const (
	InitLogIndex = 5
	InitLogTerm  = 5
)

// InitialRegionState is the local state of a peer of a brand-new region.
func InitialRegionState(region *pb.Region) *pb.RegionCheckpoint {
	var voters, learners []uint64
	for _, p := range region.GetPeers() {
		if p.Role == pb.PeerRole_LEARNER {
			learners = append(learners, p.Id)
		} else {
			voters = append(voters, p.Id)
		}
	}
	return &pb.RegionCheckpoint{
		Region:         proto.Clone(region).(*pb.Region),
		AppliedIndex:   InitLogIndex,
		TruncatedIndex: InitLogIndex,
		TruncatedTerm:  InitLogTerm,
		HardState:      &raftpb.HardState{Term: proto.Uint64(InitLogTerm), Commit: proto.Uint64(InitLogIndex)},
		ConfState:      &raftpb.ConfState{Voters: voters, Learners: learners},
	}
}

// onRaftMessage routes a raft message to the peer of its region.
func (s *Store) onRaftMessage(rm *pb.RaftMessage) {
	msg := rm.GetMessage()
	if msg == nil || rm.GetRegionId() == 0 || rm.GetToPeer() == nil || rm.GetFromPeer() == nil {
		s.stats.MalformedMsgs++
		s.log.Warn("dropping malformed raft message", "region", rm.GetRegionId())
		return
	}
	if rm.GetFromPeer().GetId() != msg.GetFrom() {
		s.stats.MalformedMsgs++
		s.log.Warn("dropping raft message whose sender does not match", "region", rm.GetRegionId(), "from_peer", rm.GetFromPeer().GetId(), "msg_from", msg.GetFrom())
		return
	}
	if rm.GetToPeer().GetStoreId() != s.cfg.StoreID {
		s.stats.MalformedMsgs++
		s.log.Warn("dropping raft message for another store", "region", rm.GetRegionId(), "to_store", rm.GetToPeer().GetStoreId())
		return
	}
	p := s.peers[rm.GetRegionId()]
	if p == nil {
		if p = s.maybeCreatePeer(rm); p == nil {
			return
		}
	}
	if rm.GetToPeer().GetId() != p.id || msg.GetTo() != p.id {
		s.stats.StalePeerMsgs++
		return
	}
	if msg.GetType() == raftpb.MessageType_MsgSnap {
		if !s.snapshotAcceptable(p, msg.GetSnapshot()) {
			s.stats.SnapshotsRefused++
			return
		}
	}
	p.rememberPeer(rm.GetFromPeer())
	if err := p.rn.Step(msg); err != nil {
		s.log.Debug("raft step", "region", p.regionID(), "err", err)
	}
}

// maybeCreatePeer decides what to do with a raft message for a region this
// store does not have. The store creates an uninitialized placeholder peer
// (no range, no data; it waits for a snapshot) only when all hold:
//   - the store was never told to drop this region (no tombstone);
//   - the message is one a leader or candidate sends to a member;
//   - the sender's view of the region names this store's peer;
//   - the region's range overlaps no initialized local region. If it does,
//     the local region is older and will create this one by applying its
//     split (or shrink through a snapshot): the message is dropped, and the
//     sender will retry.
//
// Anything else is rejected, counted and logged, and creates nothing.
func (s *Store) maybeCreatePeer(rm *pb.RaftMessage) *peer {
	msg := rm.GetMessage()
	id := rm.GetRegionId()
	if r := s.eng.Region(id); r != nil && r.State() == pb.PeerState_TOMBSTONE {
		s.stats.StalePeerMsgs++ // the region was removed from this store
		return nil
	}
	switch msg.GetType() {
	case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgSnap,
		raftpb.MessageType_MsgVote, raftpb.MessageType_MsgPreVote:
	default:
		s.stats.UnknownRegionMsgs++
		return nil
	}
	if rm.GetRegionEpoch().GetVersion() == 0 || rm.GetToPeer().GetId() == 0 {
		s.stats.UnknownRegionMsgs++
		s.log.Debug("dropping raft message for unknown region without epoch", "region", id)
		return nil
	}
	view := &pb.Region{Id: id, StartKey: rm.GetStartKey(), EndKey: rm.GetEndKey()}
	for _, o := range s.sortedPeers() {
		if storage.Initialized(o.region.Meta()) && rangesOverlap(o.region.Meta(), view) {
			s.stats.UnknownRegionMsgs++
			if o.region.Meta().GetEpoch().GetVersion() < rm.GetRegionEpoch().GetVersion() {
				// Most likely a split this store has yet to apply: keep
				// the message for the peer that split will create.
				s.stashForSplit(rm)
			}
			s.log.Debug("holding back raft message for unknown region overlapping a local one",
				"region", id, "local", o.regionID(), "type", msg.GetType())
			return nil
		}
	}
	meta := &pb.Region{Id: id, Peers: []*pb.Peer{cloneRegionPeer(rm.GetToPeer())}}
	r, err := s.eng.CreateRegion(&pb.RegionCheckpoint{Region: meta})
	if err != nil {
		s.log.Error("create placeholder peer", "region", id, "err", err)
		return nil
	}
	if err := s.startPeer(r); err != nil {
		s.log.Error("start placeholder peer", "region", id, "err", err)
		return nil
	}
	s.stats.PlaceholderPeers++
	s.log.Info("created uninitialized peer", "region", id, "peer", rm.GetToPeer().GetId(), "from_store", rm.GetFromPeer().GetStoreId())
	delete(s.stashed, id) // older than this message; the leader resends
	return s.peers[id]
}

func cloneRegionPeer(p *pb.Peer) *pb.Peer { return proto.Clone(p).(*pb.Peer) }

// Bounds of the messages held for regions a pending split will create.
const (
	maxStashedRegions = 64
	maxStashedPerRgn  = 8
)

// stashForSplit keeps a raft message for a region that does not exist here
// yet because a local split has not been applied. When the split creates
// the region, the messages are delivered at once instead of waiting for the
// sender to retry (a vote request would otherwise wait a whole election
// timeout). Only the newest few per region are kept.
func (s *Store) stashForSplit(rm *pb.RaftMessage) {
	id := rm.GetRegionId()
	q, ok := s.stashed[id]
	if !ok {
		if len(s.stashOrder) >= maxStashedRegions {
			delete(s.stashed, s.stashOrder[0])
			s.stashOrder = s.stashOrder[1:]
		}
		s.stashOrder = append(s.stashOrder, id)
	}
	if len(q) >= maxStashedPerRgn {
		q = q[1:]
	}
	s.stashed[id] = append(q, rm)
}

// deliverStashed hands the held messages of a region just created.
func (s *Store) deliverStashed(regionID uint64) {
	q, ok := s.stashed[regionID]
	if !ok {
		return
	}
	delete(s.stashed, regionID)
	for i, id := range s.stashOrder {
		if id == regionID {
			s.stashOrder = append(s.stashOrder[:i:i], s.stashOrder[i+1:]...)
			break
		}
	}
	for _, rm := range q {
		s.onRaftMessage(rm)
	}
}

// snapshotAcceptable refuses a snapshot whose range overlaps another region
// this store holds (it would put one key in two regions here).
func (s *Store) snapshotAcceptable(p *peer, snap *raftpb.Snapshot) bool {
	rs := &pb.RegionSnapshot{}
	if err := proto.Unmarshal(snap.GetData(), rs); err != nil || rs.GetRegion().GetId() != p.regionID() {
		s.stats.MalformedMsgs++
		s.log.Warn("dropping undecodable snapshot", "region", p.regionID(), "err", err)
		return false
	}
	for _, o := range s.sortedPeers() {
		if o == p || !storage.Initialized(o.region.Meta()) {
			continue
		}
		if rangesOverlap(o.region.Meta(), rs.GetRegion()) {
			s.log.Info("refusing snapshot overlapping a local region", "region", p.regionID(), "overlaps", o.regionID())
			return false
		}
	}
	// Snapshots accepted since the last ready round are not in storage yet.
	for id, r := range s.pendingSnaps {
		if id != p.regionID() && rangesOverlap(r, rs.GetRegion()) {
			s.log.Info("refusing snapshot overlapping another snapshot in flight", "region", p.regionID(), "overlaps", id)
			return false
		}
	}
	s.pendingSnaps[p.regionID()] = rs.GetRegion()
	return true
}

func rangesOverlap(a, b *pb.Region) bool {
	// [as, ae) and [bs, be) overlap iff as < be and bs < ae (empty end = +inf).
	less := func(k, end []byte) bool { return len(end) == 0 || bytes.Compare(k, end) < 0 }
	return less(a.GetStartKey(), b.GetEndKey()) && less(b.GetStartKey(), a.GetEndKey())
}

func keyInRegion(key []byte, r *pb.Region) bool {
	return bytes.Compare(key, r.GetStartKey()) >= 0 && (len(r.GetEndKey()) == 0 || bytes.Compare(key, r.GetEndKey()) < 0)
}

// Flush runs one ready round for every region: persist all raft state in one
// synced write, send messages, apply committed entries, answer clients.
func (s *Store) Flush() error {
	s.dirty = false
	s.stats.FlushRounds++
	type round struct {
		p  *peer
		rd raft.Ready
	}
	var rounds []round
	for _, p := range s.sortedPeers() {
		p.issueReads()
		if p.rn.HasReady() {
			rounds = append(rounds, round{p, p.rn.Ready()})
		}
	}
	// 1. Persist.
	for _, r := range rounds {
		if err := r.p.persist(r.rd); err != nil {
			return err
		}
	}
	clear(s.pendingSnaps)
	if err := s.eng.Sync(false); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", s.cfg.StoreID, err)
	}
	// 2. Send, 3. apply, 4. advance.
	for _, r := range rounds {
		r.p.sendMessages(r.rd.Messages)
	}
	for _, r := range rounds {
		if err := r.p.apply(r.rd); err != nil {
			return err
		}
		r.p.rn.Advance(r.rd)
	}
	for _, p := range s.sortedPeers() {
		p.serveReads()
		p.retireLostProposals(s.stats.FlushRounds)
		if err := p.maybeCompact(); err != nil {
			return err
		}
	}
	if err := s.eng.MaybeCheckpoint(); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", s.cfg.StoreID, err)
	}
	return nil
}

// RegionStatus is a snapshot of one local region for observers.
type RegionStatus struct {
	Region      *pb.Region
	Initialized bool // false for a placeholder peer waiting for a snapshot
	PeerID      uint64
	Leader      uint64 // raft id of the leader this peer knows, 0 if none
	IsLeader    bool
	Term        uint64
	Applied     uint64
	Commit      uint64
	Keys        [][]byte
	Digest      uint64 // hash of every key, value and version (with keys)
	Bytes       int64
}

// Regions describes every local region, sorted by region id.
func (s *Store) Regions(withKeys bool) []RegionStatus {
	var out []RegionStatus
	for _, p := range s.sortedPeers() {
		st := p.rn.BasicStatus()
		rs := RegionStatus{
			Region:      proto.Clone(p.region.Meta()).(*pb.Region),
			Initialized: storage.Initialized(p.region.Meta()),
			PeerID:      p.id,
			Leader:      st.Lead,
			IsLeader:    st.RaftState == raft.StateLeader,
			Term:        st.GetTerm(),
			Applied:     p.region.Applied(),
			Commit:      st.GetCommit(),
			Bytes:       p.region.Data().Bytes(),
		}
		if withKeys {
			h := fnv.New64a()
			var v [8]byte
			p.region.Data().Ascend(func(it kvItem) bool {
				rs.Keys = append(rs.Keys, it.Key)
				binary.LittleEndian.PutUint64(v[:], it.Version)
				h.Write(it.Key)
				h.Write([]byte{0})
				h.Write(it.Value)
				h.Write(v[:])
				return true
			})
			rs.Digest = h.Sum64()
		}
		out = append(out, rs)
	}
	return out
}

// raftLogger adapts slog to raft.Logger.
type raftLogger struct{ log *slog.Logger }

func (l *raftLogger) Debug(v ...any)                 {}
func (l *raftLogger) Debugf(format string, v ...any) {}
func (l *raftLogger) Info(v ...any)                  {}
func (l *raftLogger) Infof(format string, v ...any)  {}
func (l *raftLogger) Warning(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }
func (l *raftLogger) Warningf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}
func (l *raftLogger) Error(v ...any) { l.log.Error(fmt.Sprint(v...)) }
func (l *raftLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...))
}
func (l *raftLogger) Fatal(v ...any) { panic(fmt.Sprint(v...)) }
func (l *raftLogger) Fatalf(format string, v ...any) {
	panic(fmt.Sprintf(format, v...))
}
func (l *raftLogger) Panic(v ...any) { panic(fmt.Sprint(v...)) }
func (l *raftLogger) Panicf(format string, v ...any) {
	panic(fmt.Sprintf(format, v...))
}
