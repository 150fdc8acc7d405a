package raftstore

import (
	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// The store's part of membership: acting on PD's orders, on membership
// changes its replicas applied, and destroying peers that are no longer
// members of their region.
//
// A removed peer is destroyed: its keys and raft log are dropped and a
// durable tombstone (the region's last meta known here) is left, before the
// store answers anything more about it. A message for a tombstoned region is
// dropped unless its epoch is newer than the tombstone's (the store was
// added back, with a new peer id). A peer that missed its own removal (it
// was cut off at the time) finds out one of two ways: a member of the region
// that hears from it at an older epoch sends it a GC notice with the
// region's current meta; or, after hearing no leader for StalePeerCheck (a
// learner or placeholder, which never campaigns: sooner), it asks PD for
// the region. Either way, if the newer meta does not list it, it
// destroys itself. Placeholder peers (created by a message, waiting for a
// snapshot) that never get one are collected the same way.
//
// A quiet peer (quiet.go) does neither: it sends nothing, and it hears from
// no leader by design. So the leader that applies a removal sends the
// removed peer a GC notice at once, and a quiet peer asks PD about its
// region every QuietStaleCheck, in case that notice was lost.

// onMembershipChanged does the store's part of an applied membership
// change. It reports whether the peer was destroyed (it removed itself).
func (s *Store) onMembershipChanged(p *peer, r *membershipChanged) bool {
	if h := s.hooks.MembershipChanged; h != nil {
		h(cloneRegion(r.meta))
	}
	if r.removedSelf {
		s.bug.Reach(buggify.PeerRemovedItself)
		s.destroyPeer(p, r.meta, "removed from its region")
		return true
	}
	if p.leading {
		p.sendRegionHeartbeat() // PD follows the change at once
		// A removed peer hears nothing more from the group: tell it. If
		// the notice is lost, it finds out from PD (checkStale, or
		// checkStaleQuiet while quiet). The commit of its removal went out
		// first (applyReady sends what holdCommitOnly held): a peer that
		// hears it applies its own removal.
		for _, gone := range r.removed {
			s.sendGCNotice(p, gone)
		}
		if r.meta.InJointConfig() && s.bug.Fire(buggify.JointTransfer) {
			p.transferAway() // the next leader must take the group out of the joint configuration
		}
	}
	return false
}

// destroyPeer removes a local peer: tombstone, keys and log dropped, its
// raft node gone, everything the store kept for it forgotten. last is the
// newest meta of the region known here, kept in the tombstone.
func (s *Store) destroyPeer(p *peer, last *pb.Region, why string) {
	id := p.regionID()
	tomb := cloneRegion(last)
	if tomb.GetEpoch().Older(p.region.Meta().GetEpoch()) {
		tomb = cloneRegion(p.region.Meta())
	}
	p.region.Tombstone(tomb)
	p.forgetQuestion()
	s.removePeer(id)
	s.abortSnapshots(id)
	s.stash.drop(id)
	s.forgetSplitRequests(id)
	delete(s.pendingSnaps, id)
	// Reads can be retried elsewhere; proposals still in flight are left to
	// the client's timeout: whether they commit is up to the group.
	for _, b := range p.batches {
		for _, r := range b.reads {
			p.replyErr(r.client, r.req.GetRequestId(), regionNotFoundErr(id))
		}
	}
	for _, r := range p.reads {
		p.replyErr(r.client, r.req.GetRequestId(), regionNotFoundErr(id))
	}
	s.stats.PeersDestroyed++
	s.dirty = true
	s.log.Info("peer destroyed", "region", id, "peer", p.id, "reason", why, "tombstone_conf_ver", tomb.GetEpoch().GetConfVer())
	if h := s.hooks.PeerDestroyed; h != nil {
		h(cloneRegion(tomb), p.id, why)
	}
}

// tombstoneAllows decides whether a message for a region tombstoned here may
// create a peer again: only when its epoch is newer than the tombstone's, or
// names as member a peer the tombstone lists (the store was added back).
func tombstoneAllows(tomb *pb.Region, rm *pb.RaftMessage) bool {
	e, t := rm.GetRegionEpoch(), tomb.GetEpoch()
	if e.GetConfVer() > t.GetConfVer() {
		return true
	}
	return e.GetConfVer() == t.GetConfVer() && tomb.PeerByID(rm.GetToPeer().GetId()) != nil
}

// sendGCNotice tells peer to, which this member no longer counts as one (it
// heard from it at an older epoch, or has just removed it), the region as
// it is now.
func (s *Store) sendGCNotice(p *peer, to *pb.Peer) {
	s.stats.GCNoticesSent++
	s.bug.Reach(buggify.GCNoticeSent)
	meta := p.region.Meta()
	s.send(to.GetStoreId(), &pb.RaftMessage{
		RegionId:    p.regionID(),
		FromPeer:    p.self(),
		ToPeer:      to.CloneVT(),
		RegionEpoch: meta.GetEpoch(),
		StartKey:    meta.GetStartKey(),
		EndKey:      meta.GetEndKey(),
		GcRegion:    cloneRegion(meta),
	})
}

// onGCNotice destroys the local peer the notice is for if the notice's
// region is newer than what the peer knows and does not list it.
func (s *Store) onGCNotice(rm *pb.RaftMessage) {
	p := s.peers[rm.GetRegionId()]
	g := rm.GetGcRegion()
	if p == nil || p.id != rm.GetToPeer().GetId() || g.GetId() != rm.GetRegionId() {
		return
	}
	s.maybeDestroyStale(p, g, "a member said it is no longer one")
}

// maybeDestroyStale destroys p if newer, a newer state of its region, does
// not list it, and reports whether it did.
func (s *Store) maybeDestroyStale(p *peer, newer *pb.Region, why string) bool {
	if newer.PeerByID(p.id) != nil {
		return false
	}
	if newer.GetEpoch().GetConfVer() <= p.region.Meta().GetEpoch().GetConfVer() {
		return false // not newer in membership: it cannot know about this peer's removal
	}
	s.bug.Reach(buggify.StalePeerDestroyed)
	s.destroyPeer(p, newer, why)
	return true
}

// checkStale asks PD about a peer that has heard nothing from a leader for
// StalePeerCheck (placeholders included). A learner, or any peer whose
// leader went on without it, may keep believing in a leader that no longer
// talks to it: what counts is when it last heard from one. It asks every
// StalePeerCheck; a question PD left unanswered (the question or the
// answer lost, PD cut off) is asked again after an election timeout, then
// after twice as long each time, up to StalePeerCheck (askDue).
//
// A peer that never campaigns (a learner, or a placeholder: raft lets
// neither stand) asks sooner. A voter that missed its removal finds out by
// itself: once it hears no leader it campaigns every election timeout, and
// a member that hears it answers with a GC notice. A learner sends no one
// anything, so when the leader's one GC notice is lost PD is its only way
// to find out, and a whole StalePeerCheck (started over by each restart of
// its store) keeps a removed replica long after the faults heal (swarm seed
// 2207). It asks after staleFirstAsk of silence, then after twice as long
// each time, up to every StalePeerCheck: a learner cut off from a live
// group asks PD a few more times, no more often than that.
func (p *peer) checkStale(now time.Time) {
	if p.leading {
		p.heardLeaderAt = now
		return
	}
	if p.heardLeaderAt.IsZero() {
		p.heardLeaderAt = now // a new peer, or a new life of the store
		return
	}
	silent := now.Sub(p.heardLeaderAt)
	first, period := p.s.cfg.StalePeerCheck, p.s.cfg.StalePeerCheck
	if !p.campaigns() {
		first = min(period, staleFirstAsk*p.s.cfg.ElectionTick())
		period = min(period, max(first, silent/2))
	}
	if silent < first || !p.askDue(now, period) {
		return
	}
	p.askPD(now)
}

// staleFirstAsk is how many election timeouts a peer that never campaigns
// waits without hearing a leader before it asks PD (checkStale): past the
// time a live group takes to elect a leader that then talks to it.
const staleFirstAsk = 3

// campaigns reports whether raft lets the peer stand for election: it is a
// voter (or a voter on its way in or out) of its region as it knows it. A
// learner never campaigns, nor does a placeholder, whatever role the
// message that created it named: its raft has no membership until its
// snapshot.
func (p *peer) campaigns() bool {
	meta := p.region.Meta()
	self := meta.PeerByID(p.id)
	return meta.Initialized() && self != nil && self.GetRole() != pb.PeerRole_LEARNER
}

// checkStaleQuiet is checkStale for a quiet peer, leader or follower: it
// hears from no leader by design, so it asks PD only every QuietStaleCheck
// (a quiet region's replicas cost PD about what its leader's reports do). A
// quiet follower whose removal it missed (the leader's GC notice lost), or
// a quiet leader the others deposed and removed while it was cut off,
// would otherwise keep its range on the store for good.
func (p *peer) checkStaleQuiet(now time.Time) {
	if now.Sub(p.heardLeaderAt) < p.s.cfg.QuietStaleCheck || !p.askDue(now, p.s.cfg.QuietStaleCheck) {
		return
	}
	p.askPD(now)
}

// askDue reports whether a peer that asks PD every period should ask now: a
// period after its last question or, while that question is unanswered,
// sooner (askPD).
func (p *peer) askDue(now time.Time, period time.Duration) bool {
	wait := period
	if p.askID != 0 {
		wait = min(p.askWait, period)
	}
	return now.Sub(p.askedPD) >= wait
}

// askPD asks PD for the peer's region (onRegionByIDResponse). A question
// still unanswered is dropped and asked again: the next one waits twice as
// long for its answer, the first an election timeout.
func (p *peer) askPD(now time.Time) {
	if p.askID != 0 {
		p.askWait = min(2*p.askWait, max(p.s.cfg.StalePeerCheck, p.s.cfg.QuietStaleCheck))
	} else {
		p.askWait = p.s.cfg.ElectionTick()
	}
	p.forgetQuestion()
	p.askedPD = now
	p.s.nextPDRequest++
	id := p.s.nextPDRequest
	p.askID = id
	p.s.pdRequests[id] = p.regionID()
	p.s.send(p.s.cfg.PD, &pb.RegionByIDRequest{RequestId: id, RegionId: p.regionID()})
}

// forgetQuestion drops p's unanswered question to PD, if any.
func (p *peer) forgetQuestion() {
	if p.askID != 0 {
		delete(p.s.pdRequests, p.askID)
		p.askID = 0
	}
}

func (s *Store) onRegionByIDResponse(resp *pb.RegionByIDResponse) {
	id, ok := s.pdRequests[resp.GetRequestId()]
	if !ok {
		return
	}
	delete(s.pdRequests, resp.GetRequestId())
	p := s.peers[id]
	if p == nil {
		return
	}
	if p.askID == resp.GetRequestId() {
		p.askID = 0
	}
	if resp.GetRegion() == nil {
		// PD knows no such region. A placeholder (no data) for it goes:
		// were it real, the next message from its leader creates it again
		// (its tombstone allows the same peer at the same conf_ver).
		if !p.region.Meta().Initialized() {
			s.destroyPeer(p, p.region.Meta(), "a placeholder for a region PD does not know")
			return
		}
		// An initialized peer stays: its region was made by a split this
		// replica applied, which PD has not been told of yet (the report
		// is late or lost). It says nothing about this peer's membership.
		s.bug.Reach(buggify.PeerUnknownToPD)
		return
	}
	if resp.GetRegion().GetId() != id {
		return
	}
	if s.maybeDestroyStale(p, resp.GetRegion(), "PD's region no longer lists it") {
		return
	}
	if p.quiet && p.region.Meta().GetEpoch().Older(resp.GetRegion().GetEpoch()) {
		// Still a member, but the region went on without this replica:
		// awake, it hears from the group or elects.
		s.wake(p)
	}
}

// onRegionOrder carries out an operator step PD sent this region's leader:
// a membership change or a leadership transfer, if the region is still at
// the epoch the order was made for.
func (s *Store) onRegionOrder(o *pb.RegionOrder) {
	p := s.peers[o.GetRegionId()]
	if p == nil || !p.leading {
		return
	}
	meta := p.region.Meta()
	if !o.GetRegionEpoch().Equal(meta.GetEpoch()) {
		s.bug.Reach(buggify.StaleOrderIgnored)
		s.log.Debug("stale order ignored", "region", o.GetRegionId(), "order_epoch", o.GetRegionEpoch().Describe(), "epoch", meta.GetEpoch().Describe())
		return
	}
	switch {
	case o.GetChangePeers() != nil:
		if s.bug.Fire(buggify.ConfProposeDrop) {
			return // PD sends it again with the region's next heartbeat
		}
		if err := p.proposeChangePeers(o.GetChangePeers()); err != nil {
			s.log.Info("membership change not proposed", "region", o.GetRegionId(), "err", err)
		}
	case o.GetTransferLeader() != nil:
		if s.bug.Fire(buggify.TransferOrderDrop) {
			return
		}
		to := meta.PeerByID(o.GetTransferLeader().GetId())
		if to == nil || to.GetRole() != pb.PeerRole_VOTER || to.GetId() == p.id {
			s.log.Info("leader transfer refused", "region", o.GetRegionId(), "to", o.GetTransferLeader().GetId())
			return
		}
		p.rn.TransferLeader(to.GetId())
		s.wake(p)
	}
	s.dirty = true
}
