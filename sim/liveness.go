package sim

import (
	"bytes"
	"fmt"
	"time"

	"github.com/multiraft/multiraft/core/client"
	"github.com/multiraft/multiraft/core/pb"
)

// awaitLiveness is the liveness phase, after the final reads, with every
// fault healed and every store back: safety is not enough, the cluster
// must also work again. Within finalPhase every region PD knows must have
// one leader that all its running replicas follow, and then take a write
// and give it back on a read, each region at its own key (its start key
// and a zero byte, outside the workload's keys and its history). A region
// left leaderless (say, asleep with its leader gone) or one that cannot
// commit is a violation.
func (w *World) awaitLiveness() {
	if w.pd == nil {
		return
	}
	deadline := w.k.now + finalPhase
	for w.k.now < deadline && w.leaderless() != "" {
		w.k.advanceTo(w.k.now + 100*time.Millisecond)
	}
	if why := w.leaderless(); why != "" {
		w.violate(fmt.Sprintf("liveness: %s, %v after the workload's faults were healed", why, finalPhase))
		return
	}
	regions := w.pd.Regions()
	cn := w.newClient(len(w.clients))
	got := map[uint64]client.Completion{} // op id -> completion
	cn.done = func(c client.Completion) { got[c.ID] = c }
	probes := make([]*liveProbe, 0, len(regions))
	for _, r := range regions {
		key := append(bytes.Clone(r.GetStartKey()), 0)
		if !r.ContainsKey(key) {
			continue // a region one key wide: nothing to write beside it
		}
		pr := &liveProbe{region: r, key: key, val: []byte(fmt.Sprintf("live-%d", r.GetId()))}
		probes = append(probes, pr)
	}
	// Each write, then each read, is tried again (as a new op) while it
	// has not succeeded, within its phase: a write can end ambiguous
	// without anything being wrong (its session forgotten under pressure).
	w.untilOK(cn, got, probes, deadline+finalPhase, func(pr *liveProbe) *uint64 { return &pr.put },
		func(pr *liveProbe) client.Op { return client.Op{Kind: client.Put, Key: pr.key, Value: pr.val} })
	w.untilOK(cn, got, probes, deadline+2*finalPhase, func(pr *liveProbe) *uint64 { return &pr.get },
		func(pr *liveProbe) client.Op { return client.Op{Kind: client.Get, Key: pr.key} })
	failed := 0
	for _, pr := range probes {
		p, g := got[pr.put], got[pr.get]
		var why string
		switch {
		case p.Outcome != client.OK:
			why = fmt.Sprintf("a write failed (%v: %v)", p.Outcome, p.Err)
		case g.Outcome != client.OK:
			why = fmt.Sprintf("a read failed (%v: %v)", g.Outcome, g.Err)
		case !g.Found || !bytes.Equal(g.Value, pr.val):
			why = fmt.Sprintf("a read of its write found %v %q, want %q", g.Found, g.Value, pr.val)
		default:
			continue
		}
		if failed++; failed <= 3 {
			w.violate(fmt.Sprintf("liveness: region %d %s: %s", pr.region.GetId(), pr.region.RangeString(), why))
		}
	}
	if failed > 3 {
		w.violate(fmt.Sprintf("liveness: %d regions in all failed their write and read", failed))
	}
	w.metrics.livenessProbes = len(probes)
	// The writes must reach every replica before the data checks.
	for end := w.k.now + finalPhase; w.k.now < end && !w.converged(); {
		w.k.advanceTo(w.k.now + 100*time.Millisecond)
	}
}

// liveProbe is the liveness phase's write and read of one region.
type liveProbe struct {
	region   *pb.Region
	key, val []byte
	put, get uint64 // the latest op ids
}

// untilOK submits, for every probe, the op made by op, and submits it
// again whenever it completes other than OK, until all are OK or the
// deadline passes; id names the probe's field that keeps the op id.
func (w *World) untilOK(cn *clientNode, got map[uint64]client.Completion, probes []*liveProbe, deadline time.Duration,
	id func(*liveProbe) *uint64, op func(*liveProbe) client.Op) {
	submit := func(pr *liveProbe) {
		*id(pr) = cn.c.Submit(op(pr))
		cn.inflight[*id(pr)] = int64(w.k.now)
	}
	for _, pr := range probes {
		submit(pr)
	}
	for w.k.now < deadline {
		w.k.advanceTo(w.k.now + 100*time.Millisecond)
		busy := false
		for _, pr := range probes {
			c, done := got[*id(pr)]
			switch {
			case !done:
				busy = true
			case c.Outcome != client.OK && w.k.now < deadline:
				submit(pr)
				busy = true
			}
		}
		if !busy {
			return
		}
	}
}

// leaderless describes the first region (by PD's view) without one leader
// that every running replica follows, or returns "" when each has one.
func (w *World) leaderless() string {
	for _, r := range w.pd.Regions() {
		var leader uint64
		for _, p := range r.GetPeers() {
			n := w.storeByID(p.GetStoreId())
			if n == nil || !n.up() {
				continue
			}
			rs, ok := n.st.Region(r.GetId())
			if !ok {
				return fmt.Sprintf("region %d has no replica on store %d", r.GetId(), p.GetStoreId())
			}
			if rs.Leader == 0 {
				return fmt.Sprintf("region %d: its replica on store %d knows no leader", r.GetId(), p.GetStoreId())
			}
			if leader == 0 {
				leader = rs.Leader
			} else if rs.Leader != leader {
				return fmt.Sprintf("region %d: its replicas follow different leaders (%d, %d)", r.GetId(), leader, rs.Leader)
			}
		}
		if leader == 0 {
			return fmt.Sprintf("region %d has no running replica", r.GetId())
		}
		if ln := w.storeByID(r.PeerByID(leader).GetStoreId()); ln == nil || !ln.up() {
			return fmt.Sprintf("region %d follows leader %d, which is not running", r.GetId(), leader)
		}
	}
	return ""
}

// storeByID returns store id's node, or nil for a store the world does not
// have.
func (w *World) storeByID(id uint64) *storeNode {
	if id == 0 || id > uint64(len(w.stores)) {
		return nil
	}
	return w.stores[id-1]
}
