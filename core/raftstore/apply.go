package raftstore

import (
	"bytes"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/session"
	"github.com/multiraft/multiraft/core/storage"
)

// The apply side of a peer: committed entries change the region's state
// machine (keys, meta) and nothing else. What the store must do about an
// entry (start the peer of a new region, tell PD) comes back as an
// applyResult, which Store.applyReady hands to the store's handlers.

// applyResult is what applying one entry did beyond the region's own state,
// for the store to act on. Applying a plain KV write returns none.
type applyResult interface{ isApplyResult() }

// splitApplied: this replica applied a split of its region into left (this
// region, shrunk) and right.
type splitApplied struct {
	left, right *pb.Region
	// created is the new region's local state, or nil when the new region
	// was already here (initialized by a snapshot from its own leader, or
	// removed from this store): then this replica only shrank.
	created *storage.Region
	// tookOver: created replaced a placeholder peer of the new region.
	tookOver bool
}

func (*splitApplied) isApplyResult() {}

// observeReady takes in the volatile, non-entry part of a Ready before its
// entries are applied: read states, then role changes.
func (p *peer) observeReady(rd *raft.Ready) {
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
}

// applyEntry applies one committed entry, answers the proposal it settles
// and records the applied index. It returns what the store must do about
// the entry, if anything; an error means local state is inconsistent and the
// store must stop.
func (p *peer) applyEntry(e *raftpb.Entry) (applyResult, error) {
	res, err := p.applyEntryData(e)
	if err != nil {
		return nil, err
	}
	p.region.SetApplied(e.GetIndex())
	return res, nil
}

func (p *peer) applyEntryData(e *raftpb.Entry) (applyResult, error) {
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.GetData()) == 0 {
			// A new leader's empty entry. It may have taken the index of a
			// proposal of ours that will now never apply: answer it.
			p.answerProposal(nil, e, nil)
			return nil, nil
		}
		var cmd *pb.RaftCommand
		if pr := p.proposalOf(e.GetData()); pr != nil {
			cmd = pr.cmd // what the entry decodes to: see proposal.cmd
		} else {
			cmd = &pb.RaftCommand{}
			if err := cmd.UnmarshalVT(e.GetData()); err != nil {
				// Every replica skips it the same way: nothing was applied.
				p.s.log.Error("undecodable raft command", "region", p.regionID(), "index", e.GetIndex(), "err", err)
				return nil, nil
			}
		}
		resp, res, err := p.applyCommand(cmd, e)
		if err != nil {
			return nil, err
		}
		p.answerProposal(cmd, e, resp)
		return res, nil
	case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
		// A membership change may also have taken the index of a proposal
		// of ours: answer it first.
		p.answerProposal(nil, e, nil)
		return p.applyConfChange(e)
	}
	return nil, nil
}

