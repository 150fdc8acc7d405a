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
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
)

// Stats counts what a store did and refused.
type Stats struct {
	UnknownRegionMsgs      uint64 // raft messages for a region this store does not have
	MalformedMsgs          uint64 // raft messages that broke a validation rule (docs/validation.md)
	StaleTermMsgsDropped   uint64 // outgoing raft messages of a term older than the peer's, dropped
	CommitsHeld            uint64 // appends that only carried a new commit index, held for the next tick
	HeldCommitsSent        uint64 // held appends sent at a tick (no later append or heartbeat carried the commit)
	HeldCommitsDropped     uint64 // held appends dropped because the peer's term moved on
	StalePeerMsgs          uint64 // raft messages for a different peer id of a known region
	SnapshotsRefused       uint64 // snapshots overlapping another region here
	PlaceholderPeers       uint64 // uninitialized peers created for unknown regions
	PlaceholdersTakenOver  uint64 // placeholders replaced by a local split
	RegionNotFound         uint64
	KeyNotInRegion         uint64
	EpochNotMatch          uint64
	NotLeader              uint64
	InvalidRequests        uint64
	StaleCommands          uint64
	SessionRepeats         uint64 // session writes answered from the stored result, not applied again
	SessionsExpiredRefused uint64 // session writes refused: expired or already answered
	ConfChangesProposed    uint64
	ConfChangesApplied     uint64
	ConfChangesSkipped     uint64 // committed conf changes every replica skipped (stale epoch, invalid)
	PeersDestroyed         uint64 // local peers removed from their region (tombstoned)
	GCNoticesSent          uint64 // told a peer that is no longer a member so
	SnapshotsStarted       uint64
	SnapshotsDeferred      uint64 // not started: peer backing off, too many in flight
	SnapshotsFailed        uint64 // transfers that failed or stalled
	SnapshotChunksSent     uint64
	SnapshotChunksResent   uint64
	SnapshotBytesSent      uint64
	SnapshotsReceived      uint64 // complete and checksummed
	SnapshotsCovered       uint64 // received at an index raft had committed: raft answers with its commit
	Quiesced               uint64 // times a peer went quiet
	Woken                  uint64 // times a quiet peer woke
	QuietNoticesIgnored    uint64 // quiet notices not from the leader as the region's meta places it
	Proposals              uint64
	ReadIndexRequests      uint64
	ReadsServed            uint64
	WritesApplied          uint64
	SnapshotsSent          uint64
	SnapshotsApplied       uint64
	Splits                 uint64
	FlushRounds            uint64
	LogCompactions         uint64
	RegionHeartbeatsOut    uint64
}

// Store hosts the peers of one node.
type Store struct {
	env   core.Env
	cfg   Config
	log   *slog.Logger
	eng   *storage.Engine
	peers map[uint64]*peer // by region id
	order []*peer          // the same peers, by region id
	work  []*peer          // peers woken since the last ready round

	// Buffers of the ready rounds, kept so that a round does not allocate
	// them again: spareWork is the array of the round before the last
	// (work collects into it next), rounds and early are Flush's.
	spareWork []*peer
	rounds    []readyRound
	early     []bool

	incarnation  uint64 // distinguishes this process's proposals from earlier ones
	life         uint64 // drawn at random at Open, sent in pings: tells this process from any other of the store (incarnation alone restarts on an empty disk)
	nextProposal uint64
	nextReadCtx  uint64

	bootstrapped  bool
	identDurable  bool  // its bootstrap is on disk: only then it sends store heartbeats (PD records it as bootstrapped)
	refused       error // PD refused the store's hello: it stopped (Err)
	hbFromPD      bool  // heartbeat intervals not configured: use PD's
	lastHello     time.Time
	lastStoreHB   time.Time
	dirty         bool
	stats         Stats
	raftLogger    raft.Logger
	splitRequests map[uint64]*splitRequest // by PD request id
	stash         *splitStash              // messages for regions a pending split will create
	pendingSnaps  map[uint64]*pb.Region    // ranges of snapshots accepted since the last ready round
	snapOut       *snapshotSender
	snapIn        *snapshotReceiver
	pdRequests    map[uint64]uint64 // RegionByID request id -> region id
	// The stores raft traffic is accepted from (and pinged): those PD last
	// listed, and those a local region names (metaStores: how many local
	// peers' regions name each).
	pdStores      map[uint64]bool
	metaStores    map[uint64]int
	heardFrom     map[uint64]*contact // when each store last sent anything
	lastPing      time.Time
	nextPDRequest uint64
	hooks         Hooks

	// Fault hooks and coverage (buggify.go); bug is nil in real mode.
	bug          *buggify.B
	deferred     []deferredWork // work a hook postponed, run on ticks
	crashPending error          // a hook's crash: the next ready round fails with it
	stalled      bool           // a hook holds the ready rounds back until the next tick
}

