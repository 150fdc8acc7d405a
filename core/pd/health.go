package pd

import (
	"slices"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// health is what the last accepted heartbeat of a region said about its
// peers: which are behind the leader's log, and which the leader has not
// heard from (and since when, while it keeps saying so).
type health struct {
	confVer   uint64               // conf_ver of the heartbeat it came from
	pending   []uint64             // peer ids, sorted
	downSince map[uint64]time.Time // peer id -> first heartbeat that listed it down
}

// noteHealth records the pending and down peers of a heartbeat that PD
// accepted (its region is PD's newest state). Peers not in the region are
// ignored; a peer keeps its down-since time for as long as every heartbeat
// lists it.
func (p *PD) noteHealth(hb *pb.RegionHeartbeat) {
	r := hb.GetRegion()
	old := p.health[r.GetId()]
	h := &health{confVer: r.GetEpoch().GetConfVer(), downSince: map[uint64]time.Time{}}
	for _, peer := range hb.GetPendingPeers() {
		if id := peer.GetId(); r.PeerByID(id) != nil && !slices.Contains(h.pending, id) {
			h.pending = append(h.pending, id)
		}
	}
	slices.Sort(h.pending)
	now := p.env.Clock.Now()
	for _, peer := range hb.GetDownPeers() {
		id := peer.GetId()
		if r.PeerByID(id) == nil {
			continue
		}
		since := now
		if old != nil {
			if t, ok := old.downSince[id]; ok {
				since = t
			}
		}
		h.downSince[id] = since
	}
	p.health[r.GetId()] = h
}

// isPending reports whether the region's last heartbeat at conf_ver listed
// peer id as behind; with no heartbeat at that conf_ver, every peer counts
// as pending.
func (h *health) isPending(confVer, id uint64) bool {
	if h == nil || h.confVer != confVer {
		return true
	}
	_, found := slices.BinarySearch(h.pending, id)
	return found
}

// isDown reports whether the last heartbeat listed peer id as down.
func (h *health) isDown(id uint64) bool {
	if h == nil {
		return false
	}
	_, ok := h.downSince[id]
	return ok
}

// downFor is how long the region's heartbeats have listed peer id as down
// (0 if the last one did not).
func (h *health) downFor(id uint64, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	t, ok := h.downSince[id]
	if !ok {
		return 0
	}
	return now.Sub(t)
}

// clean reports whether the last heartbeat, at conf_ver, listed no pending
// and no down peer.
func (h *health) clean(confVer uint64) bool {
	return h != nil && h.confVer == confVer && len(h.pending) == 0 && len(h.downSince) == 0
}
