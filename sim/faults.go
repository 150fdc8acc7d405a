package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/netsim"
)

// The fault API scenarios use from their plans: a Planner schedules
// actions, and World methods look at the world and act on it. Every action
// is noted in the trace and marked on the linearizability visualization.

// Planner lets a scenario schedule faults. Times are offsets from the start.
type Planner struct {
	w   *World
	Dur time.Duration
	R   *rng.Rand
}

// At schedules a fault action at time t since the start of the run (at
// once if t has passed). Actions are numbered in the order they are
// scheduled; Config.FaultEdits may skip or move them by number.
func (p *Planner) At(t time.Duration, name string, fn func(w *World)) {
	p.w.planAction(t, name, false, func() { fn(p.w) })
}

// CrashFor crashes store id now and restarts it after down.
func (p *Planner) CrashFor(w *World, id uint64, down time.Duration) {
	w.Crash(id)
	p.At(w.Now()+down, "restart", func(w *World) { w.Restart(id) })
}

// OnSplitProposed runs fn (as an event right after the current one)
// whenever a leader proposes a split.
func (p *Planner) OnSplitProposed(fn func(w *World, store, region uint64)) {
	p.w.onSplitProposed = append(p.w.onSplitProposed, func(w *World, store, region uint64) {
		w.planAction(w.k.now, "on split proposed", true, func() { fn(w, store, region) })
	})
}

// OnNextLeaderElected runs fn once, the next time a peer on some store
// becomes the leader of its region: in that very instant, before the new
// leader's first messages leave. Called from an action, it arms a nemesis
// that strikes whichever leader comes next (say, one elected after a
// restart).
func (p *Planner) OnNextLeaderElected(fn func(w *World, store, region uint64)) {
	p.w.onNextLeader = append(p.w.onNextLeader, func(w *World, store, region uint64) {
		w.runActionNow("on leader elected", func() { fn(w, store, region) })
	})
}

// OnSplitApplied runs fn (as an event right after the current one, before
// the store's next ready round) whenever a replica applies a split.
func (p *Planner) OnSplitApplied(fn func(w *World, store uint64, left, right *pb.Region)) {
	p.w.onSplitApplied = append(p.w.onSplitApplied, func(w *World, store uint64, left, right *pb.Region) {
		w.planAction(w.k.now, "on split applied", true, func() { fn(w, store, left, right) })
	})
}

// StoreIDs lists the store ids.
func (w *World) StoreIDs() []uint64 { return w.storeIDs() }

// Now is the virtual time since the start of the run.
func (w *World) Now() time.Duration { return w.k.now }

// RegionIDs lists the regions PD knows, in key order.
func (w *World) RegionIDs() []uint64 {
	var ids []uint64
	if w.pd == nil {
		return nil
	}
	for _, r := range w.pd.Regions() {
		ids = append(ids, r.GetId())
	}
	return ids
}

// LeaderStore returns the store whose peer leads regionID, or 0. When two
// peers think they lead (an old leader not yet deposed), the one with the
// higher term wins.
func (w *World) LeaderStore(regionID uint64) uint64 {
	var best, term uint64
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions() {
			if rs.Region.GetId() == regionID && rs.IsLeader && rs.Term > term {
				best, term = n.id, rs.Term
			}
		}
	}
	return best
}

// Isolate cuts node off from everyone.
func (w *World) Isolate(node uint64) {
	w.net.Isolate(node)
	w.k.note("isolate %d", node)
	w.faultDid(false, "isolate %s", nodeName(node))
	w.tl.netFault(w.k.now, []uint64{node}, "isolated")
}

// Partition splits the listed nodes into groups that cannot talk.
func (w *World) Partition(groups ...[]uint64) {
	w.net.Partition(groups...)
	w.k.note("partition %v", groups)
	w.faultDid(false, "partition %s", groupNames(groups))
	var all []uint64
	for _, g := range groups {
		all = append(all, g...)
	}
	w.tl.netFault(w.k.now, all, "partition "+groupNames(groups))
}

