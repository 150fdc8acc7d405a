package raftstore

import (
	"encoding/binary"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// Quiescence (TiKV calls it hibernation, CockroachDB quiescence). A store
// holds many regions and most are idle; an idle raft group still ticks and
// heartbeats several times a second on every replica. So when a region has
// been idle for QuietAfter — its leader has no proposals, reads, membership
// work, snapshot or leadership transfer, every peer has acknowledged the
// whole log, and all of it is applied — the leader tells each peer it goes
// quiet at (term, index) and stops ticking; a peer at exactly that term and
// index, following that leader, stops too. A quiet peer costs nothing per
// tick but a comparison.
//
// Anything wakes a quiet peer: a raft message for it, a proposal, a read, an
// order from PD. A leader that wakes heartbeats at once (a ReadIndex whose
// answer nobody waits for makes raft broadcast one), which wakes its
// followers. What quiescence must not do is leave a region without a leader:
//   - a quiet follower whose leader's store dies or is cut off hears nothing,
//     so stores ping each other every election timeout, and a quiet follower
//     whose leader's store has been silent for QuietLeaderTimeout wakes up
//     and, hearing no leader, elects one;
//   - a quiet leader cut off from its followers stays quiet (it cannot know),
//     but serves nothing: a read needs a quorum's heartbeat answers, a write
//     a quorum's acknowledgement, and the first request wakes it, after
//     which check-quorum makes it step down;
//   - a store that restarts starts every peer awake, and its pings carry a
//     new life, which wakes the quiet followers whose leader it held and the
//     quiet leaders with a replica on it;
//   - a removed quiet peer hears nothing more from its group: the leader
//     sends it a GC notice, and a quiet peer asks PD every QuietStaleCheck
//     whether it is still a member (membership.go).
// A quiet leader still reports to PD every QuietHeartbeatFactor region
// heartbeat intervals, and PD wakes the regions it has operators for, so
// PD's operators can reach it.

// quietEnabled reports whether regions may go quiet.
func (s *Store) quietEnabled() bool { return s.cfg.QuietAfter > 0 }

// maybeGoQuiet lets an idle leader go quiet, once it has been idle for
// QuietAfter.
func (p *peer) maybeGoQuiet(now time.Time) {
	if !p.s.quietEnabled() || !p.idle() {
		p.idleSince = time.Time{}
		return
	}
	// Idle at this tick, but something committed since the last one: the
	// idle time starts now. Otherwise a region written between every two
	// ticks would go quiet with its notice right behind a commit its
	// followers had just heard of (they ignore a notice with a round still
	// to run, then wake the leader, or, their answers lost, elect).
	if c := p.rn.BasicStatus().GetCommit(); c != p.idleCommit {
		p.idleCommit = c
		p.idleSince = time.Time{}
	}
	if p.idleSince.IsZero() {
		p.idleSince = now
		return
	}
	if now.Sub(p.idleSince) < p.s.cfg.QuietAfter {
		return
	}
	st := p.rn.BasicStatus()
	last, _ := p.region.LastIndex()
	meta := p.region.Meta()
	for _, pp := range meta.GetPeers() {
		if pp.GetId() == p.id {
			continue
		}
		p.s.send(pp.GetStoreId(), &pb.RaftMessage{
			RegionId:    p.regionID(),
			FromPeer:    p.self(),
			ToPeer:      pp,
			RegionEpoch: meta.GetEpoch(),
			StartKey:    meta.GetStartKey(),
			EndKey:      meta.GetEndKey(),
			Quiet:       &pb.QuietNotice{Term: st.GetTerm(), Index: last},
		})
	}
	p.quiet = true
	p.s.stats.Quiesced++
}

// idle reports whether the leader's region has nothing going on: nothing
// waiting here, and every peer holding, and every entry applied, all of the
// log.
func (p *peer) idle() bool {
	if !p.leading || len(p.proposals) > 0 || len(p.reads) > 0 || len(p.batches) > 0 || p.region.Meta().InJointConfig() {
		return false
	}
	if thr := p.s.cfg.SplitThreshold; thr > 0 && p.region.Data().Bytes() >= thr {
		return false // a split is due; the split checker runs on ticks
	}
	for _, t := range p.s.snapOut.out {
		if t.key.region == p.regionID() {
			return false
		}
	}
	last, _ := p.region.LastIndex()
	st := p.rn.BasicStatus()
	if st.LeadTransferee != 0 || st.GetCommit() != last || st.Applied != last || p.region.Applied() != last {
		return false
	}
	// Every peer must hold the whole log. Not whether it answered lately:
	// check-quorum clears that flag every election timeout, and a peer that
	// is gone wakes the region when it comes back (its pre-vote does).
	caughtUp := true
	p.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id != p.id && (pr.Match != last || pr.State != tracker.StateReplicate) {
			caughtUp = false
		}
	})
	return caughtUp
}

