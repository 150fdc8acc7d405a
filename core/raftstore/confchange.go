package raftstore

import (
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// Membership changes. PD orders them (RegionOrder) and the region's leader
// proposes each as a raft ConfChangeV2 whose context is the pb.ChangePeers
// it was made from, for the region's epoch at that moment. Every replica
// applies it the same way: it checks the epoch and that the context and the
// raft change agree, then lets raft apply it and records the region's new
// peers and conf_ver (+1) with raft's new conf state in one durable record.
// A move is four changes (TiKV's way): add the target as a learner; once it
// has caught up, one joint change promoting it and demoting the source;
// raft leaves the joint configuration on its own; remove the source.

// confChangeFor turns a ChangePeers into the raft conf change that makes it,
// after checking it against the region: one change, or a promotion and a
// demotion together (a joint change that raft leaves on its own); never
// while the region is in a joint configuration.
func confChangeFor(meta *pb.Region, cp *pb.ChangePeers) (*raftpb.ConfChangeV2, error) {
	if meta.InJointConfig() {
		return nil, fmt.Errorf("region %d is in a joint configuration", meta.GetId())
	}
	changes := cp.GetChanges()
	cc := &raftpb.ConfChangeV2{}
	switch len(changes) {
	case 1:
	case 2:
		kinds := []pb.ChangeType{changes[0].GetType(), changes[1].GetType()}
		slices.Sort(kinds)
		if kinds[0] != pb.ChangeType_PROMOTE_LEARNER || kinds[1] != pb.ChangeType_DEMOTE_VOTER {
			return nil, fmt.Errorf("two changes must be a promotion and a demotion, not %v and %v", changes[0].GetType(), changes[1].GetType())
		}
		cc.Transition = raftpb.ConfChangeTransition_ConfChangeTransitionJointImplicit.Enum()
	default:
		return nil, fmt.Errorf("%d changes: one, or a promotion with a demotion", len(changes))
	}
	for _, c := range changes {
		pp := c.GetPeer()
		if pp.GetId() == 0 || pp.GetStoreId() == 0 {
			return nil, fmt.Errorf("%v of a peer without id or store", c.GetType())
		}
		cur := meta.PeerByID(pp.GetId())
		var t raftpb.ConfChangeType
		switch c.GetType() {
		case pb.ChangeType_ADD_LEARNER:
			if cur != nil {
				return nil, fmt.Errorf("peer %d is already in region %d", pp.GetId(), meta.GetId())
			}
			if o := meta.PeerOnStore(pp.GetStoreId()); o != nil {
				return nil, fmt.Errorf("store %d already holds peer %d of region %d", pp.GetStoreId(), o.GetId(), meta.GetId())
			}
			t = raftpb.ConfChangeType_ConfChangeAddLearnerNode
		case pb.ChangeType_PROMOTE_LEARNER:
			if cur == nil || cur.GetRole() != pb.PeerRole_LEARNER {
				return nil, fmt.Errorf("peer %d is not a learner of region %d", pp.GetId(), meta.GetId())
			}
			t = raftpb.ConfChangeType_ConfChangeAddNode
		case pb.ChangeType_DEMOTE_VOTER:
			if cur == nil || cur.GetRole() != pb.PeerRole_VOTER {
				return nil, fmt.Errorf("peer %d is not a voter of region %d", pp.GetId(), meta.GetId())
			}
			t = raftpb.ConfChangeType_ConfChangeAddLearnerNode
		case pb.ChangeType_REMOVE_PEER:
			if cur == nil {
				return nil, fmt.Errorf("peer %d is not in region %d", pp.GetId(), meta.GetId())
			}
			t = raftpb.ConfChangeType_ConfChangeRemoveNode
		default:
			return nil, fmt.Errorf("unknown change %v", c.GetType())
		}
		if cur != nil && cur.GetStoreId() != pp.GetStoreId() {
			return nil, fmt.Errorf("peer %d is on store %d, not %d", pp.GetId(), cur.GetStoreId(), pp.GetStoreId())
		}
		cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: proto.Uint64(pp.GetId())})
	}
	return cc, nil
}

