package raftstore

import (
	"bytes"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// proposal is a client write this store proposed and has not answered.
type proposal struct {
	id       uint64
	flush    uint64 // the store's ready round count when proposed
	client   uint64
	reqID    uint64
	index    uint64 // known once the entry shows up in a Ready
	term     uint64
	appended bool
	// cmd and data are the command as proposed and its encoding. An
	// entry whose data is these bytes is this proposal (data holds the
	// proposal's id, unique) and decodes to cmd: the leader need not
	// decode its own entries. Neither is changed once proposed.
	cmd  *pb.RaftCommand
	data []byte
}

// proposalOf returns this peer's pending proposal whose encoded command
// is data, if any. (Raft copies what it is proposed, so the entry holds
// equal bytes, not the same ones.)
func (p *peer) proposalOf(data []byte) *proposal {
	for _, pr := range p.proposals {
		if bytes.Equal(pr.data, data) {
			return pr
		}
	}
	return nil
}

// propose submits a client write.
func (p *peer) propose(client uint64, req *pb.KvRequest, cmd *pb.RaftCommand) {
	p.s.nextProposal++
	cmd.ProposerStore = p.s.cfg.StoreID
	cmd.ProposerIncarnation = p.s.incarnation
	cmd.ProposalId = p.s.nextProposal
	cmd.ProposedAtMs = uint64(p.s.now().UnixMilli())
	data, err := cmd.MarshalVT()
	if err != nil {
		p.replyErr(client, req.RequestId, invalidErr(fmt.Sprintf("encode command: %v", err)))
		return
	}
	p.s.wake(p)
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
	p.proposals = append(p.proposals, &proposal{id: cmd.ProposalId, flush: p.s.stats.FlushRounds, client: client, reqID: req.RequestId, cmd: cmd, data: data})
	if cmd.GetSession() != nil && p.s.bug.Fire(buggify.WriteProposeRepeat) {
		// The same write again, as a client's retry would be proposed (a
		// new proposal nobody waits on): the session table must apply it
		// once.
		again := cmd.CloneVT()
		p.s.later(p.s.bug.Delay(0, time.Second), func() { p.s.proposeWriteLate(p, again) })
	}
}

// noteProposedEntries learns the index and term of this store's proposals.
func (p *peer) noteProposedEntries(ents []*raftpb.Entry) {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryType_EntryNormal || len(e.GetData()) == 0 {
			continue
		}
		if pr := p.proposalOf(e.GetData()); pr != nil {
			// Our own encoding: it decodes to pr.cmd, whose proposal id is
			// pr's (ids are unique), proposed here.
			pr.index, pr.term, pr.appended = e.GetIndex(), e.GetTerm(), true
			continue
		}
		var cmd pb.RaftCommand
		if cmd.UnmarshalVT(e.GetData()) != nil || !p.s.proposedHere(&cmd) {
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

// answerProposal replies to the client whose proposal this entry is, and
// tells clients whose proposals were overwritten at or before this index.
// cmd is nil for an entry that is no client command (a leader's empty
// entry): it only retires overwritten proposals.
func (p *peer) answerProposal(cmd *pb.RaftCommand, e *raftpb.Entry, resp *pb.KvResponse) {
	if len(p.proposals) == 0 {
		return
	}
	mine := cmd != nil && p.s.proposedHere(cmd)
	kept := p.proposals[:0]
	for _, pr := range p.proposals {
		switch {
		case mine && pr.id == cmd.ProposalId:
			resp.RequestId = pr.reqID
			p.s.sendKv(pr.client, resp)
		case pr.appended && pr.index <= e.GetIndex():
			// Another entry took this index: the proposal can never apply.
			p.s.stats.StaleCommands++
			p.s.bug.Reach(buggify.ProposalStaleCommand)
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
			p.s.bug.Reach(buggify.ProposalCoveredBySnap)
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
			p.s.bug.Reach(buggify.ProposalStaleCommand)
			p.replyErr(pr.client, pr.reqID, &pb.RegionError{Message: "proposal dropped by a leader change", StaleCommand: &pb.StaleCommand{}})
			continue
		}
		kept = append(kept, pr)
	}
	p.proposals = kept
}

// proposedHere reports whether cmd was proposed by this store in this life:
// the same proposal id is used by other stores and by this store's earlier
// lives.
func (s *Store) proposedHere(cmd *pb.RaftCommand) bool {
	return cmd.GetProposerStore() == s.cfg.StoreID && cmd.GetProposerIncarnation() == s.incarnation
}
