package raftstore

import (
	"bytes"
	"fmt"
	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// splitRequest is a split waiting for PD to allocate ids.
type splitRequest struct {
	askedAt  time.Time
	regionID uint64
	epoch    *pb.Epoch
	key      []byte
}

func cloneRegion(r *pb.Region) *pb.Region { return r.CloneVT() }

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
	p.s.askSplit(p, key)
}

// askSplit asks PD for the ids of a split of p's region at key; the answer
// (onAskSplitResponse) proposes the split.
func (s *Store) askSplit(p *peer, key []byte) {
	s.pruneSplitRequests()
	if h := s.hooks.SplitDue; h != nil {
		h(p.regionID(), p.region.Meta().GetEpoch().GetVersion())
	}
	p.splitAskedAt = s.now()
	s.nextPDRequest++
	id := s.nextPDRequest
	meta := p.region.Meta()
	s.splitRequests[id] = &splitRequest{regionID: p.regionID(), epoch: meta.GetEpoch().CloneVT(), key: bytes.Clone(key), askedAt: s.now()}
	s.send(s.cfg.PD, &pb.AskSplitRequest{RequestId: id, Region: cloneRegion(meta)})
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
	s.askSplit(p, key)
	s.dirty = true
	return nil
}

func checkSplitKey(meta *pb.Region, key []byte) error {
	if bytes.Compare(key, meta.GetStartKey()) <= 0 || (len(meta.GetEndKey()) > 0 && bytes.Compare(key, meta.GetEndKey()) >= 0) {
		return fmt.Errorf("raftstore: split key %q is not strictly inside region %d %s", key, meta.GetId(), meta.RangeString())
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
	if p == nil || !p.leading || !p.region.Meta().GetEpoch().Equal(req.epoch) {
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
	data, err := cmd.MarshalVT()
	if err != nil {
		s.log.Error("encode split", "err", err)
		return
	}
	switch {
	case s.bug.Fire(buggify.SplitProposeDrop):
		return // lost: the split checker asks again
	case s.bug.Fire(buggify.SplitProposeDelay):
		s.later(s.bug.Delay(50*time.Millisecond, 2*time.Second), func() { s.proposeSplitLate(p, data) })
		return
	}
	s.wake(p)
	if err := p.rn.Propose(data); err != nil {
		s.log.Info("split proposal dropped", "region", req.regionID, "err", err)
		return
	}
	if h := s.hooks.SplitProposed; h != nil {
		h(req.regionID)
	}
	if s.bug.Fire(buggify.SplitProposeRepeat) {
		// The same split again: once its first copy applied, the second
		// is at an older epoch and must be skipped.
		s.later(s.bug.Delay(0, 2*time.Second), func() { s.proposeSplitLate(p, data) })
	}
	if s.bug.Fire(buggify.SplitProposeTransfer) {
		p.transferAway()
	}
	if s.bug.Fire(buggify.SplitProposeCrash) {
		s.crashSoon(buggify.SplitProposeCrash)
	}
}

// onSplitApplied is the store's part of a split this replica applied:
// start the new region's peer, deliver the messages held for it, and, on
// the leader's store, tell PD and start the new region's election at once.
func (s *Store) onSplitApplied(p *peer, res *splitApplied) error {
	right := res.right
	if p.leading && hasLearner(res.left) {
		s.bug.Reach(buggify.SplitWhileLearner)
	}
	if res.created == nil {
		s.stats.Splits++
		s.stash.drop(right.Id)
		return nil
	}
	if res.tookOver {
		s.removePeer(right.Id)
		s.stats.PlaceholdersTakenOver++
		s.bug.Reach(buggify.SplitPlaceholderTakenOver)
	}
	if err := s.startPeer(res.created); err != nil {
		return err
	}
	s.stats.Splits++
	p.splitAskedAt = time.Time{}
	if h := s.hooks.SplitApplied; h != nil {
		h(cloneRegion(res.left), cloneRegion(right))
	}
	s.log.Info("region split", "region", res.left.GetId(), "key", fmt.Sprintf("%q", right.GetStartKey()), "new", right.Id)
	s.deliverStashed(right.Id)
	if p.leading {
		if !s.bug.Fire(buggify.SplitReportDrop) { // PD also learns of it from heartbeats
			s.send(s.cfg.PD, &pb.ReportSplit{Left: cloneRegion(res.left), Right: cloneRegion(right)})
		}
		// The old leader's store starts the new region's election at once
		// (or, when a hook says so, leaves it to the election timeout).
		if np := s.peers[right.Id]; np != nil && !s.bug.Fire(buggify.SplitCampaignSkip) {
			_ = np.rn.Campaign()
			s.wake(np)
		}
	}
	return nil
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

// hasSplitRequest reports whether the region has asked PD for a split
// that PD has not answered.
func (s *Store) hasSplitRequest(regionID uint64) bool {
	for _, r := range s.splitRequests { // a search: order does not matter
		if r.regionID == regionID {
			return true
		}
	}
	return false
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
