package raftstore

import (
	"fmt"
	"math"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
)

type kvItem = kv.Item

// peer is this store's replica of one region.
type peer struct {
	s      *Store
	region *storage.Region
	id     uint64
	rn     *raft.RawNode

	peerCache map[uint64]*pb.Peer // raft id -> peer, from meta and senders
	leader    uint64
	leading   bool

	proposals []*proposal // in propose order
	reads     []*readRequest
	batches   []*readBatch

	lastRegionHB  time.Time
	splitAskedAt  time.Time
	heardLeaderAt time.Time // when a leader last sent this peer an append, heartbeat or snapshot
	// heardAt: a leader's record of when each other peer last sent it a
	// raft message (reset when it becomes leader), for the down peers it
	// reports to PD (laggingPeers).
	heardAt map[uint64]time.Time
	// appendFloor: the lowest end of an append stepped since the last ready
	// round (raft's log may be that short now); MaxUint64 when none.
	appendFloor uint64
	inWork      bool // in the store's set of peers for the next ready round
	// Quiescence (quiet.go): a quiet peer does not tick.
	quiet       bool
	idleSince   time.Time // a leader: since when its region has been idle
	quietLeader *contact  // a quiet follower: its leader's store's contact
	askedPD     time.Time // when it last asked PD whether it is still a member
	named       []uint64  // the stores its region's meta names, as counted in Store.metaStores
	// jointSince: a leader, since when it has seen its region joint with
	// every entry applied (maybeLeaveJoint).
	jointSince time.Time
	// askID is that question's request id while it is unanswered (0:
	// none); askWait how long to wait for an answer before asking again.
	askID   uint64
	askWait time.Duration
	// heldCommits: the envelopes of a leader's appends that only tell a
	// caught-up follower the new commit index, held for the next tick
	// (holdCommitOnly).
	heldCommits []*pb.Envelope
	// toldCommits: by follower, the term and the highest commit index this
	// leader has sent or held for it (holdCommitOnly holds news only). A
	// slice: a region has a handful of peers.
	toldCommits []toldCommit
	idleCommit  uint64 // a leader: its commit index at the last idle check (maybeGoQuiet)
}

// toldCommit is what a leader last told a follower of its commit index.
type toldCommit struct{ to, term, commit uint64 }

func newPeer(s *Store, r *storage.Region, id uint64, rn *raft.RawNode) *peer {
	p := &peer{s: s, region: r, id: id, rn: rn, peerCache: map[uint64]*pb.Peer{}, appendFloor: math.MaxUint64,
		heardAt: map[uint64]time.Time{}}
	p.refreshPeerCache()
	return p
}

func (p *peer) regionID() uint64 { return p.region.ID() }

func (p *peer) isLeader() bool { return p.leading }

func (p *peer) refreshPeerCache() {
	for _, pp := range p.region.Meta().GetPeers() {
		p.peerCache[pp.Id] = pp
	}
	p.s.noteStores(p, p.region.Meta())
}

func (p *peer) rememberPeer(pp *pb.Peer) {
	if pp.GetId() != 0 && pp.GetStoreId() != 0 {
		if _, ok := p.peerCache[pp.Id]; !ok {
			p.peerCache[pp.Id] = pp.CloneVT()
		}
	}
}

func (p *peer) self() *pb.Peer {
	if pp := p.peerCache[p.id]; pp != nil {
		return pp
	}
	return &pb.Peer{Id: p.id, StoreId: p.s.cfg.StoreID}
}

func (p *peer) leaderPeer() *pb.Peer {
	if p.leader == 0 {
		return nil
	}
	if pp := p.peerCache[p.leader]; pp != nil {
		return pp.CloneVT()
	}
	return nil
}

// onTick runs the peer's periodic work: PD heartbeat and split check.
func (p *peer) onTick(now time.Time) {
	p.checkStale(now)
	if !p.leading {
		return
	}
	if p.lastRegionHB.IsZero() || now.Sub(p.lastRegionHB) >= p.s.cfg.RegionHeartbeatInterval {
		p.sendRegionHeartbeat()
	}
	p.maybeAskSplit(now)
	p.maybeLeaveJoint(now)
	p.maybeGoQuiet(now)
}

