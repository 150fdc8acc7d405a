package raftstore

import (
	"bytes"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
)

// splitRequest is a split waiting for PD to allocate ids.
type splitRequest struct {
	askedAt  time.Time
	regionID uint64
	epoch    *pb.Epoch
	key      []byte
}

func cloneRegion(r *pb.Region) *pb.Region { return proto.Clone(r).(*pb.Region) }

// splitRetryInterval is how long a leader waits for PD's AskSplit answer
// before asking again.
func (s *Store) splitRetryInterval() time.Duration {
	d := 2 * s.cfg.ElectionTick()
	if d < time.Second {
		d = time.Second
	}
	return d
}

// maybeAskSplit starts a split when the region has outgrown the threshold.
func (p *peer) maybeAskSplit(now time.Time) {
	thr := p.s.cfg.SplitThreshold
	if thr <= 0 || p.region.Data().Bytes() < thr {
		return
	}
	if !p.splitAskedAt.IsZero() && now.Sub(p.splitAskedAt) < p.s.splitRetryInterval() {
		return
	}
	key := p.region.Data().MiddleKey()
	if key == nil || checkSplitKey(p.region.Meta(), key) != nil {
		return
	}
	p.askSplit(key)
}

func (p *peer) askSplit(key []byte) {
	p.s.pruneSplitRequests()
	if h := p.s.hooks.SplitDue; h != nil {
		h(p.regionID(), p.region.Meta().GetEpoch().GetVersion())
	}
	p.splitAskedAt = p.s.now()
	p.s.nextPDRequest++
	id := p.s.nextPDRequest
	meta := p.region.Meta()
	p.s.splitRequests[id] = &splitRequest{regionID: p.regionID(), epoch: proto.Clone(meta.GetEpoch()).(*pb.Epoch), key: bytes.Clone(key), askedAt: p.s.now()}
	p.s.send(p.s.cfg.PD, &pb.AskSplitRequest{RequestId: id, Region: cloneRegion(meta)})
}

// RequestSplit asks the leader of regionID to split it at key (operators and
// scenarios use it). The split goes through PD for ids, then through raft.
func (s *Store) RequestSplit(regionID uint64, key []byte) error {
	p := s.peers[regionID]
	if p == nil {
		return fmt.Errorf("raftstore: store %d: region %d not found", s.cfg.StoreID, regionID)
	}
	if !p.leading {
		return fmt.Errorf("raftstore: store %d: not the leader of region %d", s.cfg.StoreID, regionID)
	}
	if err := checkSplitKey(p.region.Meta(), key); err != nil {
		return err
	}
	p.askSplit(key)
	s.dirty = true
	return nil
}

func checkSplitKey(meta *pb.Region, key []byte) error {
	if bytes.Compare(key, meta.GetStartKey()) <= 0 || (len(meta.GetEndKey()) > 0 && bytes.Compare(key, meta.GetEndKey()) >= 0) {
		return fmt.Errorf("raftstore: split key %q is not strictly inside region %d [%q, %q)", key, meta.GetId(), meta.GetStartKey(), meta.GetEndKey())
	}
	return nil
}

func (s *Store) onAskSplitResponse(resp *pb.AskSplitResponse) {
	req := s.splitRequests[resp.GetRequestId()]
	if req == nil {
		return
	}
	delete(s.splitRequests, resp.GetRequestId())
	if resp.GetError() != "" {
		s.log.Warn("PD refused split", "region", req.regionID, "error", resp.GetError())
		return
	}
	p := s.peers[req.regionID]
	if p == nil || !p.leading || !epochEqual(p.region.Meta().GetEpoch(), req.epoch) {
		return // leadership or epoch changed; the split checker will ask again
	}
	if err := checkSplitIDs(p.region.Meta(), resp.GetNewRegionId(), resp.GetNewPeerIds()); err != nil {
		s.stats.MalformedMsgs++
		s.log.Warn("PD split answer refused", "region", req.regionID, "err", err)
		return
	}
	cmd := &pb.RaftCommand{
		Header: &pb.RequestHeader{RegionId: req.regionID, RegionEpoch: req.epoch},
		Cmd: &pb.RaftCommand_Split{Split: &pb.SplitRequest{
			SplitKey: req.key, NewRegionId: resp.GetNewRegionId(), NewPeerIds: resp.GetNewPeerIds(),
		}},
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		s.log.Error("encode split", "err", err)
		return
	}
	if err := p.rn.Propose(data); err != nil {
		s.log.Info("split proposal dropped", "region", req.regionID, "err", err)
		return
	}
	if h := s.hooks.SplitProposed; h != nil {
		h(req.regionID)
	}
}

