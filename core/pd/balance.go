package pd

import (
	"slices"

	"github.com/multiraft/multiraft/core/pb"
)

// sizeGapPercent: the size balancer moves a region between two Up stores
// only when the bigger one holds more than this percentage of its bytes
// above the smaller one.
const sizeGapPercent = 20

// balanceRegions is the region balancer. Each of its (at most opsPerRun)
// rounds starts one move, counted on the projected loads (every running
// operator as if done, so moves in flight are not repeated):
//
//   - by count: when the Up stores' region counts differ by more than one,
//     a region moves from the store with the most to the one with the
//     fewest (trying the next pairs while the gap stays above one, when a
//     pair is at its store limit or has no movable region); the region is
//     the smallest movable one, then the lowest id;
//   - by size, once counts are within one: for the pair of Up stores with
//     the widest byte gap above sizeGapPercent of the bigger's bytes, a
//     region of size s with 0 < s <= gap/2 (the largest such, then the
//     lowest id) moves from the bigger to the smaller, if counts stay
//     within one afterwards.
//
// Neither ping-pongs: a count move lowers the sum of the squares of the
// counts, a size move keeps the counts within one and lowers the sum of
// the squares of the byte totals (the pair's gap shrinks and neither store
// crosses the other), so with regions unchanged a sequence of moves ends,
// and on a balanced cluster no move starts at all.
func (p *PD) balanceRegions() {
	for range opsPerRun {
		if !p.balanceRegionOnce() {
			return
		}
	}
}

func (p *PD) balanceRegionOnce() bool {
	ups := p.upStores()
	if len(ups) < 2 {
		return false
	}
	loads := p.loads(true)
	count := func(s uint64) int { return loadOf(loads, s).regions }
	bytes := func(s uint64) uint64 { return loadOf(loads, s).bytes }
	lo, hi := spread(ups, count)
	if hi-lo > 1 {
		for _, src := range byCount(ups, count, true) {
			for _, dst := range byCount(ups, count, false) {
				if count(src)-count(dst) <= 1 {
					break
				}
				if !p.underLimit(src, dst) {
					continue
				}
				if e := p.pickToMove(src, dst, func(uint64) bool { return true }, false); e != nil {
					p.startMove(OpMoveReplica, OriginBalanceRegion, e, src, dst)
					return true
				}
			}
		}
		return false
	}
	type pair struct {
		src, dst uint64
		gap      uint64
	}
	var pairs []pair
	for _, src := range ups {
		for _, dst := range ups {
			if a, b := bytes(src), bytes(dst); a > b && (a-b)*100 > a*sizeGapPercent {
				pairs = append(pairs, pair{src, dst, a - b})
			}
		}
	}
	slices.SortStableFunc(pairs, func(x, y pair) int { return cmpUint(y.gap, x.gap) })
	for _, pr := range pairs {
		after := func(s uint64) int {
			switch s {
			case pr.src:
				return count(s) - 1
			case pr.dst:
				return count(s) + 1
			}
			return count(s)
		}
		if lo, hi := spread(ups, after); hi-lo > 1 || !p.underLimit(pr.src, pr.dst) {
			continue
		}
		fits := func(size uint64) bool { return size > 0 && size <= pr.gap/2 }
		if e := p.pickToMove(pr.src, pr.dst, fits, true); e != nil {
			p.startMove(OpMoveReplica, OriginBalanceRegion, e, pr.src, pr.dst)
			return true
		}
	}
	return false
}

// pickToMove returns the movable region (see PD.movable) with a voter on
// src whose size fits: the largest when largest is set, else the smallest;
// the lowest id on a tie. nil if there is none.
func (p *PD) pickToMove(src, dst uint64, fits func(uint64) bool, largest bool) *entry {
	var best *entry
	for _, id := range p.regionIDs() {
		e := p.view.known(id)
		if !fits(e.size) || !p.movable(e, src, dst) {
			continue
		}
		if best == nil || (largest && e.size > best.size) || (!largest && e.size < best.size) {
			best = e
		}
	}
	return best
}

// balanceLeaders is the leader balancer. Each of its (at most opsPerRun)
// rounds starts one transfer, counted on projected loads: when the Up
// stores' leader counts differ by more than one, a region led from the
// store with the most leaders moves its leadership to the store with the
// fewest that holds a voter of it (one its leader reports neither pending
// nor down), trying the next pairs while the gap stays above one. Each
// transfer lowers the sum of the squares of the leader counts, so it does
// not ping-pong.
func (p *PD) balanceLeaders() {
	for range opsPerRun {
		if !p.balanceLeaderOnce() {
			return
		}
	}
}

func (p *PD) balanceLeaderOnce() bool {
	ups := p.upStores()
	if len(ups) < 2 {
		return false
	}
	loads := p.loads(true)
	count := func(s uint64) int { return loadOf(loads, s).leaders }
	for _, src := range byCount(ups, count, true) {
		for _, dst := range byCount(ups, count, false) {
			if count(src)-count(dst) <= 1 {
				break
			}
			if !p.underLimit(dst) {
				continue
			}
			if e := p.pickToLead(src, dst); e != nil {
				p.startOperator(OpTransferLeader, OriginBalanceLeader, e.region, src, dst, transferPlan(dst))
				return true
			}
		}
	}
	return false
}

// pickToLead returns the region (lowest id) led from src, without an
// operator, not joint, with a healthy voter on dst; nil if none.
func (p *PD) pickToLead(src, dst uint64) *entry {
	for _, id := range p.regionIDs() {
		e := p.view.known(id)
		r := e.region
		if p.ops[id] != nil || r.InJointConfig() || e.leader.GetStoreId() != src || r.PeerByID(e.leader.GetId()) == nil {
			continue
		}
		v := r.PeerOnStore(dst)
		h := p.health[id]
		if v == nil || v.GetRole() != pb.PeerRole_VOTER || h.isDown(v.GetId()) || h.isPending(r.GetEpoch().GetConfVer(), v.GetId()) {
			continue
		}
		return e
	}
	return nil
}