// maybeLeaveJoint proposes the leave of a joint configuration that raft
// did not. Raft leaves one by itself (AutoLeave): the leader proposes the
// leave once it applies the change that entered it, but only then; if that
// proposal was dropped (a leadership transfer was in progress) and the
// region has nothing else to apply, it would stay joint for good, and an
// idle region never sleeps while joint. So a leader whose region has been
// joint for an election timeout with every entry applied proposes the
// leave again (and again every election timeout). Raft refuses a second
// one while a membership change is pending (it appends an empty entry
// instead), so a repeat changes nothing.
func (p *peer) maybeLeaveJoint(now time.Time) {
	if !p.region.Meta().InJointConfig() {
		p.jointSince = time.Time{}
		return
	}
	last, _ := p.region.LastIndex()
	st := p.rn.BasicStatus()
	if st.LeadTransferee != 0 || st.Applied != last || p.region.Applied() != last {
		return // the leave may be on its way
	}
	if p.jointSince.IsZero() {
		p.jointSince = now
		return
	}
	if now.Sub(p.jointSince) < p.s.cfg.ElectionTick() {
		return
	}
	p.jointSince = now
	if err := p.rn.ProposeConfChange(&raftpb.ConfChangeV2{}); err != nil {
		return
	}
	p.s.log.Info("proposing to leave the joint configuration again", "region", p.regionID())
	p.s.wake(p)
	p.s.dirty = true
}

func (p *peer) sendRegionHeartbeat() {
	p.lastRegionHB = p.s.now()
	p.s.stats.RegionHeartbeatsOut++
	d := p.region.Data()
	hb := &pb.RegionHeartbeat{
		Region:          p.region.Meta().CloneVT(),
		Leader:          p.self().CloneVT(),
		ApproximateSize: uint64(d.Bytes()),
		ApproximateKeys: uint64(d.Len()),
		Term:            p.rn.BasicStatus().GetTerm(),
	}
	hb.PendingPeers, hb.DownPeers = p.laggingPeers()
	if p.s.bug.Fire(buggify.RegionHeartbeatDelay) {
		// The report reaches PD late, perhaps after a newer one.
		p.s.later(p.s.bug.Delay(500*time.Millisecond, 4*time.Second), func() { p.s.send(p.s.cfg.PD, hb) })
		return
	}
	p.s.send(p.s.cfg.PD, hb)
}

// pendingLag is how many committed entries a peer may miss and still count
// as caught up (appends in flight under load).
const pendingLag = 16

// laggingPeers lists, from the leader's raft progress, the peers that are
// behind, and the peers it has not heard from for an election timeout
// (heardAt): down. Not raft's RecentActive flag: check-quorum clears it on
// every peer each election timeout, and raft clears it on election, so a
// heartbeat sent just after that (a new leader reports at once; a report
// due on the tick of a check-quorum is, at every interval, when the two are
// in step) listed every follower as down. PD counts down peers out of a
// region's quorum. A peer the leader has not heard from since it became
// leader, or since the peer joined, counts from then. A quiet leader hears
// nothing from its quiet followers by design: it counts a peer as down
// only once the peer's store has been silent too (stores ping each other
// every election timeout), or has restarted since the peer last spoke (a
// replica that did not come back is not alive because its store is).
func (p *peer) laggingPeers() (pending, down []*pb.Peer) {
	st := p.rn.Status()
	now := p.s.now()
	for _, pp := range p.region.Meta().GetPeers() {
		if pp.GetId() == p.id {
			continue
		}
		pr, ok := st.Progress[pp.GetId()]
		if !ok {
			continue
		}
		if behind(pr, st.GetCommit()) {
			pending = append(pending, pp.CloneVT())
		}
		at, ok := p.heardAt[pp.GetId()]
		if !ok {
			at = now
			p.heardAt[pp.GetId()] = now
		}
		silent := now.Sub(at) >= p.s.cfg.ElectionTick()
		if silent && p.quiet && p.s.contactOf(pp.GetStoreId()).vouchesFor(at, now, p.s.cfg.QuietLeaderTimeout) {
			silent = false
		}
		if silent {
			down = append(down, pp.CloneVT())
		}
	}
	for id := range p.heardAt { // forget peers that left: order does not matter
		if p.region.Meta().PeerByID(id) == nil {
			delete(p.heardAt, id)
		}
	}
	return pending, down
}

