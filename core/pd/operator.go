package pd

import (
	"fmt"
	"slices"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// OpKind is what an operator does to its region.
type OpKind int

const (
	OpMoveReplica    OpKind = iota // move a voter from one store to another
	OpAddReplica                   // add a voter on a store (a region short of replicas)
	OpRemoveReplica                // remove a peer (an extra voter, an orphan learner)
	OpReplaceReplica               // repair: re-create a dead voter on another store, then remove it
	OpTransferLeader               // move leadership to a store
	NumOpKinds       = iota        // the number of kinds (the length of Stats.Operators)
)

func (k OpKind) String() string {
	switch k {
	case OpMoveReplica:
		return "move-replica"
	case OpAddReplica:
		return "add-replica"
	case OpRemoveReplica:
		return "remove-replica"
	case OpReplaceReplica:
		return "replace-replica"
	case OpTransferLeader:
		return "transfer-leader"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Origins: who made an operator.
const (
	OriginManual         = "manual"
	OriginReplicaChecker = "replica-checker"
	OriginDecommission   = "decommission"
	OriginBalanceRegion  = "balance-region"
	OriginBalanceLeader  = "balance-leader"
)

// stepKind is one step of an operator.
type stepKind int

const (
	stepAddLearner     stepKind = iota // order ADD_LEARNER peer; done when the peer is listed
	stepWaitCatchUp                    // no order; done when the peer is listed and not pending
	stepTransferLeader                 // order a transfer; done when the leader is on `to` (or off `away`)
	stepPromote                        // order PROMOTE_LEARNER peer; done when it is a voter
	stepPromoteDemote                  // order PROMOTE_LEARNER peer + DEMOTE_VOTER demote (joint); done when out of joint, peer a voter, demote not
	stepRemove                         // order REMOVE_PEER peer; done when it is gone
)

func (k stepKind) String() string {
	switch k {
	case stepAddLearner:
		return "add-learner"
	case stepWaitCatchUp:
		return "wait-catch-up"
	case stepTransferLeader:
		return "transfer-leader"
	case stepPromote:
		return "promote-learner"
	case stepPromoteDemote:
		return "promote-demote"
	case stepRemove:
		return "remove-peer"
	}
	return fmt.Sprintf("step(%d)", int(k))
}

// step is one step of an operator with its operands.
type step struct {
	kind   stepKind
	peer   *pb.Peer // the peer added, waited for, promoted or removed
	demote *pb.Peer // stepPromoteDemote: the voter that becomes a learner
	to     uint64   // stepTransferLeader: the store that must lead (0: any voter off `away`)
	away   uint64   // stepTransferLeader: the store that must stop leading
}

// String names the step and its operands, for logs and Operators.
func (s step) String() string {
	switch s.kind {
	case stepPromoteDemote:
		return fmt.Sprintf("%s peer %d on store %d, demote peer %d on store %d", s.kind,
			s.peer.GetId(), s.peer.GetStoreId(), s.demote.GetId(), s.demote.GetStoreId())
	case stepTransferLeader:
		if s.to != 0 {
			return fmt.Sprintf("%s to store %d", s.kind, s.to)
		}
		return fmt.Sprintf("%s away from store %d", s.kind, s.away)
	}
	return fmt.Sprintf("%s peer %d on store %d", s.kind, s.peer.GetId(), s.peer.GetStoreId())
}

// operator is a running plan of membership or leadership changes on one
// region. It advances only when PD observes a step done in the region's
// reported state; each step's order is re-sent on every heartbeat until then.
type operator struct {
	id       uint64
	kind     OpKind
	origin   string
	region   uint64
	from, to uint64 // the store losing a replica (0: none), the store gaining a replica or leadership (0: none)
	steps    []step
	cur      int // index of the current step
	start    time.Time
	deadline time.Time
}

// OperatorInfo is a snapshot of a running operator, for observers.
type OperatorInfo struct {
	ID        uint64
	Region    uint64
	Kind      OpKind
	Origin    string // who made it: manual, replica-checker, decommission, balance-region, balance-leader
	From      uint64 // store losing a replica, 0 if none
	To        uint64 // store gaining a replica or the leadership, 0 if none
	Step      string // the current step, with its operands
	StepIndex int    // 0-based index of the current step
	Steps     int    // number of steps
	Start     time.Time
	Deadline  time.Time
}

func (o *operator) info() OperatorInfo {
	i := OperatorInfo{ID: o.id, Region: o.region, Kind: o.kind, Origin: o.origin, From: o.from, To: o.to,
		StepIndex: o.cur, Steps: len(o.steps), Start: o.start, Deadline: o.deadline}
	if o.cur < len(o.steps) {
		i.Step = o.steps[o.cur].String()
	} else {
		i.Step = "done"
	}
	return i
}

// describe renders the operator for logs and errors.
func (o *operator) describe() string {
	return fmt.Sprintf("operator %d (%s of region %d)", o.id, o.kind, o.region)
}

// limitStores are the stores whose StoreLimit the operator counts against:
// the store that receives a replica or the leadership, and the store that
// gives up a replica. A replaced (dead) store does no work and is not
// counted, nor is the store a leader leaves.
func (o *operator) limitStores() []uint64 {
	var out []uint64
	if o.to != 0 {
		out = append(out, o.to)
	}
	if o.from != 0 && o.kind != OpReplaceReplica && o.kind != OpTransferLeader {
		out = append(out, o.from)
	}
	return out
}

// involves reports whether the operator counts against store's limit.
func (o *operator) involves(store uint64) bool { return slices.Contains(o.limitStores(), store) }

// projection turns a region's stores and leader store into what they will
// be when the operator finishes.
func (o *operator) projection(stores []uint64, leader uint64) ([]uint64, uint64) {
	switch o.kind {
	case OpTransferLeader:
		return stores, o.to
	case OpMoveReplica, OpReplaceReplica, OpRemoveReplica:
		stores = slices.DeleteFunc(stores, func(s uint64) bool { return s == o.from })
		if leader == o.from {
			leader = 0 // it will go to some remaining voter
		}
	}
	if o.to != 0 && !slices.Contains(stores, o.to) {
		stores = append(stores, o.to)
	}
	return stores, leader
}

// Plans. Each returns the steps of one kind of operator on region r.

// movePlan moves voter out to the new learner in (TiKV's way): add in as a
// learner, wait until it has caught up, move the leadership off out's store
// if it is there, swap the two in one joint change, remove out. A region
// whose only voter is out cannot hand leadership to anyone before in is a
// voter, so it promotes in first, then transfers, then removes out.
func movePlan(r *pb.Region, out, in *pb.Peer) []step {
	add := []step{{kind: stepAddLearner, peer: in}, {kind: stepWaitCatchUp, peer: in}}
	if voters(r) == 1 {
		return append(add,
			step{kind: stepPromote, peer: in},
			step{kind: stepTransferLeader, away: out.GetStoreId()},
			step{kind: stepRemove, peer: out})
	}
	return append(add,
		step{kind: stepTransferLeader, away: out.GetStoreId()},
		step{kind: stepPromoteDemote, peer: in, demote: out},
		step{kind: stepRemove, peer: out})
}

// addPlan adds a voter: learner, catch up, promote.
func addPlan(in *pb.Peer) []step {
	return []step{{kind: stepAddLearner, peer: in}, {kind: stepWaitCatchUp, peer: in}, {kind: stepPromote, peer: in}}
}

// removePlan removes a peer, moving the leadership off its store first.
func removePlan(out *pb.Peer) []step {
	return []step{{kind: stepTransferLeader, away: out.GetStoreId()}, {kind: stepRemove, peer: out}}
}

// transferPlan moves the leadership to store to.
func transferPlan(to uint64) []step { return []step{{kind: stepTransferLeader, to: to}} }

// voters counts the region's peers with role VOTER.
func voters(r *pb.Region) int {
	n := 0
	for _, peer := range r.GetPeers() {
		if peer.GetRole() == pb.PeerRole_VOTER {
			n++
		}
	}
	return n
}

// status tells whether step s is done in region state r with the given
// leader and health, or why the operator cannot go on (fail != "").
func (s step) status(r *pb.Region, leader *pb.Peer, h *health) (done bool, fail string) {
	switch s.kind {
	case stepAddLearner:
		if got := r.PeerByID(s.peer.GetId()); got != nil {
			if got.GetStoreId() != s.peer.GetStoreId() {
				return false, fmt.Sprintf("peer %d is on store %d, not %d", got.GetId(), got.GetStoreId(), s.peer.GetStoreId())
			}
			return true, ""
		}
		if other := r.PeerOnStore(s.peer.GetStoreId()); other != nil {
			return false, fmt.Sprintf("store %d holds another peer %d of the region", s.peer.GetStoreId(), other.GetId())
		}
	case stepWaitCatchUp:
		if r.PeerByID(s.peer.GetId()) == nil {
			return false, fmt.Sprintf("learner %d left the region", s.peer.GetId())
		}
		return !h.isPending(r.GetEpoch().GetConfVer(), s.peer.GetId()), ""
	case stepTransferLeader:
		if s.to != 0 {
			if v := r.PeerOnStore(s.to); v == nil || v.GetRole() != pb.PeerRole_VOTER {
				return false, fmt.Sprintf("store %d holds no voter of the region", s.to)
			}
			return leader.GetStoreId() == s.to, ""
		}
		return leader != nil && leader.GetStoreId() != s.away, ""
	case stepPromote:
		got := r.PeerByID(s.peer.GetId())
		if got == nil {
			return false, fmt.Sprintf("learner %d left the region", s.peer.GetId())
		}
		return got.GetRole() == pb.PeerRole_VOTER, ""
	case stepPromoteDemote:
		in, out := r.PeerByID(s.peer.GetId()), r.PeerByID(s.demote.GetId())
		switch {
		case in == nil:
			return false, fmt.Sprintf("learner %d left the region", s.peer.GetId())
		case r.InJointConfig():
			return false, ""
		case in.GetRole() == pb.PeerRole_VOTER && (out == nil || out.GetRole() == pb.PeerRole_LEARNER):
			return true, ""
		case in.GetRole() == pb.PeerRole_LEARNER && out != nil && out.GetRole() == pb.PeerRole_VOTER:
			return false, ""
		}
		return false, fmt.Sprintf("unexpected membership: peer %d %s, peer %d %s", s.peer.GetId(), roleOf(in),
			s.demote.GetId(), roleOf(out))
	case stepRemove:
		return r.PeerByID(s.peer.GetId()) == nil, ""
	}
	return false, ""
}

// roleOf names a peer's role, or "absent".
func roleOf(p *pb.Peer) string {
	if p == nil {
		return "absent"
	}
	return p.GetRole().String()
}