// sameConfChange reports whether two conf changes make the same change.
func sameConfChange(a, b *raftpb.ConfChangeV2) bool {
	if a.GetTransition() != b.GetTransition() || len(a.GetChanges()) != len(b.GetChanges()) {
		return false
	}
	for i, c := range a.GetChanges() {
		o := b.GetChanges()[i]
		if c.GetType() != o.GetType() || c.GetNodeId() != o.GetNodeId() {
			return false
		}
	}
	return true
}

// checkConfChange runs cc against the membership cs the way raft will when
// it applies it, and returns raft's objection, if any. raft panics on a
// change it refuses, so none reaches it unchecked.
func checkConfChange(cs *raftpb.ConfState, cc *raftpb.ConfChangeV2, lastIndex uint64) error {
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: lastIndex}
	cfg, trk, err := confchange.Restore(chg, cs)
	if err != nil {
		return fmt.Errorf("restore membership: %w", err)
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, trk
	switch autoLeave, joint := cc.EnterJoint(); {
	case cc.LeaveJoint():
		_, _, err = chg.LeaveJoint()
	case joint:
		_, _, err = chg.EnterJoint(autoLeave, cc.GetChanges()...)
	default:
		_, _, err = chg.Simple(cc.GetChanges()...)
	}
	return err
}

// membershipAfter is the region's meta once raft's membership is cs: every
// peer cs names, with its role, its store taken from the old meta or from
// the change that added it, in the old order with new peers last; conf_ver
// one higher.
func membershipAfter(meta *pb.Region, cs *raftpb.ConfState, cp *pb.ChangePeers) *pb.Region {
	role := map[uint64]pb.PeerRole{}
	joint := len(cs.GetVotersOutgoing()) > 0
	for _, id := range cs.GetVoters() {
		role[id] = pb.PeerRole_VOTER
		if joint && !slices.Contains(cs.GetVotersOutgoing(), id) {
			role[id] = pb.PeerRole_INCOMING_VOTER
		}
	}
	for _, id := range cs.GetVotersOutgoing() {
		if _, ok := role[id]; !ok {
			role[id] = pb.PeerRole_DEMOTING_VOTER
		}
	}
	for _, id := range cs.GetLearners() {
		role[id] = pb.PeerRole_LEARNER
	}
	out := meta.CloneVT()
	out.Peers = nil
	add := func(pp *pb.Peer) {
		r, ok := role[pp.GetId()]
		if !ok || out.PeerByID(pp.GetId()) != nil {
			return
		}
		out.Peers = append(out.Peers, &pb.Peer{Id: pp.GetId(), StoreId: pp.GetStoreId(), Role: r})
	}
	for _, pp := range meta.GetPeers() {
		add(pp)
	}
	for _, c := range cp.GetChanges() {
		add(c.GetPeer())
	}
	out.Epoch.ConfVer++
	return out
}

// membershipChanged: this replica applied a membership change; meta is the
// region's new state. removedSelf: this peer is no longer a member.
// removed: the peers the change removed.
type membershipChanged struct {
	meta        *pb.Region
	removedSelf bool
	removed     []*pb.Peer
}

func (*membershipChanged) isApplyResult() {}