// behind reports whether a peer with raft progress pr is not known to hold
// the log up to about commit: it has acknowledged nothing yet (match 0), the
// leader is still probing for where its log ends or sending it a snapshot,
// or it misses more than pendingLag committed entries. PD promotes a
// learner only once its leader stops listing it so: a learner just added,
// in a young region (whose log starts at a small index), is within
// pendingLag of the commit with match 0.
func behind(pr tracker.Progress, commit uint64) bool {
	return pr.Match == 0 || pr.State != tracker.StateReplicate || pr.Match+pendingLag < commit
}

// persist queues the durable part of a Ready: snapshot, entries, hard state.
func (p *peer) persist(rd *raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		pairs, err := p.s.takeReceivedSnapshot(p.regionID(), rd.Snapshot.GetMetadata().GetIndex())
		if err != nil {
			return err
		}
		if p.region.Meta().Initialized() {
			p.s.bug.Reach(buggify.SnapshotOverExisting)
		}
		if err := p.region.ApplySnapshot(rd.Snapshot, pairs); err != nil {
			return fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
		}
		if p.s.bug.Fire(buggify.SnapInstallCrash) {
			return buggify.Crash(buggify.SnapInstallCrash) // installed in memory, not synced
		}
		p.refreshPeerCache()
		p.s.stats.SnapshotsApplied++
		if h := p.s.hooks.SnapshotApplied; h != nil {
			h(cloneRegion(p.region.Meta()))
		}
		p.forgetProposalsIn(rd.Snapshot.GetMetadata().GetIndex())
	}
	if p.leading || len(p.proposals) > 0 {
		p.noteProposedEntries(rd.Entries)
	}
	if err := p.region.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		p.region.SetHardState(rd.HardState)
	}
	return nil
}

// sendsBeforeSync reports whether the messages of rd may leave before rd
// is made durable: only a leader's, and only when rd changes neither its
// term nor its vote (a vote or a new term must be durable before anyone
// hears of it) and carries no snapshot to send (one is cut from applied
// state, after the round). It is safe because a leader counts its own copy
// of an entry only once it is durable: followers' acknowledgements reach it
// after this round's sync (the store handles them in a later round), and
// an entry on a majority of followers alone is committed all the same. If
// the sync fails the store stops; the followers may hold entries the
// leader never made durable, which raft handles as for any crashed leader.
func (p *peer) sendsBeforeSync(rd *raft.Ready) bool {
	if p.rn.BasicStatus().RaftState != raft.StateLeader || len(rd.Messages) == 0 || !raft.IsEmptySnap(rd.Snapshot) {
		return false
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		hs := p.region.HardState()
		if rd.HardState.GetTerm() != hs.GetTerm() || rd.HardState.GetVote() != hs.GetVote() {
			return false
		}
	}
	for _, m := range rd.Messages {
		if m.GetType() == raftpb.MessageType_MsgSnap {
			return false
		}
	}
	return true
}

func (p *peer) sendMessages(msgs []*raftpb.Message) {
	term := p.rn.BasicStatus().GetTerm()
	for _, m := range msgs {
		if m.GetTerm() != 0 && m.GetTerm() < term {
			// Raft queued it before a message of a newer term arrived, in
			// the same round. Its entries may have been cut from the log
			// since (and their proposals answered StaleCommand): a peer
			// still at the old term must never receive them.
			p.s.stats.StaleTermMsgsDropped++
			p.s.bug.Reach(buggify.StaleTermMessageDropped)
			continue
		}
		to := p.peerCache[m.GetTo()]
		if to == nil {
			p.s.log.Warn("no address for raft peer", "region", p.regionID(), "peer", m.GetTo())
			continue
		}
		if m.GetType() == raftpb.MessageType_MsgSnap {
			p.s.startSnapshot(p, to, m)
			continue
		}
		env := p.raftEnvelope(to, m)
		if p.holdCommitOnly(m, env) {
			continue
		}
		p.s.env.Net.Send(env)
	}
}

