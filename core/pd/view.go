package pd

import (
	"bytes"
	"time"

	"github.com/google/btree"

	"github.com/multiraft/multiraft/core/pb"
)

// entry is what PD knows of one region state: the meta (an owned clone,
// never mutated after it is stored), the last reported leader and sizes.
type entry struct {
	region *pb.Region
	leader *pb.Peer // nil when unknown
	term   uint64   // the raft term the leader reported at
	size   uint64   // approximate bytes
	keys   uint64   // approximate key count
	seen   time.Time
}

func (e *entry) start() []byte    { return e.region.GetStartKey() }
func (e *entry) end() []byte      { return e.region.GetEndKey() }
func (e *entry) id() uint64       { return e.region.GetId() }
func (e *entry) epoch() *pb.Epoch { return e.region.GetEpoch() }
func (e *entry) version() uint64  { return e.region.GetEpoch().GetVersion() }
func (e *entry) info() *pb.RegionInfo {
	ri := &pb.RegionInfo{Region: e.region.CloneVT()}
	if e.leader != nil {
		ri.Leader = e.leader.CloneVT()
	}
	return ri
}

// view is PD's region map: the published routing view, which always tiles
// the keyspace, and the pending region states that are newer than what is
// published but cannot be published yet without opening a gap.
type view struct {
	published *btree.BTreeG[*entry] // by start key; tiles the keyspace
	byID      map[uint64]*entry     // published entries by region id
	pending   *btree.BTreeG[*entry] // by (start key, id)
	pendingID map[uint64]*entry     // pending entries by region id (at most one per id)
	gen       uint64                // counts changes to the published and pending regions
}

func lessStart(a, b *entry) bool { return bytes.Compare(a.start(), b.start()) < 0 }

func lessStartID(a, b *entry) bool {
	if c := bytes.Compare(a.start(), b.start()); c != 0 {
		return c < 0
	}
	return a.id() < b.id()
}

func newView() *view {
	return &view{
		published: btree.NewG(8, lessStart),
		byID:      map[uint64]*entry{},
		pending:   btree.NewG(8, lessStartID),
		pendingID: map[uint64]*entry{},
	}
}

// pivot is a search key for the btrees.
func pivot(start []byte, id uint64) *entry {
	return &entry{region: &pb.Region{Id: id, StartKey: start}}
}

// publish puts e into the routing view. The caller keeps the view tiling.
func (v *view) publish(e *entry) {
	v.gen++
	v.published.ReplaceOrInsert(e)
	v.byID[e.id()] = e
}

func (v *view) unpublish(e *entry) {
	v.gen++
	v.published.Delete(e)
	if v.byID[e.id()] == e {
		delete(v.byID, e.id())
	}
}

// setPending makes e the pending state of its region, replacing any older one.
func (v *view) setPending(e *entry) {
	v.gen++
	if old := v.pendingID[e.id()]; old != nil {
		v.pending.Delete(old)
	}
	v.pending.ReplaceOrInsert(e)
	v.pendingID[e.id()] = e
}

func (v *view) dropPending(e *entry) {
	v.gen++
	v.pending.Delete(e)
	delete(v.pendingID, e.id())
}

// known returns the newest state PD holds for region id: pending if any,
// else published, else nil.
func (v *view) known(id uint64) *entry {
	if e := v.pendingID[id]; e != nil {
		return e
	}
	return v.byID[id]
}

// lookup returns the published entry whose range holds key. The view tiles
// the keyspace, so there always is one.
func (v *view) lookup(key []byte) *entry {
	var found *entry
	v.published.DescendLessOrEqual(pivot(key, 0), func(e *entry) bool {
		found = e
		return false
	})
	return found
}

// overlapping calls fn, in start-key order, for each published entry that
// intersects [start, end) (empty end = +inf), until fn returns false.
func (v *view) overlapping(start, end []byte, fn func(*entry) bool) {
	first := v.lookup(start)
	v.published.AscendGreaterOrEqual(first, func(e *entry) bool {
		if len(end) != 0 && bytes.Compare(e.start(), end) >= 0 {
			return false
		}
		return fn(e)
	})
}

// all returns the published entries in start-key order.
func (v *view) all() []*entry {
	out := make([]*entry, 0, v.published.Len())
	v.published.Ascend(func(e *entry) bool {
		out = append(out, e)
		return true
	})
	return out
}

// pendingAll returns the pending entries in (start key, id) order.
func (v *view) pendingAll() []*entry {
	out := make([]*entry, 0, v.pending.Len())
	v.pending.Ascend(func(e *entry) bool {
		out = append(out, e)
		return true
	})
	return out
}

// within reports whether range [s, e) lies inside [outerS, outerE).
func within(s, e, outerS, outerE []byte) bool {
	return bytes.Compare(s, outerS) >= 0 && (len(outerE) == 0 || (len(e) != 0 && bytes.Compare(e, outerE) <= 0))
}

// replacement finds the pending states that exactly tile the range of the
// published entry q and are each newer than q: q's own region at a newer
// epoch, or another region with a higher version that is not published
// elsewhere. At each position it takes the candidate with the highest
// version (lowest id on a tie). It returns nil when the range cannot be
// tiled yet.
func (v *view) replacement(q *entry) []*entry {
	var out []*entry
	x := q.start()
	for {
		var best *entry
		v.pending.AscendGreaterOrEqual(pivot(x, 0), func(c *entry) bool {
			if !bytes.Equal(c.start(), x) {
				return false
			}
			if !within(c.start(), c.end(), q.start(), q.end()) {
				return true
			}
			if c.id() != q.id() {
				if c.version() <= q.version() {
					return true
				}
				if other := v.byID[c.id()]; other != nil {
					return true // its id is published elsewhere: not a descendant of q
				}
			}
			if best == nil || c.version() > best.version() {
				best = c
			}
			return true
		})
		if best == nil {
			return nil
		}
		out = append(out, best)
		if len(best.end()) == 0 || bytes.Equal(best.end(), q.end()) {
			return out
		}
		x = best.end()
	}
}

// settle publishes every pending state whose published predecessor's range
// is now fully covered by newer pending states, then drops pending states
// that the published view has overtaken. It returns the replacements made,
// as (old, new states) pairs, in key order.
func (v *view) settle() []replaced {
	var done []replaced
	for changed := true; changed; {
		changed = false
		// The published entries that some pending state falls into.
		var targets []*entry
		for _, p := range v.pendingAll() {
			q := v.lookup(p.start())
			if len(targets) == 0 || targets[len(targets)-1] != q {
				targets = append(targets, q)
			}
		}
		for _, q := range targets {
			repl := v.replacement(q)
			if repl == nil {
				continue
			}
			v.unpublish(q)
			for _, e := range repl {
				v.dropPending(e)
				v.publish(e)
			}
			done = append(done, replaced{old: q, new: repl})
			changed = true
		}
	}
	for _, p := range v.pendingAll() {
		if v.overtaken(p) {
			v.dropPending(p)
		}
	}
	return done
}

// replaced records one routing view change.
type replaced struct {
	old *entry
	new []*entry
}

// overtaken reports whether the published view already holds something at
// least as new as p over p's range: its own region at a newer or equal epoch,
// or another region with a version >= p's overlapping it.
func (v *view) overtaken(p *entry) bool {
	if e := v.byID[p.id()]; e != nil && !e.epoch().Older(p.epoch()) {
		return true
	}
	stale := false
	v.overlapping(p.start(), p.end(), func(e *entry) bool {
		if e.id() != p.id() && e.version() >= p.version() {
			stale = true
			return false
		}
		return true
	})
	return stale
}
