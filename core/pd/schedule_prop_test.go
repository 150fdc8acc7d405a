package pd

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/multiraft/multiraft/core/pb"
)

// TestSchedulingProperty drives PD and a fake cluster of well-behaved
// stores through random histories: stores join, crash and come back,
// regions split, manual moves, transfers and decommissions arrive, time
// passes. Throughout, every order PD sends must be one the protocol allows
// (the fake fails the test otherwise: no removal or demotion of the
// leader, no change at a stale epoch applied, valid change sets only), the
// routing view must tile, and no store may be in more scheduler operators
// than its limit. At the end, with every store back, the cluster must
// settle: every region has exactly Replicas voters and no learner, PD's
// view equals the truth, region counts on Up stores are within one, and
// running the schedulers on, and on, starts nothing (no ping-pong).
func TestSchedulingProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nStores := rapid.IntRange(3, 6).Draw(rt, "stores")
		var choices []int
		for _, r := range []int{1, 3, 5} {
			if r <= nStores {
				choices = append(choices, r)
			}
		}
		replicas := rapid.SampledFrom(choices).Draw(rt, "replicas")
		first := rapid.IntRange(replicas, nStores).Draw(rt, "layout stores")
		var stores []uint64
		for s := 1; s <= first; s++ {
			stores = append(stores, uint64(s))
		}
		cfg := testConfig(spreadLayout(rapid.IntRange(1, 10).Draw(rt, "regions"), replicas, stores...))
		cfg.StoreLimit = rapid.IntRange(1, 4).Draw(rt, "store limit")
		c := newCluster(rt, cfg)
		c.catchUp = rapid.IntRange(0, 3).Draw(rt, "catch up")
		for _, id := range c.ids() {
			fr := c.regions[id]
			fr.size = rapid.Uint64Range(1, 1000).Draw(rt, "size")
			fr.leader = rapid.SampledFrom(fr.r.GetPeers()).Draw(rt, "leader").GetId()
		}
		next := uint64(first + 1)
		var down uint64 // the one crashed store, 0 if none
		check := func() {
			mustTile(rt, c.h.pd)
			seen := map[uint64]bool{}
			per := map[uint64]int{}
			for _, op := range c.h.pd.Operators() {
				if seen[op.Region] {
					rt.Fatalf("two operators on region %d", op.Region)
				}
				seen[op.Region] = true
				if op.Origin == OriginManual {
					continue
				}
				per[op.To]++
				if op.Kind != OpReplaceReplica && op.Kind != OpTransferLeader {
					per[op.From]++
				}
			}
			delete(per, 0)
			for s, n := range per {
				if n > cfg.StoreLimit {
					rt.Fatalf("store %d in %d scheduler operators, limit %d", s, n, cfg.StoreLimit)
				}
			}
		}
		randomRegion := func() *fakeRegion { return c.regions[rapid.SampledFrom(c.ids()).Draw(rt, "region")] }
		randomStore := func() uint64 { return rapid.SampledFrom(c.stores).Draw(rt, "store") }
		steps := rapid.IntRange(0, 30).Draw(rt, "steps")
		for range steps {
			switch rapid.IntRange(0, 9).Draw(rt, "action") {
			case 0:
				if int(next) <= nStores {
					c.join(next)
					next++
				}
			case 1:
				fr := randomRegion()
				key := string(fr.r.GetStartKey()) + "\x01"
				if end := fr.r.GetEndKey(); len(end) == 0 || key < string(end) {
					c.split(fr.r.GetId(), key)
				}
			case 2:
				if down == 0 && replicas >= 3 {
					down = randomStore()
					c.stopped[down] = true
				}
			case 3:
				if down != 0 {
					delete(c.stopped, down)
					down = 0
				}
			case 4:
				c.admin(&pb.MoveRegionRequest{RegionId: randomRegion().r.GetId(), FromStore: randomStore(), ToStore: randomStore()})
			case 5:
				c.admin(&pb.TransferLeaderRequest{RegionId: randomRegion().r.GetId(), ToStore: randomStore()})
			case 6:
				c.admin(&pb.DecommissionStoreRequest{StoreId: randomStore()})
			default:
				for range rapid.IntRange(1, 25).Draw(rt, "rounds") {
					c.step()
					check()
				}
			}
		}
		clear(c.stopped)
		c.settle(1000)
		c.healthy(replicas)
		var up []uint64
		for _, s := range c.h.pd.Stores() {
			if s.State == StoreUp {
				up = append(up, s.ID)
			}
			if s.State == StoreTombstone && s.Regions != 0 {
				rt.Fatalf("tombstone store %d holds %d regions", s.ID, s.Regions)
			}
		}
		regions, _ := c.counts()
		if spreadOf(regions, up) > 1 {
			rt.Fatalf("region counts on up stores %v not within one: %v", up, regions)
		}
		c.mustStayQuiet(30)
		propStats(c)
	})
}

var propStats = func(*cluster) {}