// applyCommand executes one command against the region and returns the
// response for its proposer and what the store must do about it. An error
// is fatal: the store must stop.
func (p *peer) applyCommand(cmd *pb.RaftCommand, e *raftpb.Entry) (*pb.KvResponse, applyResult, error) {
	meta := p.region.Meta()
	resp := &pb.KvResponse{}
	h := cmd.GetHeader()
	if h.GetRegionId() != p.regionID() {
		resp.RegionError = regionNotFoundErr(h.GetRegionId())
		return resp, nil, nil
	}
	if split := cmd.GetSplit(); split != nil {
		if meta.InJointConfig() {
			// Every replica refuses the same way: a new region cannot be
			// born in the middle of a membership change.
			p.s.log.Info("split skipped: region is in a joint configuration", "region", p.regionID(), "index", e.GetIndex())
			p.s.bug.Reach(buggify.SplitSkippedStale)
			resp.RegionError = p.s.epochNotMatchErr(p, nil)
			return resp, nil, nil
		}
		if !h.GetRegionEpoch().Equal(meta.GetEpoch()) {
			p.s.log.Info("split skipped: epoch changed", "region", p.regionID(), "index", e.GetIndex())
			p.s.bug.Reach(buggify.SplitSkippedStale)
			resp.RegionError = p.s.epochNotMatchErr(p, nil)
			return resp, nil, nil
		}
		res, err := p.applySplit(split)
		var invalid *invalidSplitError
		switch {
		case errors.As(err, &invalid):
			p.s.log.Warn("split rejected at apply", "region", p.regionID(), "err", err)
			resp.RegionError = invalidErr(err.Error())
			return resp, nil, nil
		case err != nil:
			return nil, nil, err
		}
		if p.s.bug.Fire(buggify.SplitApplyCrash) {
			return nil, nil, buggify.Crash(buggify.SplitApplyCrash) // applied in memory, not synced
		}
		return resp, res, nil
	}
	if h.GetRegionEpoch().GetVersion() != meta.GetEpoch().GetVersion() {
		p.s.bug.Reach(buggify.StaleEpochCommand)
		resp.RegionError = p.s.epochNotMatchErr(p, cmd.Key())
		return resp, nil, nil
	}
	if key := cmd.Key(); !meta.ContainsKey(key) {
		resp.RegionError = keyNotInRegionErr(key, meta)
		return resp, nil, nil
	}
	w := cmd.GetSession()
	if w != nil {
		// Exactly once: a (session, sequence) this region applied before is
		// answered with the result it stored then.
		p.region.AdvanceSessions(cmd.GetProposedAtMs())
		switch v, stored := p.region.AdmitSession(w); v {
		case session.Repeat:
			p.s.stats.SessionRepeats++
			p.s.bug.Reach(buggify.SessionRepeatAnswered)
			return stored, nil, nil
		case session.Expired, session.NeverApplied:
			// Every later copy of the write is refused too (the table
			// records the refusal); NeverApplied vouches for the earlier
			// ones, which lets the client send it again in a new session.
			p.s.stats.SessionsExpiredRefused++
			p.s.bug.Reach(buggify.SessionExpiredAnswered)
			resp.RegionError = sessionExpiredErr(w, v == session.NeverApplied)
			return resp, nil, nil
		case session.Busy:
			resp.RegionError = &pb.RegionError{
				Message:   fmt.Sprintf("session holds too many unacknowledged results in region %d", p.regionID()),
				StoreBusy: &pb.StoreBusy{},
			}
			return resp, nil, nil
		case session.ClockAhead:
			p.s.bug.Reach(buggify.SessionClockAhead)
			// InvalidRequest, not SessionExpired: the session is fine, the
			// client's clock is not. A new session would be refused the same
			// way, and a retry too until that clock is set right; telling the
			// client its session expired would only make it open sessions
			// that fail alike. Decided at apply time by the table's clock, so
			// every replica refuses the same writes. Not final, though: a
			// copy applied once the clock has caught up is accepted, so the
			// refusal says it depends on the clock (the client cannot call
			// the write failed).
			resp.RegionError = invalidErr(fmt.Sprintf(
				"session write started at %d ms, more than the session lifetime ahead of region %d's clock (%d ms): is the client's clock wrong?",
				w.GetStartedMs(), p.regionID(), p.region.Sessions().Clock()))
			resp.RegionError.InvalidRequest.ClockDependent = true
			return resp, nil, nil
		case session.Apply:
		default:
			return nil, nil, fmt.Errorf("raftstore: store %d: region %d: unknown session verdict %d", p.s.cfg.StoreID, p.regionID(), v)
		}
	}
	p.s.stats.WritesApplied++
	// Each result and its wrapper are one allocation: one per write.
	switch c := cmd.Cmd.(type) {
	case *pb.RaftCommand_Put:
		r := new(struct {
			w pb.KvResponse_Put
			r pb.PutResponse
		})
		r.r.Version = p.region.Put(c.Put.Key, c.Put.Value)
		r.w.Put = &r.r
		resp.Result = &r.w
	case *pb.RaftCommand_Delete:
		r := new(struct {
			w pb.KvResponse_Delete
			r pb.DeleteResponse
		})
		r.r.Deleted = p.region.Delete(c.Delete.Key)
		r.w.Delete = &r.r
		resp.Result = &r.w
	case *pb.RaftCommand_Cas:
		r := new(struct {
			w pb.KvResponse_Cas
			r pb.CasResponse
		})
		r.r.Succeeded, r.r.Version = p.region.CompareAndSwap(c.Cas.Key, c.Cas.ExpectedVersion, c.Cas.Value)
		r.w.Cas = &r.r
		resp.Result = &r.w
	default:
		resp.RegionError = invalidErr("empty command")
		return resp, nil, nil
	}
	if w != nil {
		p.region.RecordSession(w, resp)
		if h := p.s.hooks.WriteApplied; h != nil {
			h(p.regionID(), w.GetId(), w.GetSequence(), resp)
		}
	}
	return resp, nil, nil
}

