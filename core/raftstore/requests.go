package raftstore

import (
	"bytes"
	"fmt"
	"time"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
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
	if isWrite(req) && s.seenBefore(client, req.GetRequestId()) {
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
	if reason := validateOp(req); reason != "" {
		s.stats.InvalidRequests++
		reply(invalidErr(reason))
		return
	}
	p := s.peers[h.GetRegionId()]
	if p == nil || !storage.Initialized(p.region.Meta()) {
		s.stats.RegionNotFound++
		reply(regionNotFoundErr(h.GetRegionId()))
		return
	}
	meta := p.region.Meta()
	key := requestKey(req)
	if h.GetRegionEpoch().GetVersion() != meta.GetEpoch().GetVersion() {
		s.stats.EpochNotMatch++
		reply(s.epochNotMatchErr(p, key))
		return
	}
	if !keyInRegion(key, meta) {
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

// validateOp returns why a request is malformed, or "".
func validateOp(req *pb.KvRequest) string {
	switch op := req.Op.(type) {
	case *pb.KvRequest_Get:
		if len(op.Get.GetKey()) == 0 {
			return "get: empty key"
		}
	case *pb.KvRequest_Put:
		if len(op.Put.GetKey()) == 0 {
			return "put: empty key"
		}
	case *pb.KvRequest_Delete:
		if len(op.Delete.GetKey()) == 0 {
			return "delete: empty key"
		}
	case *pb.KvRequest_Cas:
		if len(op.Cas.GetKey()) == 0 {
			return "cas: empty key"
		}
	case *pb.KvRequest_Scan:
		sc := op.Scan
		if len(sc.GetEndKey()) > 0 && bytes.Compare(sc.GetStartKey(), sc.GetEndKey()) >= 0 {
			return fmt.Sprintf("scan: start %q is not before end %q", sc.GetStartKey(), sc.GetEndKey())
		}
	default:
		return "request has no operation"
	}
	return ""
}

// requestKey is the key that decides which region serves the request.
func requestKey(req *pb.KvRequest) []byte {
	switch op := req.Op.(type) {
	case *pb.KvRequest_Get:
		return op.Get.GetKey()
	case *pb.KvRequest_Put:
		return op.Put.GetKey()
	case *pb.KvRequest_Delete:
		return op.Delete.GetKey()
	case *pb.KvRequest_Cas:
		return op.Cas.GetKey()
	case *pb.KvRequest_Scan:
		return op.Scan.GetStartKey()
	}
	return nil
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
		Message: fmt.Sprintf("key %q is not in region %d [%q, %q)", key, meta.GetId(), meta.GetStartKey(), meta.GetEndKey()),
		KeyNotInRegion: &pb.KeyNotInRegion{
			Key: key, RegionId: meta.GetId(), StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(),
		},
	}
}

// epochNotMatchErr lists the region as it is now and, when key moved to
// another local region (after a split), that region too.
func (s *Store) epochNotMatchErr(p *peer, key []byte) *pb.RegionError {
	current := []*pb.Region{cloneRegion(p.region.Meta())}
	if key != nil && !keyInRegion(key, p.region.Meta()) {
		for _, o := range s.sortedPeers() {
			if o != p && storage.Initialized(o.region.Meta()) && keyInRegion(key, o.region.Meta()) {
				current = append(current, cloneRegion(o.region.Meta()))
				break
			}
		}
	}
	// The epoch is spelled out by hand: a proto message's text (%v) varies
	// from one binary to another (protobuf's detrand), and the simulator
	// hashes the bytes of every message it delivers.
	epoch := p.region.Meta().GetEpoch()
	return &pb.RegionError{
		Message:       fmt.Sprintf("region %d epoch changed: now conf_ver:%d version:%d", p.regionID(), epoch.GetConfVer(), epoch.GetVersion()),
		EpochNotMatch: &pb.EpochNotMatch{CurrentRegions: current},
	}
}

func isWrite(req *pb.KvRequest) bool {
	switch req.Op.(type) {
	case *pb.KvRequest_Put, *pb.KvRequest_Delete, *pb.KvRequest_Cas:
		return true
	}
	return false
}

// clientRequest names a client request for duplicate detection.
type clientRequest struct{ client, id uint64 }

// recentWriteWindow is how long a store remembers the write requests it
// received. A duplicate delivered later than that (or after a restart,
// which forgets them) could apply twice: the real transport (TCP) never
// duplicates, and the simulated network delivers copies within its
// latency bounds.
const recentWriteWindow = 30 * time.Second

// seenBefore records a write request and reports whether it was recorded
// already.
func (s *Store) seenBefore(client, id uint64) bool {
	k := clientRequest{client, id}
	if _, ok := s.recentWrites[k]; ok {
		return true
	}
	s.recentWrites[k] = s.now()
	s.recentOrder = append(s.recentOrder, k)
	return false
}

// expireRecentWrites forgets write requests older than the window.
func (s *Store) expireRecentWrites(now time.Time) {
	n := 0
	for _, k := range s.recentOrder {
		if now.Sub(s.recentWrites[k]) < recentWriteWindow {
			break
		}
		delete(s.recentWrites, k)
		n++
	}
	s.recentOrder = s.recentOrder[n:]
}