// applySplit cuts the region at the split key on this replica: one durable
// record shrinks it and creates the new region, whose peer then starts.
// rejected means the command is invalid and changed nothing (every replica
// decides the same); fatal means local state is inconsistent and the store
// must stop.
func (p *peer) applySplit(sp *pb.SplitRequest) (rejected, fatal error) {
	meta := p.region.Meta()
	if err := checkSplitKey(meta, sp.GetSplitKey()); err != nil {
		return err, nil
	}
	if err := checkSplitIDs(meta, sp.GetNewRegionId(), sp.GetNewPeerIds()); err != nil {
		return err, nil
	}
	left := cloneRegion(meta)
	left.EndKey = bytes.Clone(sp.SplitKey)
	left.Epoch.Version++
	right := &pb.Region{
		Id:       sp.NewRegionId,
		StartKey: bytes.Clone(sp.SplitKey),
		EndKey:   bytes.Clone(meta.GetEndKey()),
		Epoch:    &pb.Epoch{ConfVer: meta.GetEpoch().GetConfVer(), Version: meta.GetEpoch().GetVersion() + 1},
	}
	for i, pp := range meta.GetPeers() {
		right.Peers = append(right.Peers, &pb.Peer{Id: sp.NewPeerIds[i], StoreId: pp.StoreId, Role: pp.Role})
	}
	rightState := InitialRegionState(right)
	if existing := p.s.eng.Region(right.Id); existing != nil {
		if existing.State() != pb.PeerState_NORMAL || storage.Initialized(existing.Meta()) {
			// The new region is already here, initialized by a snapshot
			// from its own leader, or it was removed from this store: keep
			// it as it is and only shrink this region.
			if existing.State() == pb.PeerState_NORMAL && !bytes.Equal(existing.Meta().GetStartKey(), right.StartKey) {
				return nil, fmt.Errorf("raftstore: store %d: split of region %d creates region %d at %q, but region %d here starts at %q (region id reused?)",
					p.s.cfg.StoreID, meta.GetId(), right.Id, right.StartKey, right.Id, existing.Meta().GetStartKey())
			}
			p.s.log.Info("split: new region already present, shrinking only", "region", meta.GetId(), "new", right.Id)
			if _, err := p.region.Split(left, nil); err != nil {
				return nil, fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
			}
			p.s.stats.Splits++
			delete(p.s.stashed, right.Id)
			return nil, nil
		}
		// A placeholder peer created by an early message: take it over. It
		// may have voted in a term after the initial one; keep that vote so
		// this store never votes twice in one term.
		if hs := existing.HardState(); hs.GetTerm() > rightState.HardState.GetTerm() {
			rightState.HardState.Term = proto.Uint64(hs.GetTerm())
			rightState.HardState.Vote = proto.Uint64(hs.GetVote())
		}
		delete(p.s.peers, right.Id)
		p.s.stats.PlaceholdersTakenOver++
	}
	nr, err := p.region.Split(left, rightState)
	if err != nil {
		return nil, fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
	}
	if err := p.s.startPeer(nr); err != nil {
		return nil, err
	}
	p.s.stats.Splits++
	p.splitAskedAt = time.Time{}
	if h := p.s.hooks.SplitApplied; h != nil {
		h(cloneRegion(left), cloneRegion(right))
	}
	p.s.log.Info("region split", "region", meta.GetId(), "key", fmt.Sprintf("%q", sp.SplitKey), "new", right.Id)
	p.s.deliverStashed(right.Id)
	if p.leading {
		p.s.send(p.s.cfg.PD, &pb.ReportSplit{Left: cloneRegion(left), Right: cloneRegion(right)})
		// The old leader's store starts the new region's election at once.
		if np := p.s.peers[right.Id]; np != nil {
			_ = np.rn.Campaign()
		}
	}
	return nil, nil
}

// checkSplitIDs validates the ids PD gave a split: a new region id other
// than this one, and one distinct, non-zero new peer id per peer, none of
// them an existing peer's.
func checkSplitIDs(meta *pb.Region, newRegion uint64, newPeers []uint64) error {
	if newRegion == 0 || newRegion == meta.GetId() {
		return fmt.Errorf("split of region %d: bad new region id %d", meta.GetId(), newRegion)
	}
	if len(newPeers) != len(meta.GetPeers()) {
		return fmt.Errorf("split of region %d: %d new peer ids for %d peers", meta.GetId(), len(newPeers), len(meta.GetPeers()))
	}
	seen := map[uint64]bool{}
	for _, pp := range meta.GetPeers() {
		seen[pp.GetId()] = true
	}
	for _, id := range newPeers {
		if id == 0 || seen[id] {
			return fmt.Errorf("split of region %d: new peer id %d is zero, repeated or in use", meta.GetId(), id)
		}
		seen[id] = true
	}
	return nil
}

// forgetSplitRequests drops the region's outstanding AskSplit requests, when
// its peer here stops leading.
func (s *Store) forgetSplitRequests(regionID uint64) {
	for id, r := range s.splitRequests { // deletion only: order does not matter
		if r.regionID == regionID {
			delete(s.splitRequests, id)
		}
	}
}

// pruneSplitRequests drops AskSplit requests PD never answered (down, or
// the answer was lost), so that they do not pile up while PD is away.
func (s *Store) pruneSplitRequests() {
	limit := 10 * s.splitRetryInterval()
	now := s.now()
	for id, r := range s.splitRequests { // deletion only: order does not matter
		if now.Sub(r.askedAt) > limit {
			delete(s.splitRequests, id)
		}
	}
}
