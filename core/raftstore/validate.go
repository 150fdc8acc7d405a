package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// Raft messages come from the network, and etcd raft trusts what it is
// given: some malformed or forged messages make it panic (an empty MsgProp,
// a heartbeat committing past the log's end, an append that conflicts with a
// committed entry, a snapshot whose membership cannot be restored) or take
// effect without any check (a remote proposal bypasses every KV check; a
// message with term 0 is taken as local). So every raft message is checked
// at the store boundary before it reaches a peer, and dropped (counted in
// Stats.MalformedMsgs and logged) when it breaks a rule. The rules are
// listed in docs/validation.md; checkEnvelopeRaft and checkRaftMessage
// implement them.

// errBadRaftMessage is wrapped by every rule violation.
var errBadRaftMessage = errors.New("bad raft message")

// errNotMember: the sender is not a peer of the region as this peer knows
// it; when the sender's epoch is older it missed its own removal.
var errNotMember = errors.New("sender is not a member")

func badMsg(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRaftMessage, fmt.Sprintf(format, args...))
}

// remoteTypes are the raft message types one peer may send another. With
// proposal forwarding off, reads issued only by leaders and leadership
// transfers started only on leaders, no peer ever sends MsgProp,
// MsgReadIndex(Resp) or MsgTransferLeader; local types never cross the
// network.
var remoteTypes = map[raftpb.MessageType]bool{
	raftpb.MessageType_MsgApp:           true,
	raftpb.MessageType_MsgAppResp:       true,
	raftpb.MessageType_MsgVote:          true,
	raftpb.MessageType_MsgVoteResp:      true,
	raftpb.MessageType_MsgPreVote:       true,
	raftpb.MessageType_MsgPreVoteResp:   true,
	raftpb.MessageType_MsgSnap:          true,
	raftpb.MessageType_MsgHeartbeat:     true,
	raftpb.MessageType_MsgHeartbeatResp: true,
	raftpb.MessageType_MsgTimeoutNow:    true,
}

// checkEnvelopeRaft checks what can be checked of a raft message before it
// is routed to a peer: its shape, that the transport's sender is the store
// it claims to come from, that it is for this store, and its range.
func (s *Store) checkEnvelopeRaft(sender uint64, rm *pb.RaftMessage) error {
	msg := rm.GetMessage()
	switch {
	case msg == nil || rm.GetRegionId() == 0 || rm.GetToPeer() == nil || rm.GetFromPeer() == nil:
		return badMsg("missing region id, peers or message")
	case rm.GetFromPeer().GetId() != msg.GetFrom():
		return badMsg("from peer %d but message from %d", rm.GetFromPeer().GetId(), msg.GetFrom())
	case rm.GetFromPeer().GetStoreId() != sender:
		return badMsg("from peer on store %d but sent by node %d", rm.GetFromPeer().GetStoreId(), sender)
	case !s.knownStore(sender):
		return badMsg("node %d is not a store of this cluster", sender)
	case rm.GetToPeer().GetStoreId() != s.cfg.StoreID:
		return badMsg("for a peer on store %d", rm.GetToPeer().GetStoreId())
	case rm.GetToPeer().GetId() != msg.GetTo():
		return badMsg("to peer %d but message to %d", rm.GetToPeer().GetId(), msg.GetTo())
	case msg.GetFrom() == 0 || msg.GetTo() == 0 || msg.GetFrom() == msg.GetTo():
		return badMsg("from %d to %d", msg.GetFrom(), msg.GetTo())
	case !remoteTypes[msg.GetType()]:
		return badMsg("type %v is never sent between peers", msg.GetType())
	case msg.GetTerm() == 0:
		return badMsg("%v without a term (raft would take it as local)", msg.GetType())
	case len(rm.GetEndKey()) > 0 && bytes.Compare(rm.GetStartKey(), rm.GetEndKey()) >= 0:
		return badMsg("empty or reversed range %s", pb.FormatRange(rm.GetStartKey(), rm.GetEndKey()))
	}
	if err := checkEntries(msg); err != nil {
		return err
	}
	return nil
}

