package sim

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
)

// linearizabilityTimeout is porcupine's wall-clock budget per run. The
// slowest check seen (swarm seed 6: 1,647 operations on one hot key, up to
// 43 open at once) takes 11-16 s of CPU; a sweep on a loaded machine, or one
// run at a low priority, can get a tenth of a core, and a check that runs
// out of wall-clock time fails its run (VerdictUnknown) for no fault of the
// system. Ten minutes leaves room for that, and still bounds a history
// whose search has truly blown up.
const linearizabilityTimeout = 10 * time.Minute

// check runs the end-of-run checks and records what they find in
// w.violations: the region and data invariants, the probe's ghost regions
// and a first leader for every region (when PD started), then the
// linearizability of the history, whose failure goes first. It returns the
// history check's result and how long it took by watch.
func (w *World) check(watch stopwatch) (lin checker.Result, took time.Duration) {
	if w.probe != nil {
		w.probe.finishOps()
	}
	if w.pd != nil {
		w.checkInvariants()
		if w.probe != nil {
			w.probe.checkNoGhostRegions()
		}
		w.checkLeaders()
	}
	w.checkReplies()
	if len(w.history) == 0 {
		w.violations = append(w.violations, "no client operations ran")
		return checker.Result{OK: true}, 0
	}
	w.checkAckedWritesApplied()
	took = watch.time(func() {
		lin = checker.CheckLinearizable(checker.History{Ops: w.resolvedHistory(), Keys: w.keys}, linearizabilityTimeout)
	})
	if !lin.OK {
		w.violations = append([]string{lin.Violation}, w.violations...)
	}
	return lin, took
}

// checkReplies checks that no store answered a client's request with the
// result of another kind of operation (a put answered as a cas, say): a
// store answers a proposal only with the result of its own entry. The
// client retries such a reply, so the history alone would not show it.
func (w *World) checkReplies() {
	for _, cn := range w.clients {
		if n := cn.c.Stats().Malformed; n > 0 {
			w.violate(fmt.Sprintf("client %d got %d replies whose result is not of its request's kind", cn.node, n))
		}
	}
}

// checkInvariants runs the end-of-run checks on regions and data.
func (w *World) checkInvariants() {
	pdViews, storeViews := w.regionViews()
	if err := checker.CheckCoverage("pd", pdViews); err != nil {
		w.violate(err.Error())
	}
	byHolder := map[string][]checker.RegionView{}
	var holders []string
	for _, v := range storeViews {
		if _, ok := byHolder[v.Holder]; !ok {
			holders = append(holders, v.Holder)
		}
		byHolder[v.Holder] = append(byHolder[v.Holder], v)
	}
	sort.Strings(holders)
	for _, h := range holders {
		if err := checker.CheckNoOverlap(h, byHolder[h]); err != nil {
			w.violate(err.Error())
		}
	}
	if err := checker.CheckDataInRange(storeViews); err != nil {
		w.violate(err.Error())
	}
	if err := checker.CheckAgreement(pdViews, storeViews); err != nil {
		w.violate(err.Error())
	}
	// Replicas of a region hold the same keys once converged.
	w.checkReplicaData()
	w.checkMembers()
	w.checkPlacement()
}

// checkPlacement checks, when PD repairs regions, that every region ends
// with its replica count of voters, no learner and no joint configuration,
// all on stores that are not dead.
func (w *World) checkPlacement() {
	if w.cfg.PD.DisableReplicaChecker {
		return
	}
	for _, r := range w.pd.Regions() {
		voters := 0
		for _, p := range r.GetPeers() {
			if p.GetRole() == pb.PeerRole_VOTER {
				voters++
			}
		}
		if voters != w.cfg.Replicas || len(r.GetPeers()) != w.cfg.Replicas {
			w.violate(fmt.Sprintf("region %d ends with %d voters among %d peers, want %d: %s", r.GetId(), voters, len(r.GetPeers()), w.cfg.Replicas, describeRegion(r)))
		}
	}
}

// checkMembers checks that no store holds a peer its region does not list
// (as PD knows the region): removed peers were destroyed and placeholders
// collected.
func (w *World) checkMembers() {
	byID := map[uint64]*pb.Region{}
	for _, r := range w.pd.Regions() {
		byID[r.GetId()] = r
	}
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions() {
			r := byID[rs.Region.GetId()]
			if p := r.PeerByID(rs.PeerID); p == nil || p.GetStoreId() != n.id {
				w.violate(fmt.Sprintf("store %d holds peer %d of region %d (initialized %v), which the region does not list: %s",
					n.id, rs.PeerID, rs.Region.GetId(), rs.Initialized, describeRegion(r)))
			}
		}
	}
}

// describeRegion renders a region with its peers, or "unknown to PD".
func describeRegion(r *pb.Region) string {
	if r == nil {
		return "unknown to PD"
	}
	s := r.Describe() + " peers"
	for _, p := range r.GetPeers() {
		s += fmt.Sprintf(" %d@%d:%v", p.GetId(), p.GetStoreId(), p.GetRole())
	}
	return s
}

// regionViews collects PD's and every store's view of the regions.
func (w *World) regionViews() (pdViews, storeViews []checker.RegionView) {
	if w.pd != nil {
		for _, r := range w.pd.Regions() {
			pdViews = append(pdViews, viewOf("pd", r, nil))
		}
	}
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.RegionsWithKeys() {
			if !rs.Initialized {
				continue
			}
			storeViews = append(storeViews, viewOf(fmt.Sprintf("store %d", n.id), rs.Region, rs.Keys))
		}
	}
	return
}

func viewOf(holder string, r *pb.Region, keys [][]byte) checker.RegionView {
	return checker.RegionView{
		Holder: holder, ID: r.GetId(), Start: r.GetStartKey(), End: r.GetEndKey(),
		ConfVer: r.GetEpoch().GetConfVer(), Version: r.GetEpoch().GetVersion(), Keys: keys,
	}
}

// checkReplicaData compares every region's replicas key by key.
func (w *World) checkReplicaData() {
	type replica struct {
		store  uint64
		keys   [][]byte
		digest uint64
	}
	byRegion := map[uint64][]replica{}
	var ids []uint64
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.RegionsWithKeys() {
			id := rs.Region.GetId()
			if _, ok := byRegion[id]; !ok {
				ids = append(ids, id)
			}
			byRegion[id] = append(byRegion[id], replica{n.id, rs.Keys, rs.Digest})
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		reps := byRegion[id]
		for _, r := range reps[1:] {
			if !slices.EqualFunc(r.keys, reps[0].keys, bytes.Equal) {
				w.violate(fmt.Sprintf("region %d: store %d holds %d keys, store %d holds %d keys",
					id, reps[0].store, len(reps[0].keys), r.store, len(r.keys)))
			} else if r.digest != reps[0].digest {
				w.violate(fmt.Sprintf("region %d: stores %d and %d hold the same keys with different values or versions",
					id, reps[0].store, r.store))
			}
		}
	}
}

// checkLeaders checks that every region PD knows has elected a leader.
func (w *World) checkLeaders() {
	for _, r := range w.pd.Regions() {
		if _, ok := w.metrics.firstLeader[r.GetId()]; !ok {
			w.violate(fmt.Sprintf("region %d never elected a leader", r.GetId()))
		}
	}
}
