package client

import (
	"bytes"
	"sort"

	"github.com/multiraft/multiraft/core/pb"
)

// entry is one cached region with what the client believes about its leader.
type entry struct {
	region *pb.Region // owned by the cache (a clone), never mutated
	leader *pb.Peer   // nil when unknown
	next   int        // index into region.Peers to try when the leader is unknown
}

// target returns the store to send the next request for this region to: the
// known leader, or else the next peer that can lead (any voter, incoming or
// demoting ones of a joint configuration too; never a learner) in
// round-robin order.
func (e *entry) target() uint64 {
	if e.leader != nil && e.leader.GetStoreId() != 0 {
		return e.leader.GetStoreId()
	}
	peers := e.region.GetPeers()
	n := len(peers)
	for i := 0; i < n; i++ {
		j := (e.next + i) % n
		p := peers[j]
		if p.GetRole() != pb.PeerRole_LEARNER && p.GetStoreId() != 0 {
			e.next = j
			return p.GetStoreId()
		}
	}
	for i := 0; i < n; i++ { // no voter: any peer at all
		j := (e.next + i) % n
		if peers[j].GetStoreId() != 0 {
			e.next = j
			return peers[j].GetStoreId()
		}
	}
	return 0 // unreachable: insert refuses regions without a store
}

// skip records that store failed to serve the region (no leader there, or no
// reply): forget it as leader and move the round-robin past it.
func (e *entry) skip(store uint64) {
	if e.leader != nil && e.leader.GetStoreId() == store {
		e.leader = nil
	}
	peers := e.region.GetPeers()
	for i, p := range peers {
		if p.GetStoreId() == store {
			e.next = (i + 1) % len(peers)
			return
		}
	}
}

// regionCache holds non-overlapping regions sorted by start key.
type regionCache struct {
	entries []*entry
}

// newer reports whether a is strictly newer than b, both overlapping. Without
// merges, a region that overlaps another is its ancestor or descendant, and a
// descendant always has a higher version; a membership change of the same
// region raises conf_ver only.
func newer(a, b *pb.Region) bool {
	av, bv := a.GetEpoch().GetVersion(), b.GetEpoch().GetVersion()
	if av != bv {
		return av > bv
	}
	return a.GetId() == b.GetId() && a.GetEpoch().GetConfVer() > b.GetEpoch().GetConfVer()
}

// validRegion reports whether r can be routed by: a non-empty range and at
// least one peer on a known store.
func validRegion(r *pb.Region) bool {
	if r == nil {
		return false
	}
	if end := r.GetEndKey(); len(end) != 0 && bytes.Compare(r.GetStartKey(), end) >= 0 {
		return false
	}
	for _, p := range r.GetPeers() {
		if p.GetStoreId() != 0 {
			return true
		}
	}
	return false
}

// find returns the entry whose range holds key, or nil.
func (c *regionCache) find(key []byte) *entry {
	i := sort.Search(len(c.entries), func(i int) bool {
		return bytes.Compare(c.entries[i].region.GetStartKey(), key) > 0
	}) - 1
	if i < 0 || !c.entries[i].region.ContainsKey(key) {
		return nil
	}
	return c.entries[i]
}

// byID returns the entry of region id, or nil.
func (c *regionCache) byID(id uint64) *entry {
	for _, e := range c.entries {
		if e.region.GetId() == id {
			return e
		}
	}
	return nil
}

// remove drops the entry of region id, if cached.
func (c *regionCache) remove(id uint64) {
	for i, e := range c.entries {
		if e.region.GetId() == id {
			c.entries = append(c.entries[:i], c.entries[i+1:]...)
			return
		}
	}
}

// insert caches r (cloned), replacing every overlapping entry, unless one of
// them is newer than r. The known leader becomes, in order of preference:
// leader (if non-nil), the leader known for the same region id if still a
// peer of r, guess (if non-nil). It reports whether r was inserted.
func (c *regionCache) insert(r *pb.Region, leader, guess *pb.Peer) bool {
	if !validRegion(r) {
		return false
	}
	var carried *pb.Peer
	lo, hi := -1, -1 // overlapping entries are contiguous: [lo, hi)
	for i, e := range c.entries {
		if !e.region.Overlaps(r) {
			if lo >= 0 {
				break
			}
			continue
		}
		if newer(e.region, r) {
			return false
		}
		if lo < 0 {
			lo = i
		}
		hi = i + 1
		if e.region.GetId() == r.GetId() && e.leader != nil {
			if p := r.PeerOnStore(e.leader.GetStoreId()); p != nil {
				carried = p
			}
		}
	}
	ne := &entry{region: r.CloneVT()}
	if leader != nil && leader.GetStoreId() != 0 {
		ne.leader = leader.CloneVT()
	} else if carried != nil {
		ne.leader = carried.CloneVT()
	} else if guess != nil && guess.GetStoreId() != 0 {
		ne.leader = guess.CloneVT()
	}
	if lo >= 0 {
		c.entries = append(c.entries[:lo], c.entries[hi:]...)
	}
	at := sort.Search(len(c.entries), func(i int) bool {
		return bytes.Compare(c.entries[i].region.GetStartKey(), r.GetStartKey()) > 0
	})
	c.entries = append(c.entries, nil)
	copy(c.entries[at+1:], c.entries[at:])
	c.entries[at] = ne
	return true
}
