package pd

import (
	"fmt"

	"github.com/multiraft/multiraft/core/pb"
)

// Manual orders. Each is refused, with an error that says why and without
// changing anything, unless it can start; an accepted move or transfer
// returns its operator's id. Manual operators obey the one-operator-per-
// region rule but not StoreLimit (they count against it for the
// schedulers).

// MoveRegion starts a move of region's voter on store from to store to
// (a move-replica operator).
func (p *PD) MoveRegion(region, from, to uint64) (uint64, error) {
	e, err := p.regionForOrder(region)
	if err != nil {
		return 0, err
	}
	r := e.region
	out := r.PeerOnStore(from)
	switch {
	case from == to:
		return 0, fmt.Errorf("pd: move region %d: from and to are both store %d", region, from)
	case p.stores[from] == nil:
		return 0, fmt.Errorf("pd: move region %d: store %d is unknown", region, from)
	case out == nil:
		return 0, fmt.Errorf("pd: move region %d: store %d holds no peer of it", region, from)
	case out.GetRole() != pb.PeerRole_VOTER:
		return 0, fmt.Errorf("pd: move region %d: its peer %d on store %d is a %s, not a voter",
			region, out.GetId(), from, out.GetRole())
	}
	if err := p.checkTarget(to); err != nil {
		return 0, fmt.Errorf("pd: move region %d: %w", region, err)
	}
	if in := r.PeerOnStore(to); in != nil {
		return 0, fmt.Errorf("pd: move region %d: store %d already holds its peer %d", region, to, in.GetId())
	}
	op := p.startOperator(OpMoveReplica, OriginManual, r, from, to, movePlan(r, out, p.newLearner(to)))
	return op.id, nil
}

// TransferLeader starts a transfer of region's leadership to its voter on
// store to (a transfer-leader operator).
func (p *PD) TransferLeader(region, to uint64) (uint64, error) {
	e, err := p.regionForOrder(region)
	if err != nil {
		return 0, err
	}
	if err := p.checkTarget(to); err != nil {
		return 0, fmt.Errorf("pd: transfer leader of region %d: %w", region, err)
	}
	r := e.region
	v := r.PeerOnStore(to)
	switch {
	case v == nil:
		return 0, fmt.Errorf("pd: transfer leader of region %d: store %d holds no peer of it", region, to)
	case v.GetRole() != pb.PeerRole_VOTER:
		return 0, fmt.Errorf("pd: transfer leader of region %d: its peer %d on store %d is a %s, not a voter",
			region, v.GetId(), to, v.GetRole())
	case e.leader.GetId() == v.GetId():
		return 0, fmt.Errorf("pd: transfer leader of region %d: store %d already leads it", region, to)
	}
	op := p.startOperator(OpTransferLeader, OriginManual, r, e.leader.GetStoreId(), to, transferPlan(to))
	return op.id, nil
}

// DecommissionStore makes store Offline: the decommission scheduler moves
// its replicas away and then makes it a Tombstone. Operators moving
// replicas onto it are cancelled. It is refused when the stores left (Up
// or Disconnected, other than this one) would be fewer than Replicas.
func (p *PD) DecommissionStore(id uint64) error {
	s := p.stores[id]
	switch {
	case s == nil:
		return fmt.Errorf("pd: decommission: store %d is unknown", id)
	case s.tombstone:
		return fmt.Errorf("pd: decommission: store %d is already a tombstone", id)
	case s.offline:
		return fmt.Errorf("pd: decommission: store %d is already being decommissioned", id)
	}
	left := 0
	for _, o := range p.storeIDs() {
		if st := p.storeState(o); o != id && (st == StoreUp || st == StoreDisconnected) {
			left++
		}
	}
	if left < p.set.replicas {
		return fmt.Errorf("pd: decommission: store %d: only %d usable stores would be left for %d replicas per region",
			id, left, p.set.replicas)
	}
	s.offline = true
	p.touch()
	p.log.Info("pd: store offline (decommissioning)", "store", id)
	p.checkOperators()
	return nil
}

// regionForOrder returns the newest state of region for a manual order, or
// why it cannot take one: unknown, busy with an operator, or joint.
func (p *PD) regionForOrder(region uint64) (*entry, error) {
	e := p.view.known(region)
	if e == nil {
		return nil, fmt.Errorf("pd: region %d is unknown", region)
	}
	if op := p.ops[region]; op != nil {
		return nil, fmt.Errorf("pd: region %d is busy with %s", region, op.describe())
	}
	if e.region.InJointConfig() {
		return nil, fmt.Errorf("pd: region %d is in a joint configuration", region)
	}
	return e, nil
}

// checkTarget returns why store cannot receive a replica or leadership:
// unknown, or not Up.
func (p *PD) checkTarget(store uint64) error {
	if p.stores[store] == nil {
		return fmt.Errorf("store %d is unknown", store)
	}
	if st := p.storeState(store); st != StoreUp {
		return fmt.Errorf("store %d is %s", store, st)
	}
	return nil
}

func (p *PD) onMoveRegion(m *pb.Envelope, req *pb.MoveRegionRequest) {
	id, err := p.MoveRegion(req.GetRegionId(), req.GetFromStore(), req.GetToStore())
	p.answerAdmin(m, req.GetRequestId(), id, err)
}

func (p *PD) onTransferLeader(m *pb.Envelope, req *pb.TransferLeaderRequest) {
	id, err := p.TransferLeader(req.GetRegionId(), req.GetToStore())
	p.answerAdmin(m, req.GetRequestId(), id, err)
}

func (p *PD) onDecommissionStore(m *pb.Envelope, req *pb.DecommissionStoreRequest) {
	p.answerAdmin(m, req.GetRequestId(), 0, p.DecommissionStore(req.GetStoreId()))
}

// answerAdmin answers a manual order.
func (p *PD) answerAdmin(m *pb.Envelope, requestID, opID uint64, err error) {
	p.stats.AdminRequests++
	resp := &pb.AdminResponse{RequestId: requestID, OperatorId: opID}
	if err != nil {
		p.stats.AdminErrors++
		resp.Error = err.Error()
		p.log.Info("pd: manual order refused", "from", m.GetFrom(), "reason", resp.Error)
	}
	p.reply(m, resp)
}
