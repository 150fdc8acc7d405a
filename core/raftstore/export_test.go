package raftstore

import (
	"fmt"

	"github.com/multiraft/multiraft/core/pb"
)

// ProposeChangePeersUnchecked proposes cp in region rid's raft group as it
// is, without the checks proposeChangePeers makes: what the
// confchange.propose.repeat hook does with a change it proposes again. The
// checks at apply must catch a change that is stale by then.
func (s *Store) ProposeChangePeersUnchecked(rid uint64, cp *pb.ChangePeers) error {
	p := s.peers[rid]
	if p == nil {
		return fmt.Errorf("no peer of region %d", rid)
	}
	cc, err := confChangeFor(p.region.Meta(), cp)
	if err != nil {
		return err
	}
	ctx, err := cp.MarshalVT()
	if err != nil {
		return err
	}
	cc.Context = ctx
	s.proposeConfChangeLate(p, cc)
	return nil
}

// Pending reports whether this store's peer of region rid leads and counts
// peer id as pending (not caught up), as its region heartbeat would.
func (s *Store) Pending(rid, id uint64) bool {
	p := s.peers[rid]
	if p == nil || !p.leading {
		return false
	}
	pr, ok := p.rn.Status().Progress[id]
	return ok && behind(pr, p.rn.Status().GetCommit())
}

// Progress reports what this store's peer of region rid, leading, knows of
// peer id: the index it has acknowledged (match) and raft's RecentActive
// flag, which check-quorum clears each election timeout.
func (s *Store) Progress(rid, id uint64) (match uint64, recentActive, ok bool) {
	p := s.peers[rid]
	if p == nil || !p.leading {
		return 0, false, false
	}
	pr, ok := p.rn.Status().Progress[id]
	if !ok {
		return 0, false, false
	}
	return pr.Match, pr.RecentActive, true
}

// NextIndex is what this store's peer of region rid, leading, holds as
// peer id's next index, with its own last index.
func (s *Store) NextIndex(rid, id uint64) (next, last uint64) {
	p := s.peers[rid]
	if p == nil || !p.leading {
		return 0, 0
	}
	last, _ = p.region.LastIndex()
	return p.rn.Status().Progress[id].Next, last
}
