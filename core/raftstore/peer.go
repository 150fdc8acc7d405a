package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
)

type kvItem = kv.Item

// peer is this store's replica of one region.
type peer struct {
	s      *Store
	region *storage.Region
	id     uint64
	rn     *raft.RawNode

	peerCache map[uint64]*pb.Peer // raft id -> peer, from meta and senders
	leader    uint64
	leading   bool

	proposals []*proposal // in propose order
	reads     []*readRequest
	batches   []*readBatch

	lastRegionHB time.Time
	splitAskedAt time.Time
	snapshotSent map[uint64]time.Time // raft id -> when the last snapshot left
}

// proposal is a client write this store proposed and has not answered.
type proposal struct {
	id       uint64
	flush    uint64 // the store's ready round count when proposed
	client   uint64
	reqID    uint64
	index    uint64 // known once the entry shows up in a Ready
	term     uint64
	appended bool
}

type readRequest struct {
	client uint64
	req    *pb.KvRequest
}

type readBatch struct {
	ctx        []byte
	reads      []*readRequest
	index      uint64
	indexKnown bool
}

func newPeer(s *Store, r *storage.Region, id uint64, rn *raft.RawNode) *peer {
	p := &peer{s: s, region: r, id: id, rn: rn, peerCache: map[uint64]*pb.Peer{}, snapshotSent: map[uint64]time.Time{}}
	p.refreshPeerCache()
	return p
}

func (p *peer) regionID() uint64 { return p.region.ID() }

func (p *peer) isLeader() bool { return p.leading }

func (p *peer) refreshPeerCache() {
	for _, pp := range p.region.Meta().GetPeers() {
		p.peerCache[pp.Id] = pp
	}
}

func (p *peer) rememberPeer(pp *pb.Peer) {
	if pp.GetId() != 0 && pp.GetStoreId() != 0 {
		if _, ok := p.peerCache[pp.Id]; !ok {
			p.peerCache[pp.Id] = proto.Clone(pp).(*pb.Peer)
		}
	}
}

func (p *peer) self() *pb.Peer {
	if pp := p.peerCache[p.id]; pp != nil {
		return pp
	}
	return &pb.Peer{Id: p.id, StoreId: p.s.cfg.StoreID}
}

func (p *peer) leaderPeer() *pb.Peer {
	if p.leader == 0 {
		return nil
	}
	if pp := p.peerCache[p.leader]; pp != nil {
		return proto.Clone(pp).(*pb.Peer)
	}
	return nil
}

// onTick runs the peer's periodic work: PD heartbeat and split check.
func (p *peer) onTick(now time.Time) {
	p.checkSnapshots(now)
	if !p.leading {
		return
	}
	if p.lastRegionHB.IsZero() || now.Sub(p.lastRegionHB) >= p.s.cfg.RegionHeartbeatInterval {
		p.sendRegionHeartbeat()
	}
	p.maybeAskSplit(now)
}

func (p *peer) sendRegionHeartbeat() {
	p.lastRegionHB = p.s.now()
	p.s.stats.RegionHeartbeatsOut++
	d := p.region.Data()
	p.s.send(p.s.cfg.PD, &pb.RegionHeartbeat{
		Region:          proto.Clone(p.region.Meta()).(*pb.Region),
		Leader:          proto.Clone(p.self()).(*pb.Peer),
		ApproximateSize: uint64(d.Bytes()),
		ApproximateKeys: uint64(d.Len()),
	})
}

// persist queues the durable part of a Ready: snapshot, entries, hard state.
func (p *peer) persist(rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := p.region.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
		}
		p.refreshPeerCache()
		p.s.stats.SnapshotsApplied++
		p.forgetProposalsIn(rd.Snapshot.GetMetadata().GetIndex())
	}
	if p.leading || len(p.proposals) > 0 {
		p.noteProposedEntries(rd.Entries)
	}
	if err := p.region.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		p.region.SetHardState(rd.HardState)
	}
	return nil
}

