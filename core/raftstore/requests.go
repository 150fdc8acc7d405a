package raftstore

import (
	"fmt"

	"github.com/multiraft/multiraft/core/pb"
)

func (s *Store) sendKv(client uint64, resp *pb.KvResponse) {
	s.send(client, resp)
}

// onKvRequest checks that this store serves the request's key through the
// region and epoch the client routed by, then queues a read or proposes a
// write. Anything else gets a region error the client can act on.
func (s *Store) onKvRequest(client uint64, req *pb.KvRequest) {
	reply := func(err *pb.RegionError) {
		s.sendKv(client, &pb.KvResponse{RequestId: req.GetRequestId(), RegionError: err})
	}
	if req.IsWrite() && s.recentWrites.seenBefore(client, req.GetRequestId(), s.now()) {
		// A network duplicate of a write this store already received:
		// whatever happened to the original (applied, refused), this copy
		// must not apply a second time. The original gets the answer.
		s.stats.DuplicateRequests++
		return
	}
	h := req.GetHeader()
	if h == nil || h.GetRegionId() == 0 || h.GetRegionEpoch() == nil {
		s.stats.InvalidRequests++
		reply(invalidErr("request header must name a region id and epoch"))
		return
	}
	if err := req.Validate(); err != nil {
		s.stats.InvalidRequests++
		reply(invalidErr(err.Error()))
		return
	}
	if err := req.CheckSizes(pb.SizeLimits{MaxKeyBytes: s.cfg.MaxKeyBytes, MaxValueBytes: s.cfg.MaxValueBytes}); err != nil {
		s.stats.InvalidRequests++
		reply(invalidErr(err.Error()))
		return
	}
	p := s.peers[h.GetRegionId()]
	if p == nil || !p.region.Meta().Initialized() {
		s.stats.RegionNotFound++
		reply(regionNotFoundErr(h.GetRegionId()))
		return
	}
	meta := p.region.Meta()
	key := req.Key()
	if h.GetRegionEpoch().GetVersion() != meta.GetEpoch().GetVersion() {
		s.stats.EpochNotMatch++
		reply(s.epochNotMatchErr(p, key))
		return
	}
	if !meta.ContainsKey(key) {
		s.stats.KeyNotInRegion++
		reply(keyNotInRegionErr(key, meta))
		return
	}
	if !p.leading {
		s.stats.NotLeader++
		reply(p.notLeaderErr())
		return
	}
	switch op := req.Op.(type) {
	case *pb.KvRequest_Get, *pb.KvRequest_Scan:
		p.reads = append(p.reads, &readRequest{client: client, req: req})
	case *pb.KvRequest_Put:
		p.propose(client, req, &pb.RaftCommand{Cmd: &pb.RaftCommand_Put{Put: op.Put}})
	case *pb.KvRequest_Delete:
		p.propose(client, req, &pb.RaftCommand{Cmd: &pb.RaftCommand_Delete{Delete: op.Delete}})
	case *pb.KvRequest_Cas:
		p.propose(client, req, &pb.RaftCommand{Cmd: &pb.RaftCommand_Cas{Cas: op.Cas}})
	}
}

func invalidErr(reason string) *pb.RegionError {
	return &pb.RegionError{Message: "invalid request: " + reason, InvalidRequest: &pb.InvalidRequest{Reason: reason}}
}

func regionNotFoundErr(id uint64) *pb.RegionError {
	return &pb.RegionError{
		Message:        fmt.Sprintf("region %d not found on this store", id),
		RegionNotFound: &pb.RegionNotFound{RegionId: id},
	}
}

func keyNotInRegionErr(key []byte, meta *pb.Region) *pb.RegionError {
	return &pb.RegionError{
		Message: fmt.Sprintf("key %q is not in region %d %s", key, meta.GetId(), meta.RangeString()),
		KeyNotInRegion: &pb.KeyNotInRegion{
			Key: key, RegionId: meta.GetId(), StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(),
		},
	}
}

// epochNotMatchErr lists the region as it is now and, when key moved to
// another local region (after a split), that region too.
func (s *Store) epochNotMatchErr(p *peer, key []byte) *pb.RegionError {
	current := []*pb.Region{cloneRegion(p.region.Meta())}
	if key != nil && !p.region.Meta().ContainsKey(key) {
		for _, o := range s.sortedPeers() {
			if o != p && o.region.Meta().Initialized() && o.region.Meta().ContainsKey(key) {
				current = append(current, cloneRegion(o.region.Meta()))
				break
			}
		}
	}
	return &pb.RegionError{
		Message:       fmt.Sprintf("region %d epoch changed: now %s", p.regionID(), p.region.Meta().GetEpoch().Describe()),
		EpochNotMatch: &pb.EpochNotMatch{CurrentRegions: current},
	}
}