// BlockOneWay drops messages from -> to.
func (w *World) BlockOneWay(from, to uint64) {
	w.net.BlockOneWay(from, to)
	w.k.note("block %d->%d", from, to)
	w.faultDid(false, "block %s->%s", nodeName(from), nodeName(to))
	w.tl.netFault(w.k.now, []uint64{from}, fmt.Sprintf("one-way cut to %s", nodeName(to)))
}

// Heal removes every network fault (partitions, isolations, one-way cuts,
// clogs). With Workload.BurstOnHeal, every client then fires at one key at
// once, and again a little later.
func (w *World) Heal() {
	w.net.Heal()
	w.k.note("heal")
	w.faultDid(true, "heal")
	w.tl.netHeal(w.k.now)
	if w.cfg.Workload.BurstOnHeal && !w.workloadOver {
		w.burst()
		w.k.after(time.Duration(50+w.rs.burst.Intn(450))*time.Millisecond, "", w.burst)
	}
}

// Clog holds every message node sends or receives for d from now
// (netsim.Network.Clog): nothing is lost, everything arrives late, in a
// burst when the clog ends. Unclog ends it sooner for new messages.
func (w *World) Clog(node uint64, d time.Duration) {
	w.net.Clog(node, w.k.now+d)
	w.k.note("clog %d for %v", node, d)
	w.faultDid(false, "clog %s for %v", nodeName(node), d)
	w.tl.netFault(w.k.now, []uint64{node}, "clogged")
}

// Unclog ends node's clog for the messages it sends or receives from now.
func (w *World) Unclog(node uint64) {
	w.net.Unclog(node)
	w.k.note("unclog %d", node)
	w.faultDid(true, "unclog %s", nodeName(node))
	w.tl.netEnd(w.k.now, node)
}

// SlowLink makes every message sent from -> to from now on take l
// (netsim.Network.SetLinkLatency): a congested or distant link, slow one
// way. Messages already on their way keep their time. Heal ends it.
func (w *World) SlowLink(from, to uint64, l netsim.Latency) {
	w.net.SetLinkLatency(from, to, l)
	w.k.note("slow link %d->%d %v", from, to, l)
	w.faultDid(false, "slow link %s->%s", nodeName(from), nodeName(to))
	w.tl.netFault(w.k.now, []uint64{from}, fmt.Sprintf("slow link to %s", nodeName(to)))
}

// SetLoss makes the network lose and duplicate messages at these rates
// from now on. The end of the workload restores Config.Net.
func (w *World) SetLoss(loss, dup float64) {
	cfg := w.net.Config()
	cfg.Loss, cfg.Duplicate = loss, dup
	w.net.SetConfig(cfg)
	w.k.note("loss %g dup %g", loss, dup)
	w.faultDid(loss <= w.cfg.Net.Loss && dup <= w.cfg.Net.Duplicate, "network loss %g, duplication %g", loss, dup)
}

// ClientNodes lists the node ids of the workload's clients
// (FirstClientNode+i), which partitions may list like any node.
func (w *World) ClientNodes() []uint64 {
	ids := make([]uint64, w.cfg.Clients)
	for i := range ids {
		ids[i] = uint64(FirstClientNode + i)
	}
	return ids
}

// HotKeys lists the workload's hot keys (Workload.HotKeys).
func (w *World) HotKeys() []string { return w.hot }

// RegionOf returns the id of the region PD says holds key, or 0.
func (w *World) RegionOf(key []byte) uint64 {
	if w.pd == nil {
		return 0
	}
	for _, r := range w.pd.Regions() {
		if r.ContainsKey(key) {
			return r.GetId()
		}
	}
	return 0
}

// Burst makes every client fire one operation at one key at once (see
// Workload.Burst).
func (w *World) Burst() { w.burst() }

// Crash stops store id, keeping only what its disk synced (and, at the
// seed's choice, some unsynced blocks).
func (w *World) Crash(id uint64) {
	if n := w.stores[id-1]; n.up() {
		w.faultDid(false, "crash s%d", id)
		w.crashStore(n, "crashed")
	}
}

