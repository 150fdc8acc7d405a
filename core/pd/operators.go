package pd

import (
	"fmt"
	"slices"

	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// OpEvent is something that happened to an operator.
type OpEvent int

const (
	OpStarted   OpEvent = iota // created
	OpStepDone                 // a step was observed done; Op shows the next one
	OpFinished                 // every step done
	OpTimedOut                 // not finished by its deadline
	OpCancelled                // could not go on: Reason says why
)

func (e OpEvent) String() string {
	switch e {
	case OpStarted:
		return "started"
	case OpStepDone:
		return "step done"
	case OpFinished:
		return "finished"
	case OpTimedOut:
		return "timed out"
	case OpCancelled:
		return "cancelled"
	}
	return fmt.Sprintf("OpEvent(%d)", int(e))
}

// OperatorEvent tells an observer what happened to an operator.
type OperatorEvent struct {
	Event  OpEvent
	Op     OperatorInfo // the operator after the event
	Reason string       // OpStepDone: the step done; OpCancelled: why
}

// Hooks let an observer (the simulator's trace and metrics, a runtime's
// metrics) follow PD's operators without PD knowing who listens.
type Hooks struct {
	Operator func(OperatorEvent)
}

// SetHooks installs observer hooks.
func (p *PD) SetHooks(h Hooks) { p.hooks = h }

// OperatorCounts counts the operators of one kind by how they ended.
type OperatorCounts struct {
	Started   uint64
	Finished  uint64
	TimedOut  uint64
	Cancelled uint64
}

// Operators returns a snapshot of the running operators, by operator id.
func (p *PD) Operators() []OperatorInfo {
	out := make([]OperatorInfo, 0, len(p.ops))
	for _, op := range p.ops {
		out = append(out, op.info())
	}
	slices.SortFunc(out, func(a, b OperatorInfo) int { return cmpUint(a.ID, b.ID) })
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (p *PD) emit(e OpEvent, op *operator, reason string) {
	if p.hooks.Operator != nil {
		p.hooks.Operator(OperatorEvent{Event: e, Op: op.info(), Reason: reason})
	}
}

// startOperator registers a new operator on region r. The caller has
// checked that r has none. The first order goes out with r's next heartbeat.
func (p *PD) startOperator(kind OpKind, origin string, r *pb.Region, from, to uint64, steps []step) *operator {
	now := p.env.Clock.Now()
	p.touch()
	p.nextOpID++
	op := &operator{id: p.nextOpID, kind: kind, origin: origin, region: r.GetId(), from: from, to: to,
		steps: steps, start: now, deadline: now.Add(p.set.operatorTimeout)}
	p.ops[op.region] = op
	p.stats.Operators[kind].Started++
	p.log.Info("pd: operator started", "op", op.id, "kind", kind.String(), "origin", origin,
		"region", r.Describe(), "from", from, "to", to, "step", op.steps[0].String())
	p.emit(OpStarted, op, "")
	return op
}

// endOperator removes op; e is OpFinished, OpTimedOut or OpCancelled.
func (p *PD) endOperator(op *operator, e OpEvent, reason string) {
	p.touch()
	delete(p.ops, op.region)
	c := &p.stats.Operators[op.kind]
	switch e {
	case OpFinished:
		c.Finished++
	case OpTimedOut:
		c.TimedOut++
		p.bug.Reach(buggify.OperatorTimedOut)
	case OpCancelled:
		c.Cancelled++
		p.bug.Reach(buggify.OperatorCancelled)
	}
	p.log.Info("pd: operator "+e.String(), "op", op.id, "kind", op.kind.String(), "region", op.region,
		"step", op.info().Step, "reason", reason)
	p.emit(e, op, reason)
}

// advance moves op past every step that region state e shows done, ends it
// when it finished or cannot go on, and returns the order for its current
// step (nil when there is none to give).
func (p *PD) advance(op *operator, e *entry) *pb.RegionOrder {
	r, h := e.region, p.health[op.region]
	for op.cur < len(op.steps) {
		s := op.steps[op.cur]
		done, fail := s.status(r, e.leader, h)
		if fail != "" {
			p.endOperator(op, OpCancelled, fmt.Sprintf("%s: %s", s, fail))
			return nil
		}
		if !done {
			break
		}
		op.cur++
		p.touch()
		p.emit(OpStepDone, op, s.String())
	}
	if op.cur == len(op.steps) {
		p.endOperator(op, OpFinished, "")
		return nil
	}
	// The replica checker chose the voter a remove-replica takes out by
	// the region's health when it started; if the region's report now says
	// its removal would leave no reachable quorum, the choice is stale:
	// cancel, and let the checker choose again (or wait) rather than hold
	// the region to it.
	if out := op.steps[len(op.steps)-1].peer; op.kind == OpRemoveReplica && !r.InJointConfig() {
		if v := r.PeerByID(out.GetId()); v != nil {
			var why string
			switch {
			case v.GetRole() != out.GetRole():
				// It chose the peer in its role then: a learner it took for
				// the leftover of a move may be a voter now that the move
				// finished behind PD's back (PD cut off while raft promoted
				// it and demoted the voter it replaced): removing it would
				// leave two voters and the leftover learner (swarm seed
				// 6973: region 5 then lost its quorum with one store).
				why = fmt.Sprintf("peer %d on store %d is a %v now, not the %v chosen for removal",
					v.GetId(), v.GetStoreId(), v.GetRole(), out.GetRole())
			case v.GetRole() != pb.PeerRole_VOTER:
			case op.origin == OriginReplicaChecker && voters(r) <= p.set.replicas:
				// Nor is a voter the checker took for one too many once the
				// region has no more voters than it should.
				why = fmt.Sprintf("the region has %d voters now, no more than %d", voters(r), p.set.replicas)
			case !p.keepsQuorum(r, h, nil, v):
				why = fmt.Sprintf("removing voter %d on store %d would leave no reachable quorum", v.GetId(), v.GetStoreId())
			}
			if why != "" {
				p.endOperator(op, OpCancelled, why)
				return nil
			}
		}
	}
	return p.stepOrder(op.steps[op.cur], e, h)
}

// stepOrder is the order that makes step s happen in region state e, or
// nil when there is nothing to order now: the step only waits, raft is
// leaving a joint configuration, or no peer can take the leadership.
func (p *PD) stepOrder(s step, e *entry, h *health) *pb.RegionOrder {
	r, leader := e.region, e.leader
	if r.InJointConfig() {
		return nil
	}
	change := func(changes ...*pb.PeerChange) *pb.RegionOrder {
		p.allowConfChange(r.GetId(), r.GetEpoch(), uint64(min(len(changes), 2)))
		return &pb.RegionOrder{
			RegionId:    r.GetId(),
			RegionEpoch: r.GetEpoch().CloneVT(),
			ChangePeers: &pb.ChangePeers{
				Header:  &pb.RequestHeader{RegionId: r.GetId(), RegionEpoch: r.GetEpoch().CloneVT()},
				Changes: changes,
			},
		}
	}
	transfer := func(to *pb.Peer) *pb.RegionOrder {
		if to == nil {
			return nil
		}
		return &pb.RegionOrder{RegionId: r.GetId(), RegionEpoch: r.GetEpoch().CloneVT(),
			TransferLeader: peerRef(to)}
	}
	// hold withholds a change of the voters that would leave the region
	// without a reachable quorum (quorum.go): the step waits for a
	// heartbeat that shows it safe, or for the operator's end.
	hold := func(in, out *pb.Peer) bool {
		if p.keepsQuorum(r, h, in, out) {
			return false
		}
		p.stats.QuorumHolds++
		p.log.Debug("pd: step held: it would leave no reachable quorum", "region", r.Describe(), "step", s.String())
		return true
	}
	switch s.kind {
	case stepAddLearner:
		return change(&pb.PeerChange{Type: pb.ChangeType_ADD_LEARNER,
			Peer: &pb.Peer{Id: s.peer.GetId(), StoreId: s.peer.GetStoreId(), Role: pb.PeerRole_LEARNER}})
	case stepPromote:
		if hold(s.peer, nil) {
			return nil
		}
		return change(&pb.PeerChange{Type: pb.ChangeType_PROMOTE_LEARNER, Peer: peerRef(s.peer)})
	case stepPromoteDemote:
		if leader.GetId() == s.demote.GetId() {
			return transfer(p.transferTarget(r, s.demote.GetStoreId(), h))
		}
		if hold(s.peer, s.demote) {
			return nil
		}
		return change(
			&pb.PeerChange{Type: pb.ChangeType_PROMOTE_LEARNER, Peer: peerRef(s.peer)},
			&pb.PeerChange{Type: pb.ChangeType_DEMOTE_VOTER, Peer: peerRef(s.demote)})
	case stepRemove:
		if leader.GetId() == s.peer.GetId() {
			return transfer(p.transferTarget(r, s.peer.GetStoreId(), h))
		}
		if v := r.PeerByID(s.peer.GetId()); v != nil && v.GetRole() == pb.PeerRole_VOTER && hold(nil, v) {
			return nil
		}
		return change(&pb.PeerChange{Type: pb.ChangeType_REMOVE_PEER, Peer: peerRef(s.peer)})
	case stepTransferLeader:
		if s.to != 0 {
			return transfer(r.PeerOnStore(s.to))
		}
		return transfer(p.transferTarget(r, s.away, h))
	}
	return nil
}

// peerRef is the id and store of a peer, as a change or a transfer names it.
func peerRef(peer *pb.Peer) *pb.Peer {
	return &pb.Peer{Id: peer.GetId(), StoreId: peer.GetStoreId(), Role: peer.GetRole()}
}

// transferTarget picks the voter to hand region r's leadership to when it
// must leave store away: a voter (role VOTER) on another store, preferring
// one on an Up store that its leader reports neither pending nor down, then
// the lowest store id. nil when no voter can take it.
func (p *PD) transferTarget(r *pb.Region, away uint64, h *health) *pb.Peer {
	var best *pb.Peer
	bestRank := 3
	for _, v := range r.GetPeers() {
		if v.GetRole() != pb.PeerRole_VOTER || v.GetStoreId() == away || h.isDown(v.GetId()) {
			continue
		}
		rank := 0
		switch st := p.storeState(v.GetStoreId()); {
		case st == StoreDown || st == StoreTombstone:
			continue
		case st != StoreUp:
			rank = 2
		case h.isPending(r.GetEpoch().GetConfVer(), v.GetId()):
			rank = 1
		}
		if rank < bestRank || (rank == bestRank && v.GetStoreId() < best.GetStoreId()) {
			best, bestRank = v, rank
		}
	}
	return best
}

// allowConfChange lets region id report conf_ver up to at's plus n: PD
// calls it whenever it orders a membership change at epoch at (n = 2 for a
// joint change, which raft enters and leaves as two changes). Re-sending an
// order at the same epoch raises nothing.
func (p *PD) allowConfChange(id uint64, at *pb.Epoch, n uint64) {
	b := p.bounds[id]
	b.confVer = max(b.confVer, at.GetConfVer()+n)
	if b != p.bounds[id] {
		p.touch()
	}
	p.bounds[id] = b
}

// onRegionReported advances the operator of the region a report (a
// heartbeat, or a split report when m's body is not a heartbeat) just
// updated, and sends the operator's order to the heartbeat's sender if the
// heartbeat names as leader a peer of the region on that store.
func (p *PD) onRegionReported(m *pb.Envelope, id uint64) {
	op := p.ops[id]
	if op == nil {
		return
	}
	e := p.view.known(id)
	order := p.advance(op, e)
	hb := m.GetRegionHeartbeat()
	if order == nil || hb == nil || hb.GetLeader() == nil || hb.GetLeader().GetStoreId() != m.GetFrom() {
		return
	}
	if lead := e.region.PeerByID(hb.GetLeader().GetId()); lead == nil || lead.GetStoreId() != m.GetFrom() {
		return // a leader that is not a peer of the region it reports
	}
	if p.bug.Fire(buggify.OrderDrop) {
		return // lost: the next heartbeat gets it
	}
	p.stats.Orders++
	p.log.Debug("pd: order", "op", op.id, "region", e.region.Describe(), "step", op.steps[op.cur].String(),
		"to", m.GetFrom())
	if p.bug.Fire(buggify.OrderDelay) {
		// Late: by the time it arrives the region may have moved on.
		due := p.env.Clock.Now().Add(p.bug.Delay(100*time.Millisecond, 3*time.Second))
		p.delayed = append(p.delayed, delayedOrder{due: due, env: pb.NewEnvelope(p.id, m.GetFrom(), order)})
		return
	}
	p.reply(m, order)
	if p.bug.Fire(buggify.OrderRepeat) {
		p.reply(m, order)
	}
}

// delayedOrder is an order a fault hook holds back until due.
type delayedOrder struct {
	due time.Time
	env *pb.Envelope
}

// sendDelayedOrders queues the held-back orders that are due.
func (p *PD) sendDelayedOrders() {
	if len(p.delayed) == 0 {
		return
	}
	now := p.env.Clock.Now()
	kept := p.delayed[:0]
	for _, d := range p.delayed {
		if now.Before(d.due) {
			kept = append(kept, d)
		} else {
			p.outbox = append(p.outbox, d.env)
		}
	}
	p.delayed = kept
}

// noteStaleReport counts, for coverage, a region report PD refused as
// stale: older in version (the region split since) or in conf_ver (its
// membership changed since), or overlapping a newer region.
func (p *PD) noteStaleReport(r *pb.Region) {
	if p.bug == nil {
		return
	}
	k := p.view.known(r.GetId())
	moved := k != nil && r.GetEpoch().GetConfVer() < k.epoch().GetConfVer()
	if k == nil || r.GetEpoch().GetVersion() < k.version() || !moved {
		p.bug.Reach(buggify.PDStaleReportAfterSplit) // older in version, or a newer region overlaps it
	}
	if moved {
		p.bug.Reach(buggify.PDStaleReportAfterMove)
	}
}

// checkOperators ends operators past their deadline, and cancels those
// whose target store went down, offline or tombstone, and leader transfers
// whose target store is disconnected (a transfer to it cannot finish, and
// one to another store can be started at once).
func (p *PD) checkOperators() {
	now := p.env.Clock.Now()
	ids := make([]uint64, 0, len(p.ops))
	for id := range p.ops {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		op := p.ops[id]
		if !now.Before(op.deadline) {
			p.endOperator(op, OpTimedOut, fmt.Sprintf("not finished within %v", p.set.operatorTimeout))
			continue
		}
		if op.to == 0 {
			continue
		}
		switch st := p.storeState(op.to); st {
		case StoreDown, StoreOffline, StoreTombstone:
			p.endOperator(op, OpCancelled, fmt.Sprintf("target store %d is %s", op.to, st))
		case StoreDisconnected:
			if op.kind == OpTransferLeader {
				p.endOperator(op, OpCancelled, fmt.Sprintf("target store %d is %s", op.to, st))
			}
		}
	}
}

// storeOps counts the running operators that count against store's limit.
func (p *PD) storeOps(store uint64) int {
	n := 0
	for _, op := range p.ops {
		if op.involves(store) {
			n++
		}
	}
	return n
}

// underLimit reports whether every store given can take one more operator.
func (p *PD) underLimit(stores ...uint64) bool {
	for _, s := range stores {
		if s != 0 && p.storeOps(s) >= p.set.storeLimit {
			return false
		}
	}
	return true
}