// noteProposedEntries learns the index and term of this store's proposals.
func (p *peer) noteProposedEntries(ents []*raftpb.Entry) {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryType_EntryNormal || len(e.GetData()) == 0 {
			continue
		}
		var cmd pb.RaftCommand
		if proto.Unmarshal(e.GetData(), &cmd) != nil || cmd.ProposerIncarnation != p.s.incarnation {
			continue
		}
		for _, pr := range p.proposals {
			if pr.id == cmd.ProposalId {
				pr.index, pr.term, pr.appended = e.GetIndex(), e.GetTerm(), true
				break
			}
		}
	}
}

func (p *peer) sendMessages(msgs []*raftpb.Message) {
	meta := p.region.Meta()
	from := p.self()
	for _, m := range msgs {
		to := p.peerCache[m.GetTo()]
		if to == nil {
			p.s.log.Warn("no address for raft peer", "region", p.regionID(), "peer", m.GetTo())
			continue
		}
		if m.GetType() == raftpb.MessageType_MsgSnap {
			p.s.stats.SnapshotsSent++
			p.snapshotSent[m.GetTo()] = p.s.now()
		}
		p.s.send(to.StoreId, &pb.RaftMessage{
			RegionId:    p.regionID(),
			FromPeer:    from,
			ToPeer:      to,
			RegionEpoch: meta.GetEpoch(),
			StartKey:    meta.GetStartKey(),
			EndKey:      meta.GetEndKey(),
			Message:     m,
		})
	}
}

// apply handles the volatile part of a Ready: role changes, committed
// entries, read states.
func (p *peer) apply(rd raft.Ready) error {
	// Read states first: one obtained while still leader stays valid even
	// if the same Ready also reports the step-down.
	for _, rs := range rd.ReadStates {
		for _, b := range p.batches {
			if !b.indexKnown && bytes.Equal(b.ctx, rs.RequestCtx) {
				b.index, b.indexKnown = rs.Index, true
			}
		}
	}
	if rd.SoftState != nil {
		p.onSoftState(rd.SoftState)
	}
	for _, e := range rd.CommittedEntries {
		if err := p.applyEntry(e); err != nil {
			return err
		}
		p.region.SetApplied(e.GetIndex())
	}
	return nil
}

// checkSnapshots tells raft about snapshots that never arrived (lost, or
// refused by a follower that still holds an overlapping range), so that it
// probes the follower again and sends a fresh one. A snapshot that arrived
// needs no report: the follower's append response moves it on.
func (p *peer) checkSnapshots(now time.Time) {
	if len(p.snapshotSent) == 0 {
		return
	}
	progress := p.rn.Status().Progress
	ids := make([]uint64, 0, len(p.snapshotSent))
	for id := range p.snapshotSent {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		pr, ok := progress[id]
		switch {
		case !p.leading || !ok || pr.State != tracker.StateSnapshot:
			delete(p.snapshotSent, id)
		case now.Sub(p.snapshotSent[id]) >= p.s.cfg.SnapshotTimeout:
			p.rn.ReportSnapshot(id, raft.SnapshotFailure)
			delete(p.snapshotSent, id)
		}
	}
}

func (p *peer) onSoftState(ss *raft.SoftState) {
	was := p.leading
	p.leader = ss.Lead
	p.leading = ss.RaftState == raft.StateLeader
	if h := p.s.hooks.LeaderChanged; h != nil {
		h(p.regionID(), ss.Lead)
	}
	if p.leading && !was {
		p.sendRegionHeartbeat()
	}
	if was && !p.leading {
		p.s.forgetSplitRequests(p.regionID())
		// Raft forgets pending read-only requests when it steps down.
		for _, b := range p.batches {
			if !b.indexKnown {
				for _, r := range b.reads {
					p.replyErr(r.client, r.req.RequestId, p.notLeaderErr())
				}
			}
		}
		kept := p.batches[:0]
		for _, b := range p.batches {
			if b.indexKnown {
				kept = append(kept, b)
			}
		}
		p.batches = kept
	}
}