// Restart reopens a crashed store from its disk.
func (w *World) Restart(id uint64) {
	if n := w.stores[id-1]; !n.up() && !n.dead && n.started {
		w.faultDid(true, "restart s%d", id)
		w.restartStore(n)
	}
}

// Up reports whether store id is running.
func (w *World) Up(id uint64) bool { return w.stores[id-1].up() }

// TransferLeader moves the leadership of regionID to another voter, chosen
// with r. It does nothing when the region has no leader right now.
func (w *World) TransferLeader(regionID uint64, pick func(n int) int) {
	s, meta := w.leaderMeta(regionID)
	if s == 0 {
		return
	}
	var targets []uint64
	for _, p := range meta.GetPeers() {
		if p.GetStoreId() != s && p.GetRole() == pb.PeerRole_VOTER {
			targets = append(targets, p.GetId())
		}
	}
	if len(targets) == 0 {
		return
	}
	to := targets[pick(len(targets))]
	if err := w.stores[s-1].st.TransferLeader(regionID, to); err == nil {
		w.k.note("transfer leader of region %d from store %d to peer %d", regionID, s, to)
		w.faultDid(false, "transfer leader r%d from s%d", regionID, s)
	}
}

// TransferLeaderTo moves the leadership of regionID to its voter on store
// to, at once (not through PD). It does nothing when the region has no
// leader right now, or no voter on that store, or its leader is there.
func (w *World) TransferLeaderTo(regionID, to uint64) {
	s, meta := w.leaderMeta(regionID)
	if s == 0 || s == to {
		return
	}
	p := meta.PeerOnStore(to)
	if p == nil || p.GetRole() != pb.PeerRole_VOTER {
		return
	}
	if err := w.stores[s-1].st.TransferLeader(regionID, p.GetId()); err == nil {
		w.k.note("transfer leader of region %d from store %d to store %d", regionID, s, to)
		w.faultDid(false, "transfer leader r%d s%d->s%d", regionID, s, to)
	}
}

// leaderMeta is the store leading regionID (0 if none) and the region as
// that store holds it.
func (w *World) leaderMeta(regionID uint64) (store uint64, meta *pb.Region) {
	s := w.LeaderStore(regionID)
	if s == 0 {
		return 0, nil
	}
	for _, rs := range w.stores[s-1].st.Regions() {
		if rs.Region.GetId() == regionID {
			meta = rs.Region
		}
	}
	return s, meta
}

// RequestSplit asks the leader of the region holding key to split there.
func (w *World) RequestSplit(key []byte) {
	if w.pd == nil {
		return
	}
	for _, r := range w.pd.Regions() {
		if r.ContainsKey(key) {
			if s := w.LeaderStore(r.GetId()); s != 0 {
				if err := w.stores[s-1].st.RequestSplit(r.GetId(), key); err != nil {
					w.k.note("manual split at %q refused: %v", key, err)
				} else {
					w.faultDid(false, "split r%d at %q", r.GetId(), key)
				}
			}
			return
		}
	}
}

// DiskErrors makes a fraction p of store id's disk writes, syncs and file
// operations fail from now on (until it crashes). The store fails stop on
// the first one and is restarted from a crash image.
func (w *World) DiskErrors(id uint64, p float64) {
	n := w.stores[id-1]
	if n.up() {
		n.ffs.SetErrorRate(p)
		w.k.note("disk errors on store %d, rate %g", id, p)
		w.faultDid(false, "disk errors on s%d (%g)", id, p)
		w.tl.diskFault(w.k.now, id, fmt.Sprintf("disk fails %g of its operations", p))
	}
}

// TearNextWrite makes store id's disk stop dead after ops more mutating
// operations: the write in progress is torn, everything after it fails,
// and the store crashes with whatever reached the disk.
func (w *World) TearNextWrite(id uint64, ops int) {
	n := w.stores[id-1]
	if n.up() {
		n.ffs.CrashAfter(ops)
		w.k.note("disk of store %d dies after %d more writes", id, ops)
		w.faultDid(false, "disk of s%d dies after %d writes", id, ops)
		w.tl.diskFault(w.k.now, id, fmt.Sprintf("disk dies after %d more writes", ops))
	}
}

