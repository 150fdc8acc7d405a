package raftstore

import (
	"errors"
	"fmt"
	"slices"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
	"go.etcd.io/raft/v3/raftpb"
)

// onRaftMessage checks a raft message that sender (the transport's node
// id) delivered and routes it to the peer of its region.
func (s *Store) onRaftMessage(sender uint64, rm *pb.RaftMessage) {
	if rm.GetQuiet() != nil && rm.GetMessage() == nil {
		if err := s.checkNotice(sender, rm); err != nil {
			s.stats.MalformedMsgs++
			s.log.Warn("dropping quiet notice", "region", rm.GetRegionId(), "sender", sender, "err", err)
			return
		}
		s.onQuietNotice(rm)
		return
	}
	if rm.GetGcRegion() != nil && rm.GetMessage() == nil {
		if err := s.checkGCNotice(sender, rm); err != nil {
			s.stats.MalformedMsgs++
			s.log.Warn("dropping GC notice", "region", rm.GetRegionId(), "sender", sender, "err", err)
			return
		}
		s.onGCNotice(rm)
		return
	}
	if err := s.checkEnvelopeRaft(sender, rm); err != nil {
		s.stats.MalformedMsgs++
		s.log.Warn("dropping raft message", "region", rm.GetRegionId(), "sender", sender, "err", err)
		return
	}
	s.routeRaftMessage(rm)
}

// routeRaftMessage hands a raft message that passed the envelope checks to
// its peer, creating a placeholder peer when the rules allow.
func (s *Store) routeRaftMessage(rm *pb.RaftMessage) {
	msg := rm.GetMessage()
	p := s.peers[rm.GetRegionId()]
	if p == nil {
		if p = s.maybeCreatePeer(rm); p == nil {
			return
		}
	}
	if rm.GetToPeer().GetId() != p.id {
		if !s.replacedBy(p, rm) {
			s.stats.StalePeerMsgs++
			return
		}
		if p = s.maybeCreatePeer(rm); p == nil {
			return
		}
	}
	if err := p.checkRaftMessage(rm); err != nil {
		if errors.Is(err, errNotMember) {
			s.stats.StalePeerMsgs++
			if rm.GetRegionEpoch().GetConfVer() < p.region.Meta().GetEpoch().GetConfVer() {
				s.sendGCNotice(p, rm.GetFromPeer())
			}
			return
		}
		s.stats.MalformedMsgs++
		s.log.Warn("dropping raft message", "region", rm.GetRegionId(), "from_peer", msg.GetFrom(), "err", err)
		return
	}
	if msg.GetType() == raftpb.MessageType_MsgSnap {
		// Snapshots arrive as SnapshotChunks and are stepped by
		// deliverSnapshot once complete; a bare MsgSnap carries no keys.
		s.stats.SnapshotsRefused++
		return
	}
	p.rememberPeer(rm.GetFromPeer())
	if p.leading {
		p.heardAt[msg.GetFrom()] = s.now()
	}
	switch msg.GetType() {
	case raftpb.MessageType_MsgApp:
		p.heardLeaderAt = s.now()
		p.appendFloor = min(p.appendFloor, msg.GetIndex()+uint64(len(msg.GetEntries())))
	case raftpb.MessageType_MsgHeartbeat:
		p.heardLeaderAt = s.now()
	}
	if p.quiet && p.staysQuietFor(msg) {
		s.schedule(p)
	} else {
		if p.quiet {
			s.bug.Reach(buggify.QuietWokenByMessage)
		}
		s.wake(p)
	}
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
	if r := s.eng.Region(id); r != nil && r.State() == pb.PeerState_TOMBSTONE && !tombstoneAllows(r.Meta(), rm) {
		s.stats.StalePeerMsgs++ // the region was removed from this store
		s.bug.Reach(buggify.TombstoneRefused)
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
		if o.region.Meta().Initialized() && o.region.Meta().Overlaps(view) {
			s.stats.UnknownRegionMsgs++
			if o.region.Meta().GetEpoch().GetVersion() < rm.GetRegionEpoch().GetVersion() && msg.GetType() != raftpb.MessageType_MsgSnap {
				// Most likely a split this store has yet to apply: keep
				// the message for the peer that split will create.
				s.stash.hold(rm)
				s.bug.Reach(buggify.SplitMessageStashed)
			}
			s.log.Debug("holding back raft message for unknown region overlapping a local one",
				"region", id, "local", o.regionID(), "type", msg.GetType())
			return nil
		}
	}
	// A placeholder has no range and version 0 (uninitialized); it keeps the
	// conf_ver of the message that created it, to tell later whether PD or
	// a member knows of a newer membership that does not list it.
	meta := &pb.Region{Id: id, Epoch: &pb.Epoch{ConfVer: rm.GetRegionEpoch().GetConfVer()},
		Peers: []*pb.Peer{cloneRegionPeer(rm.GetToPeer())}}
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
	s.bug.Reach(buggify.PlaceholderCreated)
	s.log.Info("created uninitialized peer", "region", id, "peer", rm.GetToPeer().GetId(), "from_store", rm.GetFromPeer().GetStoreId())
	s.stash.drop(id) // older than this message; the leader resends
	return s.peers[id]
}

func cloneRegionPeer(p *pb.Peer) *pb.Peer { return p.CloneVT() }

// deliverStashed hands the messages held for a region just created to it.
func (s *Store) deliverStashed(regionID uint64) {
	for _, rm := range s.stash.take(regionID) {
		s.routeRaftMessage(rm) // checked when it arrived
	}
}

// snapshotOverlap says why a snapshot of region r for peer p would put a key
// in two regions here: its range overlaps another initialized local region,
// or another snapshot accepted since the last ready round. "" when none.
func (s *Store) snapshotOverlap(p *peer, r *pb.Region) string {
	for _, o := range s.sortedPeers() {
		if o == p || !o.region.Meta().Initialized() {
			continue
		}
		if o.region.Meta().Overlaps(r) {
			return fmt.Sprintf("snapshot of region %d %s overlaps local region %d %s", p.regionID(), r.RangeString(), o.regionID(), o.region.Meta().RangeString())
		}
	}
	// Snapshots accepted since the last ready round are not in storage yet.
	ids := make([]uint64, 0, len(s.pendingSnaps))
	for id := range s.pendingSnaps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if id != p.regionID() && s.pendingSnaps[id].Overlaps(r) {
			return fmt.Sprintf("snapshot of region %d overlaps a snapshot of region %d in flight", p.regionID(), id)
		}
	}
	return ""
}

// replacedBy destroys the local peer p when rm, for another peer id of p's
// region on this store, comes from a newer membership: this store was
// removed from the region and added back under a new id, and p (a learner
// removed before it caught up, or a replica that missed its removal) is
// stale. It reports whether p was destroyed.
func (s *Store) replacedBy(p *peer, rm *pb.RaftMessage) bool {
	if rm.GetRegionEpoch().GetConfVer() <= p.region.Meta().GetEpoch().GetConfVer() {
		return false
	}
	s.bug.Reach(buggify.StalePeerDestroyed)
	s.destroyPeer(p, p.region.Meta(), fmt.Sprintf("the region has a newer peer %d on this store", rm.GetToPeer().GetId()))
	return true
}