// invalidSplitError: a split command that is invalid against the region
// (bad key or ids). Every replica decides the same and changes nothing.
type invalidSplitError struct{ err error }

func (e *invalidSplitError) Error() string { return e.err.Error() }
func (e *invalidSplitError) Unwrap() error { return e.err }

// applySplit cuts the region at the split key on this replica, as one
// durable record that shrinks it and creates the new region's local state.
// Starting the new region's peer is the store's part (Store.onSplitApplied).
// An *invalidSplitError means the command changed nothing; any other error
// means local state is inconsistent and the store must stop.
func (p *peer) applySplit(sp *pb.SplitRequest) (*splitApplied, error) {
	meta := p.region.Meta()
	if err := checkSplitKey(meta, sp.GetSplitKey()); err != nil {
		return nil, &invalidSplitError{err}
	}
	if err := checkSplitIDs(meta, sp.GetNewRegionId(), sp.GetNewPeerIds()); err != nil {
		return nil, &invalidSplitError{err}
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
	res := &splitApplied{left: left, right: right}
	rightState := InitialRegionState(right)
	// A session's writes may be on either side of the cut: both halves keep
	// the whole table.
	rightState.Sessions = p.region.Sessions().Proto()
	if existing := p.s.eng.Region(right.Id); existing != nil {
		if existing.State() != pb.PeerState_NORMAL || existing.Meta().Initialized() {
			// The new region is already here, initialized by a snapshot
			// from its own leader, or it was removed from this store: keep
			// it as it is and only shrink this region.
			if existing.State() == pb.PeerState_NORMAL && !bytes.Equal(existing.Meta().GetStartKey(), right.StartKey) {
				return nil, fmt.Errorf("raftstore: store %d: split of region %d creates region %d at %q, but region %d here starts at %q (region id reused?)",
					p.s.cfg.StoreID, meta.GetId(), right.Id, right.StartKey, right.Id, existing.Meta().GetStartKey())
			}
			p.s.log.Info("split: new region already present, shrinking only", "region", meta.GetId(), "new", right.Id)
			p.s.bug.Reach(buggify.SplitNewRegionPresent)
			if _, err := p.region.Split(left, nil); err != nil {
				return nil, fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
			}
			return res, nil
		}
		// A placeholder peer created by an early message: take it over. It
		// may have voted in a term after the initial one; keep that vote so
		// this store never votes twice in one term.
		if hs := existing.HardState(); hs.GetTerm() > rightState.HardState.GetTerm() {
			rightState.HardState.Term = proto.Uint64(hs.GetTerm())
			rightState.HardState.Vote = proto.Uint64(hs.GetVote())
		}
		res.tookOver = true
	}
	nr, err := p.region.Split(left, rightState)
	if err != nil {
		return nil, fmt.Errorf("raftstore: store %d: %w", p.s.cfg.StoreID, err)
	}
	res.created = nr
	return res, nil
}