// checkNotice: a notice (not a raft message) comes from a store of the
// cluster, as the peer it names, for a peer on this store.
func (s *Store) checkNotice(sender uint64, rm *pb.RaftMessage) error {
	switch {
	case rm.GetFromPeer().GetStoreId() != sender:
		return badMsg("notice from a peer on store %d sent by node %d", rm.GetFromPeer().GetStoreId(), sender)
	case !s.knownStore(sender):
		return badMsg("notice from node %d, which is not a store of this cluster", sender)
	case rm.GetToPeer().GetStoreId() != s.cfg.StoreID:
		return badMsg("notice for a peer on store %d", rm.GetToPeer().GetStoreId())
	}
	return nil
}

// checkGCNotice: a GC notice comes from the member it names, for a peer on
// this store, and carries a region with that id and a sane range.
func (s *Store) checkGCNotice(sender uint64, rm *pb.RaftMessage) error {
	g := rm.GetGcRegion()
	switch {
	case rm.GetFromPeer().GetStoreId() != sender:
		return badMsg("notice from a peer on store %d sent by node %d", rm.GetFromPeer().GetStoreId(), sender)
	case !s.knownStore(sender):
		return badMsg("notice from node %d, which is not a store of this cluster", sender)
	case rm.GetToPeer().GetStoreId() != s.cfg.StoreID:
		return badMsg("notice for a peer on store %d", rm.GetToPeer().GetStoreId())
	case g.GetId() != rm.GetRegionId() || !g.Initialized():
		return badMsg("notice about region %d (version %d) for region %d", g.GetId(), g.GetEpoch().GetVersion(), rm.GetRegionId())
	case g.PeerByID(rm.GetFromPeer().GetId()) == nil:
		return badMsg("notice from peer %d, which its region does not list", rm.GetFromPeer().GetId())
	case len(g.GetEndKey()) > 0 && bytes.Compare(g.GetStartKey(), g.GetEndKey()) >= 0:
		return badMsg("notice with empty or reversed range %s", g.RangeString())
	}
	return nil
}

// checkEntries: only appends carry entries, numbered on from the message's
// index, with terms that never go down and never exceed the message's term.
func checkEntries(m *raftpb.Message) error {
	ents := m.GetEntries()
	if len(ents) == 0 {
		return nil
	}
	if m.GetType() != raftpb.MessageType_MsgApp {
		return badMsg("%v with %d entries", m.GetType(), len(ents))
	}
	if m.GetIndex() > ^uint64(0)-uint64(len(ents)) {
		return badMsg("append of %d entries after index %d overflows", len(ents), m.GetIndex())
	}
	prevTerm := m.GetLogTerm()
	for i, e := range ents {
		if e.GetIndex() != m.GetIndex()+1+uint64(i) {
			return badMsg("append after %d: entry %d has index %d", m.GetIndex(), i, e.GetIndex())
		}
		if e.GetTerm() < prevTerm || e.GetTerm() > m.GetTerm() {
			return badMsg("append at term %d: entry %d has term %d after term %d", m.GetTerm(), e.GetIndex(), e.GetTerm(), prevTerm)
		}
		prevTerm = e.GetTerm()
	}
	return nil
}

