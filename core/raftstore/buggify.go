package raftstore

import (
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// The store's side of the fault hooks (core/buggify; docs/testing.md): work
// a hook postponed, a crash a hook asked for outside a ready round, a ready
// round held back until the next tick, and the coverage checks that need
// to look at a region's log. In real mode s.bug is nil: none of this runs.

// deferredWork is something a hook postponed: it runs at the first tick at
// or after due, in the order it was postponed.
type deferredWork struct {
	due time.Time
	run func()
}

// later runs fn at the first tick d from now.
func (s *Store) later(d time.Duration, fn func()) {
	s.deferred = append(s.deferred, deferredWork{due: s.now().Add(d), run: fn})
}

// runDeferred runs the postponed work that is due.
func (s *Store) runDeferred(now time.Time) {
	if len(s.deferred) == 0 {
		return
	}
	var due []deferredWork
	kept := s.deferred[:0]
	for _, d := range s.deferred {
		if now.Before(d.due) {
			kept = append(kept, d)
		} else {
			due = append(due, d)
		}
	}
	s.deferred = kept
	for _, d := range due {
		d.run()
	}
}

// crashSoon makes the next ready round fail at once with hook p's injected
// crash: the store dies before anything more becomes durable, as if the
// process had been killed right here.
func (s *Store) crashSoon(p buggify.Point) {
	if s.crashPending == nil {
		s.crashPending = buggify.Crash(p)
	}
	s.dirty = true
}

// proposeLate proposes data, a split command a hook held back or repeats,
// if the region still has its peer here; raft drops it if that peer no
// longer leads.
func (s *Store) proposeSplitLate(p *peer, data []byte) {
	if s.peers[p.regionID()] != p {
		return
	}
	s.wake(p)
	s.dirty = true
	if err := p.rn.Propose(data); err != nil {
		return
	}
	if h := s.hooks.SplitProposed; h != nil {
		h(p.regionID())
	}
}

// proposeWriteLate proposes a client write again under a new proposal id,
// with nobody waiting for its answer, if the region still has its peer
// here; raft drops it if that peer no longer leads.
func (s *Store) proposeWriteLate(p *peer, cmd *pb.RaftCommand) {
	if s.peers[p.regionID()] != p {
		return
	}
	s.nextProposal++
	cmd.ProposalId = s.nextProposal
	cmd.ProposedAtMs = uint64(s.now().UnixMilli())
	data, err := proto.Marshal(cmd)
	if err != nil {
		return
	}
	s.wake(p)
	s.dirty = true
	_ = p.rn.Propose(data)
}

// proposeConfChangeLate proposes cc again, as it was made, without the
// checks proposeChangePeers makes: the checks at apply must catch a change
// that is stale by now.
func (s *Store) proposeConfChangeLate(p *peer, cc *raftpb.ConfChangeV2) {
	if s.peers[p.regionID()] != p {
		return
	}
	s.wake(p)
	s.dirty = true
	_ = p.rn.ProposeConfChange(cc)
}

// transferAway hands the leadership of p's region to another voter, drawn
// with the hooks' stream.
func (p *peer) transferAway() {
	var to []uint64
	for _, pp := range p.region.Meta().GetPeers() {
		if pp.GetId() != p.id && (pp.GetRole() == pb.PeerRole_VOTER || pp.GetRole() == pb.PeerRole_INCOMING_VOTER) {
			to = append(to, pp.GetId())
		}
	}
	if len(to) == 0 {
		return
	}
	p.rn.TransferLeader(to[p.s.bug.Intn(len(to))])
	p.s.wake(p)
	p.s.dirty = true
}

// logEntries calls fn on each entry of p's log in (from, last], until fn
// returns false. Only coverage checks use it.
func (p *peer) logEntries(from uint64, fn func(e *raftpb.Entry) bool) {
	last, _ := p.region.LastIndex()
	first, _ := p.region.FirstIndex()
	lo := max(from+1, first)
	if lo > last {
		return
	}
	ents, err := p.region.Entries(lo, last+1, 1<<62)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !fn(e) {
			return
		}
	}
}

// commandOf decodes the client or admin command of a normal entry; nil for
// anything else.
func commandOf(e *raftpb.Entry) *pb.RaftCommand {
	if e.GetType() != raftpb.EntryType_EntryNormal || len(e.GetData()) == 0 {
		return nil
	}
	cmd := &pb.RaftCommand{}
	if proto.Unmarshal(e.GetData(), cmd) != nil {
		return nil
	}
	return cmd
}

// splitUnapplied reports whether p's log holds a split command past the
// applied index (proposed or committed, not applied yet).
func (p *peer) splitUnapplied() bool {
	found := false
	p.logEntries(p.region.Applied(), func(e *raftpb.Entry) bool {
		if cmd := commandOf(e); cmd != nil && cmd.GetSplit() != nil {
			found = true
		}
		return !found
	})
	return found
}

// oldLifeUncommitted reports whether p's log holds, past commit, a command
// this store proposed in an earlier life.
func (p *peer) oldLifeUncommitted(commit uint64) bool {
	found := false
	p.logEntries(commit, func(e *raftpb.Entry) bool {
		if cmd := commandOf(e); cmd != nil && cmd.GetProposerStore() == p.s.cfg.StoreID &&
			cmd.GetProposerIncarnation() != 0 && cmd.GetProposerIncarnation() < p.s.incarnation {
			found = true
		}
		return !found
	})
	return found
}

// hasLearner reports whether the region has a learner.
func hasLearner(meta *pb.Region) bool {
	for _, pp := range meta.GetPeers() {
		if pp.GetRole() == pb.PeerRole_LEARNER {
			return true
		}
	}
	return false
}