// CorruptSnapshotChunk makes the next snapshot chunk with data that store
// id receives arrive corrupted: a byte of each value and a bit of each
// version in it flipped, as a network or a buggy sender might. The receiver must refuse the snapshot
// (its checksum does not match) and get it sent again.
func (w *World) CorruptSnapshotChunk(id uint64) {
	if w.corruptChunks == nil {
		w.corruptChunks = map[uint64]int{}
	}
	w.corruptChunks[id]++
	w.k.note("the next snapshot chunk to store %d arrives corrupted", id)
	w.faultDid(false, "corrupt the next snapshot chunk to s%d", id)
}

// corrupt flips a byte of m's data when m is a snapshot chunk with data
// for a store whose next chunk is to arrive corrupted.
func (w *World) corrupt(to uint64, m *pb.Envelope) {
	c := m.GetSnapshotChunk()
	if w.corruptChunks[to] == 0 || c == nil || len(c.GetPairs()) == 0 {
		return
	}
	w.corruptChunks[to]--
	w.metrics.corrupted++
	for _, kv := range c.GetPairs() {
		if len(kv.GetValue()) == 0 {
			kv.Value = []byte{0}
		} else {
			kv.Value[len(kv.Value)/2] ^= 0x20
		}
		kv.Version ^= 1 << 20 // a wrong version outlives later writes of the key
	}
	w.k.note("snapshot chunk %d of transfer %d to store %d corrupted (%d pairs)", c.GetSeq(), c.GetSnapshotId(), to, len(c.GetPairs()))
}

// OnMembershipChanged runs fn (as an event right after the current one)
// whenever a replica applies a membership change; region is its new state.
func (p *Planner) OnMembershipChanged(fn func(w *World, store uint64, region *pb.Region)) {
	p.w.onMembershipChanged = append(p.w.onMembershipChanged, func(w *World, store uint64, region *pb.Region) {
		w.planAction(w.k.now, "on membership change", true, func() { fn(w, store, region) })
	})
}

// OnSnapshotStarted runs fn (as an event right after the current one)
// whenever a leader on store from starts streaming a snapshot of region to
// store to.
func (p *Planner) OnSnapshotStarted(fn func(w *World, from, to, region uint64)) {
	p.w.onSnapshotStarted = append(p.w.onSnapshotStarted, func(w *World, from, to, region uint64) {
		w.planAction(w.k.now, "on snapshot started", true, func() { fn(w, from, to, region) })
	})
}

// OnPeerDestroyed runs fn (as an event right after the current one)
// whenever a store destroys one of its peers: the peer was removed from its
// region (or found out it had been), and the store keeps a tombstone of the
// region (last, the newest state of the region it knew).
func (p *Planner) OnPeerDestroyed(fn func(w *World, store, peer uint64, last *pb.Region)) {
	p.w.onPeerDestroyed = append(p.w.onPeerDestroyed, func(w *World, store, peer uint64, last *pb.Region) {
		w.planAction(w.k.now, "on peer destroyed", true, func() { fn(w, store, peer, last) })
	})
}