// holdCommitOnly holds back, until the next tick, the envelope env of an
// append m that only tells a caught-up follower the new commit index: raft
// sends one to every follower each time the commit index moves, and the
// follower spends a ready round (a WAL write, an apply, an answer) on each.
// The next append or heartbeat to that follower carries the commit and
// replaces it; if none comes before the tick, the tick sends it as it was
// addressed, and so does the leader's next applied split or membership
// change (applyReady; a peer removed by it learns so from the commit).
// "Caught up": in raft's replicate state, its window of appends in flight
// open, its next index the leader's last plus one, and the commit news to
// it; any other empty append (a probe, the one a follower whose appends
// were lost gets on each heartbeat answer) goes out at once. It reports
// whether it held m; any other append or heartbeat drops a held message it
// makes redundant.
func (p *peer) holdCommitOnly(m *raftpb.Message, env *pb.Envelope) bool {
	t := m.GetType()
	if t != raftpb.MessageType_MsgApp && t != raftpb.MessageType_MsgHeartbeat {
		return false
	}
	for i, h := range p.heldCommits {
		if hm := h.GetRaft().GetMessage(); hm.GetTo() == m.GetTo() && hm.GetTerm() == m.GetTerm() && m.GetCommit() >= hm.GetCommit() {
			p.heldCommits = slices.Delete(p.heldCommits, i, i+1)
			break
		}
	}
	// Only news is held: an empty append that repeats a commit the
	// follower was told (the one raft sends on a heartbeat answer to a
	// follower whose appends were lost, to find out where it stands) goes
	// out at once.
	if !p.tellCommit(m) || t != raftpb.MessageType_MsgApp || len(m.GetEntries()) > 0 || !p.leading {
		return false
	}
	caughtUp := false
	p.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == m.GetTo() && pr.State == tracker.StateReplicate && !pr.MsgAppFlowPaused && pr.Next == m.GetIndex()+1 {
			caughtUp = true
		}
	})
	if !caughtUp {
		return false
	}
	p.s.stats.CommitsHeld++
	for i, h := range p.heldCommits {
		if h.GetRaft().GetMessage().GetTo() == m.GetTo() {
			p.heldCommits[i] = env
			return true
		}
	}
	p.heldCommits = append(p.heldCommits, env)
	return true
}

// tellCommit notes the commit index m tells its follower, and reports
// whether it is news to it: a commit higher than any this leader sent or
// held for it in m's term.
func (p *peer) tellCommit(m *raftpb.Message) bool {
	for i := range p.toldCommits {
		told := &p.toldCommits[i]
		if told.to != m.GetTo() {
			continue
		}
		if told.term == m.GetTerm() && m.GetCommit() <= told.commit {
			return false
		}
		told.term, told.commit = m.GetTerm(), m.GetCommit()
		return true
	}
	p.toldCommits = append(p.toldCommits, toldCommit{m.GetTo(), m.GetTerm(), m.GetCommit()})
	return true
}

// sendHeldCommits sends the appends holdCommitOnly held, if the peer is
// still in the term they were made in (led by it then: they are what a
// network could have delayed); those of an older term are dropped, never
// sent.
func (p *peer) sendHeldCommits() {
	if len(p.heldCommits) == 0 {
		return
	}
	term := p.rn.BasicStatus().GetTerm()
	for _, env := range p.heldCommits {
		if env.GetRaft().GetMessage().GetTerm() != term {
			p.s.stats.HeldCommitsDropped++
			continue
		}
		p.s.stats.HeldCommitsSent++
		p.s.env.Net.Send(env)
	}
	clear(p.heldCommits)
	p.heldCommits = p.heldCommits[:0]
}

// raftEnvelope addresses raft's message m to peer to, in the region as
// this peer knows it now.
func (p *peer) raftEnvelope(to *pb.Peer, m *raftpb.Message) *pb.Envelope {
	meta := p.region.Meta()
	env, rm := pb.NewRaftEnvelope(p.s.cfg.StoreID, to.StoreId)
	rm.RegionId, rm.FromPeer, rm.ToPeer, rm.RegionEpoch = p.regionID(), p.self(), to, meta.GetEpoch()
	rm.StartKey, rm.EndKey, rm.Message = meta.GetStartKey(), meta.GetEndKey(), m
	return env
}