func (p *peer) applyEntry(e *raftpb.Entry) error {
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.GetData()) == 0 {
			// A new leader's empty entry. It may have taken the index of a
			// proposal of ours that will now never apply: answer it.
			p.answerProposal(nil, e, nil)
			return nil
		}
		var cmd pb.RaftCommand
		if err := proto.Unmarshal(e.GetData(), &cmd); err != nil {
			// Every replica skips it the same way: nothing was applied.
			p.s.log.Error("undecodable raft command", "region", p.regionID(), "index", e.GetIndex(), "err", err)
			return nil
		}
		resp, err := p.applyCommand(&cmd, e)
		if err != nil {
			return err
		}
		p.answerProposal(&cmd, e, resp)
		return nil
	case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
		var cc raftpb.ConfChangeI
		if e.GetType() == raftpb.EntryType_EntryConfChange {
			var c raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &c); err != nil {
				return fmt.Errorf("raftstore: region %d: decode conf change at %d: %w", p.regionID(), e.GetIndex(), err)
			}
			cc = &c
		} else {
			var c raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &c); err != nil {
				return fmt.Errorf("raftstore: region %d: decode conf change at %d: %w", p.regionID(), e.GetIndex(), err)
			}
			cc = &c
		}
		// Membership changes are not supported yet (they come with moving
		// replicas). Applying one without updating the region's peers and
		// conf_ver would corrupt routing: stop instead.
		return fmt.Errorf("raftstore: region %d: conf change %v at index %d, which this version cannot apply", p.regionID(), cc, e.GetIndex())
	}
	return nil
}

// applyCommand executes one command against the region and returns the
// response for its proposer. An error is fatal: the store must stop.
func (p *peer) applyCommand(cmd *pb.RaftCommand, e *raftpb.Entry) (*pb.KvResponse, error) {
	meta := p.region.Meta()
	resp := &pb.KvResponse{}
	h := cmd.GetHeader()
	if h.GetRegionId() != p.regionID() {
		resp.RegionError = regionNotFoundErr(h.GetRegionId())
		return resp, nil
	}
	if split := cmd.GetSplit(); split != nil {
		if !epochEqual(h.GetRegionEpoch(), meta.GetEpoch()) {
			p.s.log.Info("split skipped: epoch changed", "region", p.regionID(), "index", e.GetIndex())
			resp.RegionError = p.s.epochNotMatchErr(p, nil)
			return resp, nil
		}
		rejected, fatal := p.applySplit(split)
		if fatal != nil {
			return nil, fatal
		}
		if rejected != nil {
			p.s.log.Warn("split rejected at apply", "region", p.regionID(), "err", rejected)
			resp.RegionError = invalidErr(rejected.Error())
		}
		return resp, nil
	}
	if h.GetRegionEpoch().GetVersion() != meta.GetEpoch().GetVersion() {
		resp.RegionError = p.s.epochNotMatchErr(p, commandKey(cmd))
		return resp, nil
	}
	if key := commandKey(cmd); !keyInRegion(key, meta) {
		resp.RegionError = keyNotInRegionErr(key, meta)
		return resp, nil
	}
	p.s.stats.WritesApplied++
	switch c := cmd.Cmd.(type) {
	case *pb.RaftCommand_Put:
		v := p.region.Put(c.Put.Key, c.Put.Value)
		resp.Result = &pb.KvResponse_Put{Put: &pb.PutResponse{Version: v}}
	case *pb.RaftCommand_Delete:
		ok := p.region.Delete(c.Delete.Key)
		resp.Result = &pb.KvResponse_Delete{Delete: &pb.DeleteResponse{Deleted: ok}}
	case *pb.RaftCommand_Cas:
		ok, v := p.region.CompareAndSwap(c.Cas.Key, c.Cas.ExpectedVersion, c.Cas.Value)
		resp.Result = &pb.KvResponse_Cas{Cas: &pb.CasResponse{Succeeded: ok, Version: v}}
	default:
		resp.RegionError = invalidErr("empty command")
	}
	return resp, nil
}

func commandKey(cmd *pb.RaftCommand) []byte {
	switch c := cmd.Cmd.(type) {
	case *pb.RaftCommand_Put:
		return c.Put.GetKey()
	case *pb.RaftCommand_Delete:
		return c.Delete.GetKey()
	case *pb.RaftCommand_Cas:
		return c.Cas.GetKey()
	}
	return nil
}

func epochEqual(a, b *pb.Epoch) bool {
	return a.GetVersion() == b.GetVersion() && a.GetConfVer() == b.GetConfVer()
}

