package sim

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
)

// Reads at deposed leaders.
//
// A leader cut off from its peers believes it leads until its check of the
// quorum deposes it (up to two election timeouts); meanwhile the others may
// elect a new leader, which commits writes. A read the deposed leader
// answers from its local state, without confirming its leadership
// (ReadIndex), is then stale. Clients rarely ask it at the right moment:
// they must still route to it, for a key just written through the new
// leader, within that window, and their writes wait on the old leader
// until their attempts time out. The probe makes the moment happen, seeing
// every peer's raft state as only a simulator can: when a peer becomes
// leader while another peer of its region still believes it leads at an
// older term, the probe writes a key of the region through the new leader
// (a put in a session of its own) and, once the write returned, reads the
// key at each deposed leader; and whenever a client's write of a key
// returns while its region has a deposed leader, the probe reads that key
// there too. Its writes and the reads that were answered join the history
// as operations of client ProbeNode, so the linearizability check judges
// them: each read was called after a write of its key returned, and must
// see it or something newer. A write that got no answer is ambiguous; a
// refused or unanswered read is left out. The probe's operations are kept
// apart from the clients' (World.checkedHistory and resolvedHistory join
// them), so that the report's counts of operations and writes are the
// clients' alone.

// maxDeposedWrites bounds the writes the probe makes for one deposed leader
// (region, peer and term), and maxDeposedReads the reads it sends to one.
const (
	maxDeposedWrites = 3
	maxDeposedReads  = 20
)

// deposedKey names a deposed leader: a peer of a region that believes it
// leads at term.
type deposedKey struct{ region, peer, term uint64 }

// probeOp is a probe's operation in flight: a write through a new leader
// or a read at a deposed one.
type probeOp struct {
	write  bool
	region uint64
	key    string
	value  string
	call   int64
}

// deposedLeaders returns the stores whose peer of region believes it leads
// at a term below the newest leader's, with the newest leader's store, and
// the region's meta as the newest leader knows it.
func (p *probe) deposedLeaders(region uint64) (deposed []uint64, keys []deposedKey, leader uint64, meta *pb.Region) {
	var newest uint64
	for _, n := range p.w.stores {
		if !n.up() {
			continue
		}
		if st, ok := n.st.Region(region); ok && st.Initialized && st.IsLeader && st.Term > newest {
			newest, leader, meta = st.Term, n.id, st.Region
		}
	}
	for _, n := range p.w.stores {
		if !n.up() {
			continue
		}
		if st, ok := n.st.Region(region); ok && st.Initialized && st.IsLeader && st.Term < newest {
			deposed = append(deposed, n.id)
			keys = append(keys, deposedKey{region, st.PeerID, st.Term})
		}
	}
	return deposed, keys, leader, meta
}

// leaderChanged looks at region after one of its peers learned of a new
// leader: if a deposed leader is left, it writes a key of the region
// through the newest leader.
func (p *probe) leaderChanged(region uint64) {
	if p.w.workloadOver {
		return
	}
	_, keys, leader, meta := p.deposedLeaders(region)
	if len(keys) == 0 {
		return
	}
	if !slices.Contains(p.watch, region) {
		p.watch = append(p.watch, region)
	}
	fresh := false
	for _, k := range keys {
		if p.deposedWrites[k] < maxDeposedWrites {
			p.deposedWrites[k]++
			fresh = true
		}
	}
	if !fresh {
		return
	}
	var inside []string
	for _, k := range p.w.keys {
		if meta.ContainsKey([]byte(k)) {
			inside = append(inside, k)
		}
	}
	if len(inside) == 0 {
		return
	}
	key := inside[p.r.Intn(len(inside))]
	p.nextID++
	p.deposedWriteSeq++
	value := fmt.Sprintf("probe-%d", p.deposedWriteSeq)
	sid := make([]byte, 16)
	copy(sid, "deposed!")
	binary.BigEndian.PutUint64(sid[8:], p.deposedWriteSeq)
	now := clock{p.w.k}.Now()
	p.ops[p.nextID] = probeOp{write: true, region: region, key: key, value: value, call: int64(p.w.k.now)}
	p.w.k.note("probe: put %q=%s through store %d, region %d has a deposed leader", key, value, leader, region)
	transport{p.w, ProbeNode}.Send(pb.NewEnvelope(ProbeNode, leader, &pb.KvRequest{
		RequestId: p.nextID,
		Header:    &pb.RequestHeader{RegionId: region, RegionEpoch: meta.GetEpoch()},
		Op:        &pb.KvRequest_Put{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}},
		Session:   &pb.Session{Id: sid, Sequence: 1, Lowest: 1, StartedMs: uint64(now.UnixMilli())},
	}))
}