// applyConfChange applies a committed conf change entry. A change that
// does not match the region (another epoch, a context that disagrees with
// the raft change, a change raft would refuse) is skipped the same way on
// every replica: raft's membership is left as it is.
func (p *peer) applyConfChange(e *raftpb.Entry) (applyResult, error) {
	var cc *raftpb.ConfChangeV2
	if e.GetType() == raftpb.EntryType_EntryConfChange {
		var c raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &c); err != nil {
			return p.skipConfChange(e, fmt.Sprintf("undecodable: %v", err))
		}
		cc = c.AsV2()
	} else {
		cc = &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return p.skipConfChange(e, fmt.Sprintf("undecodable: %v", err))
		}
	}
	meta := p.region.Meta()
	var cp *pb.ChangePeers
	if cc.LeaveJoint() {
		if meta.InJointConfig() && p.s.bug.Fire(buggify.LeaveJointCrash) {
			return nil, buggify.Crash(buggify.LeaveJointCrash) // about to leave the joint configuration
		}
		if !meta.InJointConfig() {
			return p.skipConfChange(e, "leave-joint outside a joint configuration")
		}
	} else {
		cp = &pb.ChangePeers{}
		if err := proto.Unmarshal(cc.GetContext(), cp); err != nil {
			return p.skipConfChange(e, fmt.Sprintf("undecodable context: %v", err))
		}
		h := cp.GetHeader()
		if h.GetRegionId() != p.regionID() || !h.GetRegionEpoch().Equal(meta.GetEpoch()) {
			return p.skipConfChange(e, fmt.Sprintf("made for region %d at %s, region is at %s",
				h.GetRegionId(), h.GetRegionEpoch().Describe(), meta.GetEpoch().Describe()))
		}
		want, err := confChangeFor(meta, cp)
		if err != nil {
			return p.skipConfChange(e, err.Error())
		}
		if !sameConfChange(want, cc) {
			return p.skipConfChange(e, "raft change does not match its context")
		}
	}
	if err := checkConfChange(p.region.ConfState(), cc, e.GetIndex()); err != nil {
		return p.skipConfChange(e, err.Error())
	}
	cs := p.rn.ApplyConfChange(cc)
	next := membershipAfter(meta, cs, cp)
	p.region.ApplyMembership(next, cs, e.GetIndex())
	if p.s.bug.Fire(buggify.ConfApplyCrash) {
		return nil, buggify.Crash(buggify.ConfApplyCrash) // applied in memory, not synced
	}
	p.refreshPeerCache()
	p.s.stats.ConfChangesApplied++
	p.s.log.Info("membership changed", "region", p.regionID(), "index", e.GetIndex(),
		"conf_ver", next.GetEpoch().GetConfVer(), "changes", raftpb.ConfChangesToString(cc.GetChanges()))
	var removed []*pb.Peer
	for _, pp := range meta.GetPeers() {
		if next.PeerByID(pp.GetId()) == nil {
			removed = append(removed, pp.CloneVT())
		}
	}
	return &membershipChanged{meta: next, removedSelf: next.PeerByID(p.id) == nil, removed: removed}, nil
}

func (p *peer) skipConfChange(e *raftpb.Entry, why string) (applyResult, error) {
	p.s.stats.ConfChangesSkipped++
	p.s.bug.Reach(buggify.StaleConfChangeSkipped)
	p.s.log.Warn("conf change skipped", "region", p.regionID(), "index", e.GetIndex(), "reason", why)
	return nil, nil
}

// proposeChangePeers proposes a membership change PD ordered. It is checked
// here as it will be at apply, so that what is proposed can apply.
func (p *peer) proposeChangePeers(cp *pb.ChangePeers) error {
	meta := p.region.Meta()
	h := cp.GetHeader()
	if h.GetRegionId() != p.regionID() || !h.GetRegionEpoch().Equal(meta.GetEpoch()) {
		return fmt.Errorf("change made for region %d at %s, region is at %s", h.GetRegionId(), h.GetRegionEpoch().Describe(), meta.GetEpoch().Describe())
	}
	cc, err := confChangeFor(meta, cp)
	if err != nil {
		return err
	}
	for _, c := range cp.GetChanges() {
		if c.GetType() == pb.ChangeType_REMOVE_PEER && c.GetPeer().GetId() == p.id {
			return fmt.Errorf("the leader does not remove itself: transfer leadership first")
		}
	}
	last, _ := p.region.LastIndex()
	if err := checkConfChange(p.region.ConfState(), cc, last); err != nil {
		return err
	}
	if p.rn.BasicStatus().RaftState != raft.StateLeader {
		return fmt.Errorf("not the leader")
	}
	ctx, err := proto.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode change: %w", err)
	}
	cc.Context = ctx
	p.s.wake(p)
	if err := p.rn.ProposeConfChange(cc); err != nil {
		return err
	}
	p.s.stats.ConfChangesProposed++
	if p.s.bug.Fire(buggify.ConfProposeRepeat) {
		// The same change again, unchecked: once the first applied, this
		// one is stale and every replica must skip it.
		again := proto.Clone(cc).(*raftpb.ConfChangeV2)
		p.s.later(p.s.bug.Delay(0, 2*time.Second), func() { p.s.proposeConfChangeLate(p, again) })
	}
	if p.s.bug.Fire(buggify.ConfProposeTransfer) {
		p.transferAway()
	}
	return nil
}