// AllStoreIDs lists every store id, spare stores included.
func (w *World) AllStoreIDs() []uint64 {
	ids := make([]uint64, len(w.stores))
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// AddStore starts spare store id: it joins the cluster with an empty disk
// and PD's schedulers fill it.
func (w *World) AddStore(id uint64) {
	n := w.stores[id-1]
	if n.started {
		return
	}
	n.join = true
	w.k.note("add store %d", id)
	w.faultDid(false, "add s%d", id)
	w.startStore(n)
}

// KillStore crashes store id for good: it is not restarted, even when the
// workload ends, unless revived.
func (w *World) KillStore(id uint64) {
	n := w.stores[id-1]
	w.faultDid(false, "kill s%d for good", id)
	w.crashStore(n, "killed")
	n.dead = true
	w.k.note("kill store %d for good", id)
}

// KillHazard says why destroying store id's disk now could leave a region
// that has a peer there without a leader for good, or "" when losing it is
// survivable. For every region that the store holds a replica of, or that
// a replica names a peer of on it, the voters any replica's view names
// must be a minority on the store, and every one of them elsewhere must be
// up, initialized, at one membership (the same conf_ver, not a joint
// configuration) and hold no membership change in its log it has not
// applied. The store's own replicas may be in any state: what they applied
// of a change was committed, so a voter elsewhere holds it too (and shows
// it), and what they hold uncommitted goes with them or reaches survivors
// that a leader among them brings into line. Learners are not asked: a
// candidate of the one membership the voters hold needs no learner's vote.
//
// A quorum of intact disks in every configuration is not enough. Raft
// (etcd's) takes a membership change into effect when a replica applies
// it, and a replica applies only what a leader told it is committed; a
// learner votes, but for no candidate whose log is shorter than its own.
// Swarm seed 1510: store 3's peer led region 5 out of the joint
// configuration of a move from store 1 to store 4 (the leave committed by
// store 3 and store 4's peer, which crashed before it heard of the commit)
// and appended one entry more to its only live follower, store 1's peer,
// now a learner; store 2's peer had been down through the whole move.
// Store 3 was then killed: store 4's peer, still joint, needed store 1's
// vote and store 1's longer log refused it; store 2's peer, three changes
// behind, likewise; store 1's peer, a learner, could not stand. Voters
// {2, 4} of the region's last configuration were alive and held every
// committed entry, and the region had no leader for the rest of the run
// (etcd raft's README says as much: a member that dies before the others
// hear a membership change committed can stall the group for good). A
// voter that is down (crashed, its disk intact) may be such a replica, and
// cannot be looked at: a kill waits for it too.
func (w *World) KillHazard(id uint64) string {
	type replica struct {
		store uint64
		st    raftstore.RegionStatus
	}
	replicas := map[uint64][]replica{}
	var regions []uint64
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions() {
			rid := rs.Region.GetId()
			if len(replicas[rid]) == 0 {
				regions = append(regions, rid)
			}
			replicas[rid] = append(replicas[rid], replica{store: n.id, st: rs})
		}
	}
	// A region no live store holds is known from PD's view.
	pdView := map[uint64]*pb.Region{}
	if w.pd != nil {
		for _, r := range w.pd.Regions() {
			if len(replicas[r.GetId()]) == 0 {
				pdView[r.GetId()] = r
				regions = append(regions, r.GetId())
			}
		}
	}
	slices.Sort(regions)
	for _, rid := range regions {
		reps := replicas[rid]
		var views []*pb.Region
		concerned := false
		for _, r := range reps {
			concerned = concerned || r.store == id
			if r.st.Initialized {
				views = append(views, r.st.Region)
			}
		}
		if r := pdView[rid]; r != nil {
			views = append(views, r)
		}
		voters := map[uint64]uint64{} // peer id -> store, as any view names them
		for _, v := range views {
			for _, p := range v.GetPeers() {
				concerned = concerned || p.GetStoreId() == id
				if p.GetRole() != pb.PeerRole_LEARNER {
					voters[p.GetId()] = p.GetStoreId()
				}
			}
		}
		if !concerned {
			continue
		}
		ids := make([]uint64, 0, len(voters))
		for pid := range voters {
			ids = append(ids, pid)
		}
		slices.Sort(ids)
		var first, confVer uint64
		onVictim := 0
		for _, pid := range ids {
			store := voters[pid]
			if store == id {
				onVictim++
				continue
			}
			if store < 1 || int(store) > len(w.stores) || !w.stores[store-1].up() {
				return fmt.Sprintf("region %d: voter %d on store %d is down", rid, pid, store)
			}
			j := slices.IndexFunc(reps, func(r replica) bool { return r.store == store && r.st.PeerID == pid })
			if j < 0 || !reps[j].st.Initialized {
				return fmt.Sprintf("region %d: store %d holds no replica of voter %d", rid, store, pid)
			}
			r := reps[j]
			cv := r.st.Region.GetEpoch().GetConfVer()
			switch {
			case first != 0 && cv != confVer:
				return fmt.Sprintf("region %d: voter %d is at conf_ver %d, voter %d at %d", rid, first, confVer, pid, cv)
			case r.st.Region.InJointConfig():
				return fmt.Sprintf("region %d: voter %d is in a joint configuration", rid, pid)
			case w.stores[store-1].st.MembershipChangePending(rid): // a pass over the log: asked last
				return fmt.Sprintf("region %d: voter %d has a membership change in its log not yet applied", rid, pid)
			}
			if first == 0 {
				first, confVer = pid, cv
			}
		}
		if 2*(len(ids)-onVictim) <= len(ids) {
			return fmt.Sprintf("region %d: store %d holds %d of its %d voters", rid, id, onVictim, len(ids))
		}
	}
	return ""
}