// afterWrite reads key at the deposed leaders of region, if any: a write
// of key has just returned OK.
func (p *probe) afterWrite(region uint64, key []byte) {
	if p.w.workloadOver {
		return
	}
	deposed, keys, _, _ := p.deposedLeaders(region)
	for i, store := range deposed {
		if p.deposedReadsOf[keys[i]] >= maxDeposedReads {
			continue
		}
		st, ok := p.w.stores[store-1].st.Region(region)
		if !ok || !st.Region.ContainsKey(key) {
			continue
		}
		p.deposedReadsOf[keys[i]]++
		p.deposedSent++
		p.nextID++
		// Called after the write returned, strictly: in the history a call
		// at the instant of a return overlaps it.
		p.ops[p.nextID] = probeOp{region: region, key: string(key), call: int64(p.w.k.now) + 1}
		p.w.k.note("probe: get %q at store %d, deposed leader of region %d at term %d", key, store, region, keys[i].term)
		transport{p.w, ProbeNode}.Send(pb.NewEnvelope(ProbeNode, store, &pb.KvRequest{
			RequestId: p.nextID,
			Header:    &pb.RequestHeader{RegionId: region, RegionEpoch: st.Region.GetEpoch()},
			Op:        &pb.KvRequest_Get{Get: &pb.GetRequest{Key: key}},
		}))
	}
}

// clientWrote is called when a client's write of key returned OK: the
// probe reads the key at the deposed leaders of its region, if the region
// is one the probe watches.
func (p *probe) clientWrote(key []byte) {
	if p.w.workloadOver || len(p.watch) == 0 {
		return
	}
	kept := p.watch[:0]
	for _, region := range p.watch {
		if deposed, _, _, _ := p.deposedLeaders(region); len(deposed) > 0 {
			kept = append(kept, region)
			p.afterWrite(region, key)
		}
	}
	p.watch = kept
}

// probeAnswer takes the answer to a probe's write or read; it reports
// whether resp was one.
func (p *probe) probeAnswer(from uint64, resp *pb.KvResponse) bool {
	op, ok := p.ops[resp.GetRequestId()]
	if !ok {
		return false
	}
	delete(p.ops, resp.GetRequestId())
	now := int64(p.w.k.now)
	if op.write {
		h := checker.Op{ClientID: ProbeNode, Kind: checker.OpPut, Key: op.key, Value: op.value, Call: op.call, Outcome: checker.OutcomeAmbiguous}
		if resp.GetRegionError() == nil && resp.GetPut() != nil {
			h.Outcome, h.Return, h.Version = checker.OutcomeOK, now, resp.GetPut().GetVersion()
		}
		p.history = append(p.history, h)
		p.w.k.note("probe: put %q=%s: %v, version %d", op.key, op.value, h.Outcome, h.Version)
		if h.Outcome == checker.OutcomeOK {
			p.afterWrite(op.region, []byte(op.key))
		}
		return true
	}
	g := resp.GetGet()
	if resp.GetRegionError() != nil || g == nil {
		return true
	}
	p.deposedServed++
	p.w.k.note("probe: store %d answered get %q: found %v, value %q, version %d", from, op.key, g.GetFound(), g.GetValue(), g.GetVersion())
	p.history = append(p.history, checker.Op{
		ClientID: ProbeNode, Kind: checker.OpGet, Key: op.key,
		Call: op.call, Return: now, Outcome: checker.OutcomeOK,
		Found: g.GetFound(), ResultValue: string(g.GetValue()), Version: g.GetVersion(),
	})
	return true
}

// finishOps records the probe's writes still unanswered as ambiguous, in
// the order they were sent.
func (p *probe) finishOps() {
	ids := make([]uint64, 0, len(p.ops))
	for id, op := range p.ops {
		if op.write {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		op := p.ops[id]
		p.history = append(p.history, checker.Op{ClientID: ProbeNode, Kind: checker.OpPut, Key: op.key, Value: op.value,
			Call: op.call, Outcome: checker.OutcomeAmbiguous})
		delete(p.ops, id)
	}
}

// checkedHistory is every operation of the run as the clients and the
// probe saw them: the clients' operations, then the probe's. The timeline
// draws it; the linearizability check judges resolvedHistory, the same
// operations with the clients' ambiguous writes resolved.
func (w *World) checkedHistory() []checker.Op {
	if w.probe == nil || len(w.probe.history) == 0 {
		return w.history
	}
	return append(slices.Clip(w.history), w.probe.history...)
}