// onQuietNotice lets a follower go quiet with its leader, if it is exactly
// where the leader is. The notice must come from the leader this follower
// knows, as the region's meta places it: that peer, on the store that sent
// it (checkNotice), at the region's epoch. The follower then watches that
// store's contact record, taken from its own meta. A notice from anyone
// else (a store that only claims the leader's peer id) is ignored and
// counted: taking it would tie the follower's wake-up to a store that does
// not hold the leader, and leave the region asleep without one when the
// real leader's store dies.
func (s *Store) onQuietNotice(rm *pb.RaftMessage) {
	p := s.peers[rm.GetRegionId()]
	if p == nil || p.id != rm.GetToPeer().GetId() || p.leading || p.quiet {
		return
	}
	n := rm.GetQuiet()
	st := p.rn.BasicStatus()
	meta := p.region.Meta()
	lead := meta.PeerByID(st.Lead)
	from := rm.GetFromPeer()
	if st.Lead == 0 || from.GetId() != st.Lead || lead == nil || lead.GetStoreId() != from.GetStoreId() ||
		!rm.GetRegionEpoch().Equal(meta.GetEpoch()) {
		s.stats.QuietNoticesIgnored++
		s.log.Debug("quiet notice not from the leader ignored", "region", p.regionID(), "from_peer", from.GetId(),
			"from_store", from.GetStoreId(), "leader", st.Lead, "leader_store", lead.GetStoreId())
		return
	}
	last, _ := p.region.LastIndex()
	if st.GetTerm() != n.GetTerm() || last != n.GetIndex() ||
		st.GetCommit() != n.GetIndex() || p.region.Applied() != n.GetIndex() || p.rn.HasReady() {
		return
	}
	p.quiet = true
	p.quietLeader = s.contactOf(lead.GetStoreId())
	s.stats.Quiesced++
}

// staysQuietFor reports whether a quiet peer may answer msg and stay quiet:
// msg carries no news. The leader heartbeats in the round it goes quiet,
// after its notice, and the answers come back after it went quiet; a
// heartbeat that asks nothing (no read context) and commits nothing new,
// from the leader the peer went quiet with, and the answer to one, are the
// only such messages. Anything else wakes the peer, so a leader that woke
// (its wake-up heartbeat carries a read context) or has entries to send
// wakes its followers.
func (p *peer) staysQuietFor(msg *raftpb.Message) bool {
	st := p.rn.BasicStatus()
	if msg.GetTerm() != st.GetTerm() || len(msg.GetContext()) != 0 {
		return false
	}
	switch msg.GetType() {
	case raftpb.MessageType_MsgHeartbeat:
		return !p.leading && msg.GetFrom() == st.Lead && msg.GetCommit() == st.GetCommit()
	case raftpb.MessageType_MsgHeartbeatResp:
		return p.leading
	}
	return false
}

// wakeUp makes a quiet peer tick again; a leader heartbeats at once. A
// leader heard nothing from its quiet followers while it slept: each one
// its store vouches for (not silent, in the life the leader last heard the
// peer in) counts as heard now, as the quiet rule took it (laggingPeers),
// so that its next report does not list them down before they could
// answer; any other stays as it was.
func (p *peer) wakeUp(now time.Time) {
	p.quiet = false
	p.idleSince = time.Time{}
	p.heardLeaderAt = now
	p.s.stats.Woken++
	if p.leading {
		for _, pp := range p.region.Meta().GetPeers() {
			if at, ok := p.heardAt[pp.GetId()]; ok && pp.GetId() != p.id &&
				p.s.contactOf(pp.GetStoreId()).vouchesFor(at, now, p.s.cfg.QuietLeaderTimeout) {
				p.heardAt[pp.GetId()] = now
			}
		}
	}
	if p.leading && p.rn.BasicStatus().RaftState == raft.StateLeader {
		// A read index makes raft heartbeat every follower now; its answer
		// matches no read batch and is dropped.
		p.s.nextReadCtx++
		ctx := make([]byte, 17)
		ctx[0] = 'w'
		binary.BigEndian.PutUint64(ctx[1:], p.s.incarnation)
		binary.BigEndian.PutUint64(ctx[9:], p.s.nextReadCtx)
		p.rn.ReadIndex(ctx)
	}
}