// checkRaftMessage checks a message against the peer it is for: the sender
// belongs to the region (or knows of membership changes this peer has not
// applied), and the message cannot make raft panic.
func (p *peer) checkRaftMessage(rm *pb.RaftMessage) error {
	msg := rm.GetMessage()
	meta := p.region.Meta()
	if meta.Initialized() && meta.PeerByID(msg.GetFrom()) == nil &&
		rm.GetRegionEpoch().GetConfVer() <= meta.GetEpoch().GetConfVer() {
		return fmt.Errorf("%w: peer %d of region %d at conf_ver %d", errNotMember, msg.GetFrom(), p.regionID(), meta.GetEpoch().GetConfVer())
	}
	st := p.rn.BasicStatus()
	switch msg.GetType() {
	case raftpb.MessageType_MsgHeartbeat:
		// A leader never commits past what it knows this follower holds,
		// and the follower holds what it acknowledged: it acknowledges
		// only after persisting.
		// An append stepped since the last ready round may have cut raft's
		// log below what storage holds: bound by that too.
		if last, _ := p.region.LastIndex(); msg.GetCommit() > min(last, p.appendFloor) {
			return badMsg("heartbeat commits %d, beyond this peer's last index %d", msg.GetCommit(), min(last, p.appendFloor))
		}
	case raftpb.MessageType_MsgApp:
		// An entry that conflicts with a committed one makes raft panic; a
		// leader never sends one.
		first, _ := p.region.FirstIndex()
		last, _ := p.region.LastIndex()
		for _, e := range msg.GetEntries() {
			idx := e.GetIndex()
			if idx > st.GetCommit() {
				break
			}
			if idx < first {
				continue // before the log: raft rejects the append on its index
			}
			if idx > last {
				return badMsg("append rewrites entry %d, committed but not yet persisted here", idx)
			}
			if t, err := p.region.Term(idx); err != nil || t != e.GetTerm() {
				return badMsg("append rewrites committed entry %d (term %d) with term %d", idx, t, e.GetTerm())
			}
		}
	case raftpb.MessageType_MsgSnap:
		if err := checkSnapshot(p.regionID(), msg); err != nil {
			return err
		}
	case raftpb.MessageType_MsgTimeoutNow:
		if msg.GetTerm() != st.GetTerm() || msg.GetFrom() != st.Lead {
			return badMsg("MsgTimeoutNow from %d at term %d, but the leader is %d at term %d", msg.GetFrom(), msg.GetTerm(), st.Lead, st.GetTerm())
		}
	}
	return nil
}

// checkSnapshot: a snapshot names an index and term no later than the
// message's, carries this region's state, and a membership raft can restore
// that matches the region's peers.
func checkSnapshot(regionID uint64, m *raftpb.Message) error {
	snap := m.GetSnapshot()
	md := snap.GetMetadata()
	if md.GetIndex() == 0 || md.GetTerm() == 0 || md.GetTerm() > m.GetTerm() {
		return badMsg("snapshot at index %d term %d in a message of term %d", md.GetIndex(), md.GetTerm(), m.GetTerm())
	}
	rs := &pb.RegionSnapshot{}
	if err := proto.Unmarshal(snap.GetData(), rs); err != nil {
		return badMsg("undecodable snapshot data: %v", err)
	}
	r := rs.GetRegion()
	if r.GetId() != regionID || !r.Initialized() {
		return badMsg("snapshot of region %d (version %d) sent to region %d", r.GetId(), r.GetEpoch().GetVersion(), regionID)
	}
	if len(r.GetEndKey()) > 0 && bytes.Compare(r.GetStartKey(), r.GetEndKey()) >= 0 {
		return badMsg("snapshot with empty or reversed range %s", r.RangeString())
	}
	cs := md.GetConfState()
	if len(cs.GetVoters()) == 0 {
		return badMsg("snapshot membership has no voters")
	}
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: md.GetIndex()}
	if _, _, err := confchange.Restore(chg, cs); err != nil {
		return badMsg("snapshot membership cannot be restored: %v", err)
	}
	var ids []uint64
	ids = append(ids, cs.GetVoters()...)
	ids = append(ids, cs.GetLearners()...)
	ids = append(ids, cs.GetVotersOutgoing()...)
	ids = append(ids, cs.GetLearnersNext()...)
	for _, id := range ids {
		if r.PeerByID(id) == nil {
			return badMsg("snapshot membership names peer %d, which region %d does not list", id, regionID)
		}
	}
	for _, pp := range r.GetPeers() {
		if !slices.Contains(ids, pp.GetId()) {
			return badMsg("region %d lists peer %d, which the snapshot membership does not name", regionID, pp.GetId())
		}
	}
	return nil
}
