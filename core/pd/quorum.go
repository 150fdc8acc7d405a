package pd

import (
	"slices"

	"github.com/multiraft/multiraft/core/pb"
)

// Quorum. Every membership change PD orders must leave its region able to
// commit: a strict majority of the voters, before the change (it commits in
// the current configuration) and after it (the new configuration is the one
// that commits from then on; a joint change needs both), must be voters PD
// can count on. Removing or demoting a voter, or promoting a learner, that
// would leave the reachable voters at half or fewer of the new voter set is
// never ordered: the step waits (stepOrder), a remove-replica is cancelled
// so that the replica checker chooses again (advance), and the replica
// checker never starts such a removal. A region whose reachable voters are
// not a strict majority of its voters now gets no new operator at all
// (replica checker, decommission): nothing it is ordered can commit, and no
// membership change can bring it back. Only its missing voters returning
// can (or an unsafe recovery that rewrites the membership on the survivors,
// which PD does not do).

// reachable reports whether voter peer can be counted on for a quorum, as
// far as PD can tell: its store is known, not a tombstone, and heard from
// within the disconnect time (whether Offline or not), and the region's
// leader did not list it as down (silent for an election timeout) in its
// last heartbeat. A pending peer (behind the leader's log, or waiting for a
// snapshot) is reachable: its leader is talking to it, and it acknowledges
// again once it catches up.
func (p *PD) reachable(peer *pb.Peer, h *health) bool {
	s := p.stores[peer.GetStoreId()]
	return s != nil && !s.tombstone && p.liveness(s) == StoreUp && !h.isDown(peer.GetId())
}

// quorate reports whether a strict majority of voters is reachable.
func (p *PD) quorate(voters []*pb.Peer, h *health) bool {
	n := 0
	for _, v := range voters {
		if p.reachable(v, h) {
			n++
		}
	}
	return 2*n > len(voters)
}

// votersOf returns region r's peers with role VOTER, in r's order.
func votersOf(r *pb.Region) []*pb.Peer {
	var out []*pb.Peer
	for _, peer := range r.GetPeers() {
		if peer.GetRole() == pb.PeerRole_VOTER {
			out = append(out, peer)
		}
	}
	return out
}

// keepsQuorum reports whether region r (not joint), whose last heartbeat
// said h, can take a change that makes peer in a voter (nil: none) and
// stops peer out being one (nil: none): a strict majority of its voters is
// reachable now and after the change.
func (p *PD) keepsQuorum(r *pb.Region, h *health, in, out *pb.Peer) bool {
	cur := votersOf(r)
	if !p.quorate(cur, h) {
		return false
	}
	next := slices.DeleteFunc(slices.Clone(cur), func(v *pb.Peer) bool { return out != nil && v.GetId() == out.GetId() })
	if in != nil && !slices.ContainsFunc(next, func(v *pb.Peer) bool { return v.GetId() == in.GetId() }) {
		next = append(next, in)
	}
	return p.quorate(next, h)
}
