package raftstore

import (
	"fmt"

	"github.com/multiraft/multiraft/core/pb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// onBootstrap creates the store's initial regions from PD's answer.
func (s *Store) onBootstrap(b *pb.Bootstrap) {
	if s.bootstrapped || s.refused != nil {
		return
	}
	if b.GetStoreId() != s.cfg.StoreID {
		s.stats.MalformedMsgs++
		s.log.Warn("bootstrap for another store", "for", b.GetStoreId())
		return
	}
	if b.GetError() != "" {
		// Every refusal is final (PD's answer depends on the store id and
		// PD's durable state only): the store stops.
		s.refused = fmt.Errorf("raftstore: store %d: PD refused it: %s", s.cfg.StoreID, b.GetError())
		s.log.Error("PD refused the store; it stops", "error", b.GetError())
		return
	}
	for _, region := range b.GetRegions() {
		if region.PeerOnStore(s.cfg.StoreID) == nil {
			s.log.Error("bootstrap region has no peer here", "region", region.GetId())
			return
		}
	}
	for _, region := range b.GetRegions() {
		if s.peers[region.GetId()] != nil {
			continue // created by an earlier, interrupted attempt
		}
		r, err := s.eng.CreateRegion(InitialRegionState(region))
		if err != nil {
			s.log.Error("bootstrap: create region", "region", region.GetId(), "err", err)
			return
		}
		if err := s.startPeer(r); err != nil {
			s.log.Error("bootstrap: start peer", "region", region.GetId(), "err", err)
			return
		}
	}
	s.setPDStores(b.GetStoreIds())
	s.eng.SetIdent(&pb.StoreIdent{StoreId: s.cfg.StoreID, HeartbeatIntervalMs: b.GetHeartbeatIntervalMs()})
	s.adoptHeartbeatInterval(b.GetHeartbeatIntervalMs())
	s.bootstrapped = true
	s.log.Info("bootstrapped", "regions", len(b.GetRegions()))
}

// Raft's log of a new region starts at this index and term, as if a
// snapshot holding the region's initial state had been applied: every peer
// of the region starts equal and knows the membership.
const (
	InitLogIndex = 5
	InitLogTerm  = 5
)

// InitialRegionState is the local state of a peer of a brand-new region.
func InitialRegionState(region *pb.Region) *pb.RegionCheckpoint {
	var voters, learners []uint64
	for _, p := range region.GetPeers() {
		if p.Role == pb.PeerRole_LEARNER {
			learners = append(learners, p.Id)
		} else {
			voters = append(voters, p.Id)
		}
	}
	return &pb.RegionCheckpoint{
		Region:         region.CloneVT(),
		AppliedIndex:   InitLogIndex,
		TruncatedIndex: InitLogIndex,
		TruncatedTerm:  InitLogTerm,
		HardState:      &raftpb.HardState{Term: proto.Uint64(InitLogTerm), Commit: proto.Uint64(InitLogIndex)},
		ConfState:      &raftpb.ConfState{Voters: voters, Learners: learners},
	}
}