// answerProposal replies to the client whose proposal this entry is, and
// tells clients whose proposals were overwritten at or before this index.
// cmd is nil for an entry that is no client command (a leader's empty
// entry): it only retires overwritten proposals.
func (p *peer) answerProposal(cmd *pb.RaftCommand, e *raftpb.Entry, resp *pb.KvResponse) {
	if len(p.proposals) == 0 {
		return
	}
	mine := cmd != nil && cmd.ProposerIncarnation == p.s.incarnation
	kept := p.proposals[:0]
	for _, pr := range p.proposals {
		switch {
		case mine && pr.id == cmd.ProposalId:
			resp.RequestId = pr.reqID
			p.s.sendKv(pr.client, resp)
		case pr.appended && pr.index <= e.GetIndex():
			// Another entry took this index: the proposal can never apply.
			p.s.stats.StaleCommands++
			p.replyErr(pr.client, pr.reqID, &pb.RegionError{Message: "proposal dropped by a leader change", StaleCommand: &pb.StaleCommand{}})
		default:
			kept = append(kept, pr)
		}
	}
	p.proposals = kept
}

// forgetProposalsIn drops, unanswered, the proposals whose entries are at
// or below a snapshot's index. Those entries are never applied one by one
// here, and the snapshot may or may not contain them: neither a result nor
// StaleCommand would be true, so the client's timeout reports the outcome
// as unknown. (Answering StaleCommand when a later entry applies, as
// answerProposal would, tells a client that a committed write failed.)
func (p *peer) forgetProposalsIn(index uint64) {
	kept := p.proposals[:0]
	for _, pr := range p.proposals {
		if pr.appended && pr.index <= index {
			p.s.log.Info("proposal covered by a snapshot: outcome unknown", "region", p.regionID(), "index", pr.index, "snapshot", index)
			continue
		}
		kept = append(kept, pr)
	}
	p.proposals = kept
}

// retireLostProposals answers proposals raft dropped before they reached a
// Ready: with synchronous storage every accepted proposal is in the next
// Ready's entries, unless a message from a newer leader truncated the
// unstable log first. Such an entry was never persisted or sent, so it can
// never apply.
func (p *peer) retireLostProposals(round uint64) {
	if len(p.proposals) == 0 {
		return
	}
	kept := p.proposals[:0]
	for _, pr := range p.proposals {
		if !pr.appended && pr.flush < round {
			p.s.stats.StaleCommands++
			p.replyErr(pr.client, pr.reqID, &pb.RegionError{Message: "proposal dropped by a leader change", StaleCommand: &pb.StaleCommand{}})
			continue
		}
		kept = append(kept, pr)
	}
	p.proposals = kept
}

// propose submits a client write.
func (p *peer) propose(client uint64, req *pb.KvRequest, cmd *pb.RaftCommand) {
	p.s.nextProposal++
	cmd.ProposerIncarnation = p.s.incarnation
	cmd.ProposalId = p.s.nextProposal
	cmd.Header = req.Header
	data, err := proto.Marshal(cmd)
	if err != nil {
		p.replyErr(client, req.RequestId, invalidErr(fmt.Sprintf("encode command: %v", err)))
		return
	}
	if err := p.rn.Propose(data); err != nil {
		if p.rn.BasicStatus().RaftState == raft.StateLeader {
			// Still leader, but raft refused: a leadership transfer is under
			// way or too much is uncommitted. Come back later.
			p.replyErr(client, req.RequestId, &pb.RegionError{
				Message:   fmt.Sprintf("region %d: proposal refused (%v)", p.regionID(), err),
				StoreBusy: &pb.StoreBusy{},
			})
			return
		}
		p.s.stats.NotLeader++
		p.replyErr(client, req.RequestId, p.notLeaderErr())
		return
	}
	p.s.stats.Proposals++
	p.proposals = append(p.proposals, &proposal{id: cmd.ProposalId, flush: p.s.stats.FlushRounds, client: client, reqID: req.RequestId})
}

// issueReads starts one ReadIndex for all reads queued since the last round.
func (p *peer) issueReads() {
	if len(p.reads) == 0 {
		return
	}
	reads := p.reads
	p.reads = nil
	// Ask raft, not the role seen at the last Ready: a message stepped since
	// may have deposed this peer, and a follower's ReadIndex with no known
	// leader is dropped without an answer.
	if p.rn.BasicStatus().RaftState != raft.StateLeader {
		for _, r := range reads {
			p.s.stats.NotLeader++
			p.replyErr(r.client, r.req.RequestId, p.notLeaderErr())
		}
		return
	}
	p.s.nextReadCtx++
	ctx := make([]byte, 16)
	binary.BigEndian.PutUint64(ctx, p.s.incarnation)
	binary.BigEndian.PutUint64(ctx[8:], p.s.nextReadCtx)
	p.s.stats.ReadIndexRequests++
	p.batches = append(p.batches, &readBatch{ctx: ctx, reads: reads})
	p.rn.ReadIndex(ctx)
}