// quietTick is a tick of a quiet peer: a leader still reports to PD, but
// QuietHeartbeatFactor times more seldom; a follower wakes if its leader's
// store has gone silent; either asks PD, every QuietStaleCheck, whether it
// is still a member (checkStaleQuiet).
func (p *peer) quietTick(now time.Time) {
	p.checkStaleQuiet(now)
	if p.leading {
		if now.Sub(p.lastRegionHB) >= time.Duration(p.s.cfg.QuietHeartbeatFactor)*p.s.cfg.RegionHeartbeatInterval {
			p.sendRegionHeartbeat()
		}
		return
	}
	if p.quietLeader.silent(now, p.s.cfg.QuietLeaderTimeout) {
		p.s.bug.Reach(buggify.QuietWokenBySilentStore)
		p.s.wake(p)
	}
}

// wakeForPD wakes the local leaders of regions PD has an operator for, so
// that they report now and get PD's order in the answer (a quiet leader
// reports seldom). PD names them in its answers to store heartbeats.
func (s *Store) wakeForPD(regions []uint64) {
	for _, id := range regions {
		p := s.peers[id]
		if p == nil || !p.leading {
			continue
		}
		if p.quiet {
			s.wake(p)
		}
		p.lastRegionHB = time.Time{} // report at the next tick
	}
}

// contact is when this store last heard anything from another store, and
// which life of it (a process start: StorePing.life). A quiet follower
// keeps its leader's store's, so its tick is a comparison.
type contact struct {
	at        time.Time
	life      uint64    // the store's life, from its last ping; 0 before the first
	retired   uint64    // the life it replaced: a late ping of it is no restart
	lifeSince time.Time // when that life was first heard, if it replaced another
}

// vouchesFor reports whether the store still speaks for a quiet peer on it
// last heard from at heard: the store is not silent, and has not restarted
// since (a peer that did not come back from a restart is not alive because
// its store is).
func (c *contact) vouchesFor(heard, now time.Time, timeout time.Duration) bool {
	return !c.silent(now, timeout) && !c.lifeSince.After(heard)
}

// onStorePing notes the life of the store that sent a ping. A new one (the
// store restarted) wakes every local quiet peer that counts on the old one:
// a quiet leader with a replica there (which may not have come back: once
// awake, the leader hears from it, or lists it down), and a quiet follower
// whose leader was there (its peer came back a follower, if at all).
func (s *Store) onStorePing(from uint64, ping *pb.StorePing) {
	c := s.contactOf(from)
	life := ping.GetLife()
	if life == 0 || life == c.life || life == c.retired {
		return
	}
	restarted := c.life != 0
	c.life, c.retired = life, c.life
	if !restarted {
		return // the first ping this life of ours hears from it
	}
	c.lifeSince = s.now()
	for _, p := range s.sortedPeers() {
		if !p.quiet {
			continue
		}
		if p.leading && p.region.Meta().PeerOnStore(from) != nil || !p.leading && p.quietLeader == c {
			s.wake(p)
		}
	}
}

// contactOf returns the contact record of store id, creating it (never
// heard from) the first time.
func (s *Store) contactOf(id uint64) *contact {
	c := s.heardFrom[id]
	if c == nil {
		c = &contact{}
		s.heardFrom[id] = c
	}
	return c
}

// silent reports whether the store has sent this store nothing for
// QuietLeaderTimeout (or ever).
func (c *contact) silent(now time.Time, timeout time.Duration) bool {
	return c.at.IsZero() || now.Sub(c.at) >= timeout
}

// pingStores tells every other store of the cluster, once an election
// timeout, that this one is alive.
func (s *Store) pingStores(now time.Time) {
	if !s.quietEnabled() || now.Sub(s.lastPing) < s.cfg.ElectionTick() {
		return
	}
	s.lastPing = now
	var ids []uint64
	for id := range s.pdStores {
		ids = append(ids, id)
	}
	for id := range s.metaStores {
		if !s.pdStores[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if id != s.cfg.StoreID {
			s.send(id, &pb.StorePing{Life: s.life})
		}
	}
}