// Note writes a line into the run's trace.
func (w *World) Note(format string, args ...any) { w.k.note(format, args...) }

// Revive restarts a killed store from its disk.
func (w *World) Revive(id uint64) {
	n := w.stores[id-1]
	if !n.dead {
		return
	}
	n.dead = false
	w.k.note("revive store %d", id)
	w.faultDid(true, "revive s%d", id)
	w.restartStore(n)
}

// Dead reports whether store id was killed for good.
func (w *World) Dead(id uint64) bool { return w.stores[id-1].dead }

// adminSend sends an order to PD from the admin node.
func (w *World) adminSend(body pb.Body) {
	transport{w, AdminNode}.Send(pb.NewEnvelope(AdminNode, PDNode, body))
}

// MoveRegion asks PD to move regionID's replica from one store to another.
func (w *World) MoveRegion(regionID, from, to uint64) {
	w.nextAdminRequest++
	w.k.note("order move of region %d from store %d to %d (#%d)", regionID, from, to, w.nextAdminRequest)
	w.faultDid(false, "move r%d s%d->s%d", regionID, from, to)
	w.adminSend(&pb.MoveRegionRequest{RequestId: w.nextAdminRequest, RegionId: regionID, FromStore: from, ToStore: to})
}

// OrderTransferLeader asks PD to move regionID's leadership to store to.
func (w *World) OrderTransferLeader(regionID, to uint64) {
	w.nextAdminRequest++
	w.k.note("order leader of region %d to store %d (#%d)", regionID, to, w.nextAdminRequest)
	w.faultDid(false, "order leader of r%d to s%d", regionID, to)
	w.adminSend(&pb.TransferLeaderRequest{RequestId: w.nextAdminRequest, RegionId: regionID, ToStore: to})
}

// Decommission asks PD to empty store id and tombstone it.
func (w *World) Decommission(id uint64) {
	w.nextAdminRequest++
	w.k.note("order decommission of store %d (#%d)", id, w.nextAdminRequest)
	w.faultDid(false, "decommission s%d", id)
	w.adminSend(&pb.DecommissionStoreRequest{RequestId: w.nextAdminRequest, StoreId: id})
}

// Region returns PD's view of region id (a clone), or nil.
func (w *World) Region(id uint64) *pb.Region {
	if w.pd == nil {
		return nil
	}
	for _, r := range w.pd.Regions() {
		if r.GetId() == id {
			return r
		}
	}
	return nil
}

// nodeName names a node for effects and the timeline: s1, pd, client 1000.
func nodeName(id uint64) string {
	switch {
	case id == PDNode:
		return "pd"
	case id >= FirstClientNode:
		return fmt.Sprintf("client %d", id)
	case id == ProbeNode:
		return "probe"
	case id == AdminNode:
		return "admin"
	default:
		return fmt.Sprintf("s%d", id)
	}
}

// groupNames renders partition groups: {s1,pd}|{s2,s3}.
func groupNames(groups [][]uint64) string {
	var b strings.Builder
	for i, g := range groups {
		if i > 0 {
			b.WriteString("|")
		}
		b.WriteString("{")
		for j, id := range g {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString(nodeName(id))
		}
		b.WriteString("}")
	}
	return b.String()
}