// serveReads answers reads whose read index has been applied.
func (p *peer) serveReads() {
	if len(p.batches) == 0 {
		return
	}
	applied := p.region.Applied()
	kept := p.batches[:0]
	for _, b := range p.batches {
		if !b.indexKnown || b.index > applied {
			kept = append(kept, b)
			continue
		}
		for _, r := range b.reads {
			p.serveRead(r)
		}
	}
	p.batches = kept
}

// serveRead answers one read from local state, re-checking that the region
// still owns the key: a split applied since the request arrived moves keys
// away.
func (p *peer) serveRead(r *readRequest) {
	meta := p.region.Meta()
	req := r.req
	if req.GetHeader().GetRegionEpoch().GetVersion() != meta.GetEpoch().GetVersion() {
		p.s.stats.EpochNotMatch++
		p.replyErr(r.client, req.RequestId, p.s.epochNotMatchErr(p, readKey(req)))
		return
	}
	p.s.stats.ReadsServed++
	resp := &pb.KvResponse{RequestId: req.RequestId}
	d := p.region.Data()
	switch op := req.Op.(type) {
	case *pb.KvRequest_Get:
		it, ok := d.Get(op.Get.Key)
		g := &pb.GetResponse{Found: ok}
		if ok {
			g.Value, g.Version = it.Value, it.Version
		}
		resp.Result = &pb.KvResponse_Get{Get: g}
	case *pb.KvRequest_Scan:
		start, end := clampScan(op.Scan, meta)
		items := d.Scan(start, end, int(op.Scan.Limit))
		sr := &pb.ScanResponse{Pairs: make([]*pb.KvPair, len(items))}
		for i, it := range items {
			sr.Pairs[i] = &pb.KvPair{Key: it.Key, Value: it.Value, Version: it.Version}
		}
		resp.Result = &pb.KvResponse_Scan{Scan: sr}
	}
	p.s.sendKv(r.client, resp)
}

func readKey(req *pb.KvRequest) []byte {
	switch op := req.Op.(type) {
	case *pb.KvRequest_Get:
		return op.Get.GetKey()
	case *pb.KvRequest_Scan:
		return op.Scan.GetStartKey()
	}
	return nil
}

// clampScan intersects a scan's range with the region's.
func clampScan(sc *pb.ScanRequest, meta *pb.Region) (start, end []byte) {
	start = sc.GetStartKey()
	if bytes.Compare(start, meta.GetStartKey()) < 0 {
		start = meta.GetStartKey()
	}
	end = sc.GetEndKey()
	if len(end) == 0 || (len(meta.GetEndKey()) > 0 && bytes.Compare(meta.GetEndKey(), end) < 0) {
		end = meta.GetEndKey()
	}
	return start, end
}

// maybeCompact trims the applied prefix of the raft log.
func (p *peer) maybeCompact() error {
	first, _ := p.region.FirstIndex()
	applied := p.region.Applied()
	if applied+1 <= first || applied+1-first <= p.s.cfg.LogCompactEntries {
		return nil
	}
	to := applied - p.s.cfg.LogKeepEntries
	if err := p.region.Compact(to); err != nil {
		return fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
	}
	p.s.stats.LogCompactions++
	return nil
}

func (p *peer) notLeaderErr() *pb.RegionError {
	return &pb.RegionError{
		Message:   fmt.Sprintf("region %d: peer %d on store %d is not leader", p.regionID(), p.id, p.s.cfg.StoreID),
		NotLeader: &pb.NotLeader{RegionId: p.regionID(), Leader: p.leaderPeer()},
	}
}

func (p *peer) replyErr(client, reqID uint64, err *pb.RegionError) {
	p.s.sendKv(client, &pb.KvResponse{RequestId: reqID, RegionError: err})
}
