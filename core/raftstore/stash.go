package raftstore

import (
	"slices"

	"github.com/multiraft/multiraft/core/pb"
)

// Bounds of the messages held for regions a pending split will create.
const (
	maxStashedRegions = 64
	maxStashedPerRgn  = 8
)

// splitStash holds raft messages for regions that do not exist on this store
// yet because a local split that creates them has not been applied. When the
// split creates the region the messages are delivered at once, instead of
// waiting for the sender to retry (a vote request would otherwise wait a
// whole election timeout). Only the newest few per region, and the regions
// first held most recently, are kept.
type splitStash struct {
	byRegion map[uint64][]*pb.RaftMessage
	order    []uint64 // region ids held, oldest first
}

func newSplitStash() *splitStash {
	return &splitStash{byRegion: map[uint64][]*pb.RaftMessage{}}
}

// hold keeps rm for its region, evicting the oldest region's messages when
// too many regions are held and the region's oldest message when it has too
// many.
func (st *splitStash) hold(rm *pb.RaftMessage) {
	id := rm.GetRegionId()
	q, ok := st.byRegion[id]
	if !ok {
		if len(st.order) >= maxStashedRegions {
			delete(st.byRegion, st.order[0])
			st.order = st.order[1:]
		}
		st.order = append(st.order, id)
	}
	if len(q) >= maxStashedPerRgn {
		q = q[1:]
	}
	st.byRegion[id] = append(q, rm)
}

// take removes and returns the messages held for region id, oldest first.
func (st *splitStash) take(id uint64) []*pb.RaftMessage {
	q, ok := st.byRegion[id]
	if !ok {
		return nil
	}
	st.drop(id)
	return q
}

// drop forgets the messages held for region id.
func (st *splitStash) drop(id uint64) {
	if _, ok := st.byRegion[id]; !ok {
		return
	}
	delete(st.byRegion, id)
	if i := slices.Index(st.order, id); i >= 0 {
		st.order = slices.Delete(st.order, i, i+1)
	}
}