// Open recovers a store from env.FS/env.Dir. A store that has never
// bootstrapped asks PD for its regions on the first Tick.
func Open(env core.Env, cfg Config) (*Store, error) {
	hbFromPD := cfg.RegionHeartbeatInterval <= 0 && cfg.StoreHeartbeatInterval <= 0
	cfg.fill()
	if cfg.StoreID == 0 {
		return nil, fmt.Errorf("raftstore: store id must be set")
	}
	eng, err := storage.Open(env.FS, env.Dir, storage.Options{CheckpointBytes: cfg.CheckpointBytes, SessionLimits: cfg.SessionLimits})
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
		incarnation:   eng.Incarnation(),
		hbFromPD:      hbFromPD,
		splitRequests: map[uint64]*splitRequest{},
		stash:         newSplitStash(),
		pendingSnaps:  map[uint64]*pb.Region{},
		snapOut:       newSnapshotSender(),
		snapIn:        newSnapshotReceiver(),
		pdRequests:    map[uint64]uint64{},
		metaStores:    map[uint64]int{},
		heardFrom:     map[uint64]*contact{},
		raftLogger:    &raftLogger{log: log},
		bug:           env.Buggify,
	}
	if eng.Stats().TornTailCuts > 0 {
		s.bug.Reach(buggify.TornTailCut)
	}
	s.life = s.incarnation
	if env.Rand != nil {
		s.life = env.Rand.Uint64()
	}
	s.life = max(s.life, 1)
	if id := eng.Ident(); id != nil {
		if id.StoreId != cfg.StoreID {
			return nil, fmt.Errorf("raftstore: data in %s belongs to store %d, not %d", env.Dir, id.StoreId, cfg.StoreID)
		}
		s.bootstrapped, s.identDurable = true, true
		s.adoptHeartbeatInterval(id.GetHeartbeatIntervalMs())
		for _, rid := range eng.RegionIDs() {
			r := eng.Region(rid)
			if r.State() != pb.PeerState_NORMAL {
				continue
			}
			if err := s.startPeer(r); err != nil {
				return nil, err
			}
			if p := s.peers[rid]; s.bug.Counting() && p != nil && p.splitUnapplied() {
				s.bug.Reach(buggify.RestartWithSplitInLog)
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
	// MembershipChanged: a local replica applied a membership change; the
	// region is as it is now.
	MembershipChanged func(region *pb.Region)
	// PeerDestroyed: a local peer was removed from its region and
	// tombstoned; why says how it learned.
	PeerDestroyed func(region *pb.Region, peerID uint64, why string)
	// SnapshotStarted and SnapshotSent: a leader here began streaming a
	// snapshot of bytes to a store, and finished.
	SnapshotStarted func(regionID, toStore uint64, bytes int64)
	SnapshotSent    func(regionID, toStore uint64, bytes uint64)
	// WriteApplied: a local replica executed a client write of this
	// session and sequence (not a repeat answered from the session table),
	// with this result (the hook must not keep or change it).
	WriteApplied func(regionID uint64, session []byte, sequence uint64, result *pb.KvResponse)
	// SnapshotApplied: a local replica installed a snapshot; the region is
	// as the snapshot made it.
	SnapshotApplied func(region *pb.Region)
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
	if p.region.Meta().PeerByID(toPeer) == nil {
		return fmt.Errorf("raftstore: region %d has no peer %d", regionID, toPeer)
	}
	p.rn.TransferLeader(toPeer)
	s.wake(p)
	s.dirty = true
	return nil
}

// Close releases the engine's files.
func (s *Store) Close() error { return s.eng.Close() }

// setPDStores records the stores PD lists as the cluster's.
func (s *Store) setPDStores(ids []uint64) {
	s.pdStores = make(map[uint64]bool, len(ids))
	for _, id := range ids {
		s.pdStores[id] = true
	}
}

// noteStores counts the stores meta, the region of local peer p as it is
// now, names, in place of those it named before. A store no local region
// names any more, and that PD does not list (decommissioned), is neither
// pinged nor heard from again.
func (s *Store) noteStores(p *peer, meta *pb.Region) {
	var named []uint64
	for _, pp := range meta.GetPeers() {
		if !slices.Contains(named, pp.GetStoreId()) {
			named = append(named, pp.GetStoreId())
		}
	}
	s.forgetStores(p)
	for _, id := range named {
		s.metaStores[id]++
	}
	p.named = named
}

// forgetStores uncounts the stores local peer p's region named.
func (s *Store) forgetStores(p *peer) {
	for _, id := range p.named {
		if s.metaStores[id]--; s.metaStores[id] <= 0 {
			delete(s.metaStores, id)
		}
	}
	p.named = nil
}

// knownStore reports whether raft traffic from node id is accepted: it must
// be a store of the cluster, as PD or a local region says.
func (s *Store) knownStore(id uint64) bool { return s.pdStores[id] || s.metaStores[id] > 0 }

// Incarnation numbers this process life of the store (1, 2, ...): durable
// and raised at every open, so a proposal or snapshot of this life is never
// taken for one of an earlier life.
func (s *Store) Incarnation() uint64 { return s.incarnation }

// ID is the store id.
func (s *Store) ID() uint64 { return s.cfg.StoreID }

// Stats returns the store's counters.
func (s *Store) Stats() Stats { return s.stats }

// EngineStats returns the disk engine's counters.
func (s *Store) EngineStats() storage.Stats { return s.eng.Stats() }

// Bootstrapped reports whether the store has its initial regions.
func (s *Store) Bootstrapped() bool { return s.bootstrapped }

// Err is why the store stopped for good, or nil: PD refused its hello (a
// store id PD does not know, a decommissioned one, or one that bootstrapped
// before and is back on an empty disk). A stopped store does nothing more;
// its driver should report the error and exit.
func (s *Store) Err() error { return s.refused }

func (s *Store) now() time.Time { return s.env.Clock.Now() }

func (s *Store) send(to uint64, body pb.Body) {
	s.env.Net.Send(pb.NewEnvelope(s.cfg.StoreID, to, body))
}

// startPeer creates the raft node of a local region.
func (s *Store) startPeer(r *storage.Region) error {
	meta := r.Meta()
	self := meta.PeerOnStore(s.cfg.StoreID)
	if self == nil {
		return fmt.Errorf("raftstore: store %d: region %d lists no peer on this store", s.cfg.StoreID, r.ID())
	}
	// Raft panics on a log that cannot hold its own commit index, or an
	// applied index past it; only a damaged disk gives either.
	last, _ := r.LastIndex()
	if c := r.HardState().GetCommit(); c > last || r.Applied() > c {
		return fmt.Errorf("raftstore: store %d: region %d: %w: commit %d, applied %d, log to %d",
			s.cfg.StoreID, r.ID(), storage.ErrCorrupt, c, r.Applied(), last)
	}
	rc := &raft.Config{
		ID:                        self.Id,
		ElectionTick:              s.cfg.ElectionTicks,
		HeartbeatTick:             s.cfg.HeartbeatTicks,
		Storage:                   r,
		Applied:                   r.Applied(),
		MaxSizePerMsg:             s.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  s.cfg.MaxCommittedSizePerReady,
		MaxInflightMsgs:           s.cfg.MaxInflightMsgs,
		MaxInflightBytes:          32 << 20, // bounds what one follower takes in per round
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
	s.addPeer(p)
	s.wake(p)
	s.dirty = true
	return nil
}

// sortedPeers returns the peers in region id order. The slice is the
// store's own: do not change it, and do not keep it across a change of
// the peers.
func (s *Store) sortedPeers() []*peer { return s.order }

func cmpPeer(a *peer, id uint64) int { return cmpU64(a.regionID(), id) }

// addPeer makes p the store's peer of its region, replacing any other.
func (s *Store) addPeer(p *peer) {
	id := p.regionID()
	if old := s.peers[id]; old != nil && old != p {
		s.forgetStores(old)
	}
	s.peers[id] = p
	i, found := slices.BinarySearchFunc(s.order, id, cmpPeer)
	if found {
		s.order[i] = p
		return
	}
	s.order = slices.Insert(s.order, i, p)
}

// removePeer forgets the store's peer of region id.
func (s *Store) removePeer(id uint64) {
	if p := s.peers[id]; p != nil {
		s.forgetStores(p)
	}
	delete(s.peers, id)
	if i, found := slices.BinarySearchFunc(s.order, id, cmpPeer); found {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// wake puts p in the next ready round: something may have changed its
// raft state (a message stepped, a proposal, a read, a tick). A ready round
// visits only the peers woken since the last one, so its cost follows the
// work, not the number of regions.
func (s *Store) wake(p *peer) {
	if p.quiet {
		p.wakeUp(s.now())
	}
	s.schedule(p)
}

// schedule puts p in the next ready round without waking it if it is
// quiet (it has a message to answer that carries no news).
func (s *Store) schedule(p *peer) {
	if !p.inWork {
		p.inWork = true
		s.work = append(s.work, p)
	}
}

// takeWork returns the woken peers still on the store, by region id, and
// empties the set.
func (s *Store) takeWork() []*peer {
	work := s.work
	s.work, s.spareWork = s.spareWork[:0], nil
	slices.SortFunc(work, func(a, b *peer) int { return cmpU64(a.regionID(), b.regionID()) })
	kept := work[:0]
	for _, p := range work {
		p.inWork = false
		if s.peers[p.regionID()] == p {
			kept = append(kept, p)
		}
	}
	return kept
}

// Tick advances every peer's logical clock and runs periodic work.
func (s *Store) Tick() {
	now := s.now()
	if s.refused != nil {
		return
	}
	s.stalled = false
	if !s.bootstrapped {
		if s.lastHello.IsZero() || now.Sub(s.lastHello) >= s.cfg.ElectionTick() {
			s.lastHello = now
			s.send(s.cfg.PD, &pb.StoreHello{StoreId: s.cfg.StoreID, Join: s.cfg.Join})
		}
		return
	}
	s.runDeferred(now)
	for _, p := range s.sortedPeers() {
		if p.quiet {
			p.quietTick(now)
			continue
		}
		p.sendHeldCommits() // (and maybeGoQuiet, in onTick, counts idle time from the last commit)
		p.rn.Tick()
		p.onTick(now)
		s.schedule(p) // it may have gone quiet just now: stay so

	}
	s.pingStores(now)
	s.tickSnapshots(now)
	if s.identDurable && (s.lastStoreHB.IsZero() || now.Sub(s.lastStoreHB) >= s.cfg.StoreHeartbeatInterval) {
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

func (s *Store) sendStoreHeartbeat() {
	var leaders, regions uint64
	var used int64
	for _, p := range s.sortedPeers() {
		if !p.region.Meta().Initialized() {
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
	if s.crashPending != nil {
		return true
	}
	if s.stalled {
		return false // until the next tick
	}
	return s.dirty || len(s.work) > 0 || s.eng.NeedsSync()
}

// Receive handles one incoming envelope. It takes ownership of m: a write's
// key, value and session id stay in use until the write is answered (the
// leader applies the command it proposed), so the caller must hand over a
// message nobody else modifies, as a decoded one is.
func (s *Store) Receive(m *pb.Envelope) {
	s.dirty = true
	fromPD := m.GetFrom() == s.cfg.PD
	if s.knownStore(m.GetFrom()) {
		s.contactOf(m.GetFrom()).at = s.now()
	}
	switch b := m.GetBody().(type) {
	case *pb.Envelope_Raft:
		if !s.bootstrapped {
			// Peers come from PD's bootstrap answer first; raft traffic
			// before it would create placeholders that block it.
			s.stats.UnknownRegionMsgs++
			return
		}
		s.onRaftMessage(m.GetFrom(), b.Raft)
	case *pb.Envelope_SnapshotChunk:
		if s.bootstrapped {
			s.onSnapshotChunk(m.GetFrom(), b.SnapshotChunk)
		}
	case *pb.Envelope_SnapshotAck:
		s.onSnapshotAck(m.GetFrom(), b.SnapshotAck)
	case *pb.Envelope_KvRequest:
		if !s.bootstrapped {
			s.stats.RegionNotFound++
			s.sendKv(m.From, &pb.KvResponse{RequestId: b.KvRequest.GetRequestId(), RegionError: regionNotFoundErr(b.KvRequest.GetHeader().GetRegionId())})
			return
		}
		s.onKvRequest(m.From, b.KvRequest)
	case *pb.Envelope_Bootstrap:
		if fromPD {
			s.onBootstrap(b.Bootstrap)
		}
	case *pb.Envelope_AskSplitResponse:
		if fromPD {
			s.onAskSplitResponse(b.AskSplitResponse)
		}
	case *pb.Envelope_RegionOrder:
		if fromPD {
			s.onRegionOrder(b.RegionOrder)
		}
	case *pb.Envelope_RegionByIdResponse:
		if fromPD {
			s.onRegionByIDResponse(b.RegionByIdResponse)
		}
	case *pb.Envelope_StoreHeartbeatResponse:
		if fromPD {
			s.setPDStores(b.StoreHeartbeatResponse.GetStoreIds())
			s.wakeForPD(b.StoreHeartbeatResponse.GetWakeRegions())
		}
	case *pb.Envelope_StorePing:
		// Its arrival is the news (heardFrom, above), and the life it names.
		if s.knownStore(m.GetFrom()) {
			s.onStorePing(m.GetFrom(), b.StorePing)
		}
	default:
		s.stats.MalformedMsgs++
		s.log.Warn("dropping unexpected message", "from", m.GetFrom(), "type", fmt.Sprintf("%T", m.GetBody()))
		return
	}
	if !fromPD {
		switch m.GetBody().(type) {
		case *pb.Envelope_Bootstrap, *pb.Envelope_AskSplitResponse, *pb.Envelope_RegionOrder, *pb.Envelope_RegionByIdResponse,
			*pb.Envelope_StoreHeartbeatResponse:
			s.stats.MalformedMsgs++
			s.log.Warn("dropping a PD message not from PD", "from", m.GetFrom(), "type", fmt.Sprintf("%T", m.GetBody()))
		}
	}
}

// Flush runs one ready round for every region: persist all raft state in one
// synced write, send messages, apply committed entries, answer clients.
func (s *Store) Flush() error {
	if s.crashPending != nil {
		return s.crashPending
	}
	if s.stalled {
		return nil
	}
	if s.bug.Fire(buggify.SyncDelay) {
		s.stalled = true // a slow disk: this round waits for the next tick
		return nil
	}
	s.dirty = false
	s.stats.FlushRounds++
	rounds := s.rounds[:0]
	work := s.takeWork()
	for _, p := range work {
		p.issueReads()
		if p.rn.HasReady() {
			rounds = append(rounds, readyRound{p, p.rn.Ready()})
		}
	}
	s.rounds = rounds
	// 0. A leader's messages go out before the round's sync, so that its
	// followers write the entries while it does (the Raft thesis, 10.2.1):
	// a put waits for one sync instead of two in a row.
	early := slices.Grow(s.early[:0], len(rounds))[:len(rounds)]
	clear(early)
	s.early = early
	// The loops take each round by pointer: a Ready is too large to copy
	// four times a round.
	for i := range rounds {
		r := &rounds[i]
		if r.p.sendsBeforeSync(&r.rd) {
			r.p.sendMessages(r.rd.Messages)
			early[i] = true
		}
	}
	// 1. Persist.
	for i := range rounds {
		r := &rounds[i]
		if err := r.p.persist(&r.rd); err != nil {
			return err
		}
	}
	clear(s.pendingSnaps)
	if len(rounds) > 0 && s.bug.Fire(buggify.SyncCrashBefore) {
		return buggify.Crash(buggify.SyncCrashBefore)
	}
	if err := s.eng.Sync(); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", s.cfg.StoreID, err)
	}
	s.identDurable = s.bootstrapped // the identity is synced with the round that created the regions
	if len(rounds) > 0 && s.bug.Fire(buggify.SyncCrashAfter) {
		return buggify.Crash(buggify.SyncCrashAfter)
	}
	// 2. Send, 3. apply, 4. advance.
	for i := range rounds {
		r := &rounds[i]
		if !early[i] {
			r.p.sendMessages(r.rd.Messages)
		}
	}
	for i := range rounds {
		r := &rounds[i]
		if err := s.applyReady(r.p, &r.rd); err != nil {
			return err
		}
		r.p.rn.Advance(r.rd)
	}
	clear(rounds)         // the Readys' entries and messages are not the store's to keep
	clear(s.snapIn.ready) // snapshots raft did not take (stale) are dropped
	s.reportDeferredSnapshots()
	for _, p := range work {
		if s.peers[p.regionID()] != p {
			continue // destroyed in this round
		}
		p.appendFloor = math.MaxUint64 // the round persisted raft's log
		p.serveReads()
		p.retireLostProposals(s.stats.FlushRounds)
		if err := p.maybeCompact(); err != nil {
			return err
		}
		if p.rn.HasReady() { // more to do: entries past the size of one Ready, an automatic leave of a joint configuration
			s.wake(p)
		}
	}
	clear(work)
	s.spareWork = work[:0]
	if err := s.eng.MaybeCheckpoint(); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", s.cfg.StoreID, err)
	}
	return nil
}

// readyRound is one peer's part of a ready round.
type readyRound struct {
	p  *peer
	rd raft.Ready
}

// applyReady applies the committed entries of one peer's Ready, in order,
// and does the store's part of each one that needs it.
func (s *Store) applyReady(p *peer, rd *raft.Ready) error {
	p.observeReady(rd)
	for _, e := range rd.CommittedEntries {
		res, err := p.applyEntry(e)
		if err != nil {
			return err
		}
		if res != nil {
			// A split or a membership change: the followers hear of its
			// commit now, as without the hold (holdCommitOnly), so that
			// they apply it (a split's new region elects, a removed peer
			// removes itself) without waiting for a tick.
			p.sendHeldCommits()
		}
		switch r := res.(type) {
		case nil:
		case *splitApplied:
			if err := s.onSplitApplied(p, r); err != nil {
				return err
			}
		case *membershipChanged:
			if s.onMembershipChanged(p, r) {
				return nil // the peer is gone: the rest of its Ready is moot
			}
		default:
			return fmt.Errorf("raftstore: store %d: unknown apply result %T", s.cfg.StoreID, r)
		}
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
	Quiet       bool // not ticking: its region is idle (quiet.go)
}

// Region describes local region id, without its keys, and whether the
// store has it.
func (s *Store) Region(id uint64) (RegionStatus, bool) {
	p := s.peers[id]
	if p == nil {
		return RegionStatus{}, false
	}
	return p.status(), true
}

// MembershipChangePending reports whether the local peer of region id
// holds in its log a membership change it has not applied (committed or
// not), for observers: until every replica has applied it, replicas may
// count different voters (raft takes a change into effect on apply). False
// when no peer of the region is here.
func (s *Store) MembershipChangePending(id uint64) bool {
	p := s.peers[id]
	if p == nil {
		return false
	}
	last, _ := p.region.LastIndex()
	ents, err := p.region.Entries(p.region.Applied()+1, last+1, math.MaxUint64)
	if err != nil {
		return false
	}
	for _, e := range ents {
		switch e.GetType() {
		case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
			return true
		}
	}
	return false
}

// RaftTerm is the current raft term of the local peer of region id, for
// observers (the simulator checks every raft message against it); false
// when no peer of the region is here.
func (s *Store) RaftTerm(id uint64) (uint64, bool) {
	p := s.peers[id]
	if p == nil {
		return 0, false
	}
	return p.rn.BasicStatus().GetTerm(), true
}

// Regions describes every local region, sorted by region id, without its
// keys (Keys and Digest are empty).
func (s *Store) Regions() []RegionStatus {
	out := make([]RegionStatus, 0, len(s.peers))
	for _, p := range s.sortedPeers() {
		out = append(out, p.status())
	}
	return out
}

// RegionsWithKeys is Regions with every region's keys listed and a digest
// of its keys, values and versions, for comparing replicas.
func (s *Store) RegionsWithKeys() []RegionStatus {
	out := make([]RegionStatus, 0, len(s.peers))
	for _, p := range s.sortedPeers() {
		rs := p.status()
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
		out = append(out, rs)
	}
	return out
}

// ReportUnreachable tells every local leader that its peers on store
// storeID could not be reached (the driver's connection to that store
// failed): raft stops streaming appends to them optimistically and probes
// instead, until they answer again.
func (s *Store) ReportUnreachable(storeID uint64) {
	for _, p := range s.sortedPeers() {
		if !p.leading {
			continue
		}
		for _, pp := range p.region.Meta().GetPeers() {
			if pp.GetStoreId() == storeID && pp.GetId() != p.id {
				p.rn.ReportUnreachable(pp.GetId())
			}
		}
	}
	s.dirty = true
}