func (p *peer) onSoftState(ss *raft.SoftState) {
	was := p.leading
	p.leader = ss.Lead
	p.leading = ss.RaftState == raft.StateLeader
	if h := p.s.hooks.LeaderChanged; h != nil {
		h(p.regionID(), ss.Lead)
	}
	if p.leading && !was {
		now := p.s.now()
		clear(p.heardAt)
		for _, pp := range p.region.Meta().GetPeers() {
			p.heardAt[pp.GetId()] = now
		}
		if p.s.bug.Counting() && p.s.incarnation > 1 && p.oldLifeUncommitted(p.rn.BasicStatus().GetCommit()) {
			p.s.bug.Reach(buggify.RestartedLeaderOldEntries)
		}
		if p.s.bug.Counting() && p.splitUnapplied() {
			p.s.bug.Reach(buggify.LeaderChangeDuringSplit) // a new leader, with a split to finish
		}
		p.sendRegionHeartbeat()
	}
	if was && !p.leading {
		// Those of this term go out: the followers learn the commits it
		// made. (A backstop: a leader steps down in its term in rn.Tick,
		// just after the tick sent what it held, or on its own removal,
		// after applyReady sent it.)
		p.sendHeldCommits()
		if p.s.bug.Counting() && (p.s.hasSplitRequest(p.regionID()) || p.splitUnapplied()) {
			p.s.bug.Reach(buggify.LeaderChangeDuringSplit)
		}
		p.s.forgetSplitRequests(p.regionID())
		// Raft forgets pending read-only requests when it steps down.
		for _, b := range p.batches {
			if !b.indexKnown {
				p.s.bug.Reach(buggify.DeposedLeaderRead)
				for _, r := range b.reads {
					p.replyErr(r.client, r.req.RequestId, p.notLeaderErr())
				}
			}
		}
		kept := p.batches[:0]
		for _, b := range p.batches {
			if b.indexKnown {
				kept = append(kept, b)
			}
		}
		p.batches = kept
	}
}

// maybeCompact trims the applied prefix of the raft log once it holds more
// than LogCompactEntries, keeping LogKeepEntries. A leader also keeps what
// its followers still need: the entries after a snapshot being sent (else a
// large region's snapshot is stale by the time it lands, and another is
// sent, and another), and the entries an active follower that is not far
// behind has yet to receive (one that is silent, or further behind than a
// few compaction windows, gets a snapshot anyway, and must not hold the log
// forever).
func (p *peer) maybeCompact() error {
	first, _ := p.region.FirstIndex()
	applied := p.region.Applied()
	if applied+1 <= first || applied+1-first <= p.s.cfg.LogCompactEntries {
		return nil
	}
	to := applied - p.s.cfg.LogKeepEntries
	if p.leading {
		slack := 4 * p.s.cfg.LogCompactEntries
		now := p.s.now()
		for id, pr := range p.rn.Status().Progress { // a minimum: order does not matter
			// Active: raft's RecentActive, or acknowledged entries in
			// this term (Match, reset at election) and heard from within
			// an election timeout. Check-quorum clears RecentActive on
			// every follower each election timeout, until it next hears
			// from it: a compaction in that instant would drop what a
			// follower close behind still needs (see laggingPeers).
			at, heard := p.heardAt[id]
			active := pr.RecentActive || (pr.Match > 0 && heard && now.Sub(at) < p.s.cfg.ElectionTick())
			switch {
			case id == p.id:
			case pr.State == tracker.StateSnapshot:
				to = min(to, pr.PendingSnapshot)
			case active && pr.Match+slack >= applied:
				to = min(to, pr.Match)
			}
		}
	}
	if to < first {
		return nil
	}
	if err := p.region.Compact(to); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
	}
	p.s.stats.LogCompactions++
	return nil
}

func (p *peer) notLeaderErr() *pb.RegionError {
	return &pb.RegionError{
		Message:   fmt.Sprintf("region %d: peer %d on store %d is not leader", p.regionID(), p.id, p.s.cfg.StoreID),
		NotLeader: &pb.NotLeader{RegionId: p.regionID(), Leader: p.leaderPeer()},
	}
}

func (p *peer) replyErr(client, reqID uint64, err *pb.RegionError) {
	p.s.sendKv(client, &pb.KvResponse{RequestId: reqID, RegionError: err})
}

// status describes the peer for observers, without its keys.
func (p *peer) status() RegionStatus {
	st := p.rn.BasicStatus()
	return RegionStatus{
		Region:      p.region.Meta().CloneVT(),
		Initialized: p.region.Meta().Initialized(),
		PeerID:      p.id,
		Leader:      st.Lead,
		IsLeader:    st.RaftState == raft.StateLeader,
		Term:        st.GetTerm(),
		Applied:     p.region.Applied(),
		Commit:      st.GetCommit(),
		Bytes:       p.region.Data().Bytes(),
		Quiet:       p.quiet,
	}
}
