package raftstore

import (
	"fmt"

	"github.com/multiraft/multiraft/core/buggify"
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
		s.bug.Reach(buggify.StaleEpochRequest)
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
	if req.IsWrite() {
		p.propose(client, req, commandFor(req))
		return
	}
	p.reads = append(p.reads, &readRequest{client: client, req: req})
	s.wake(p)
}

// commandFor builds the raft command of a write request from fresh messages
// holding only the fields that were checked: whatever else the request
// carried (unknown protobuf fields survive decoding) never reaches the log.
func commandFor(req *pb.KvRequest) *pb.RaftCommand {
	// One allocation for the command, its header and session, one for its
	// operation: a command is built for every write.
	a := new(struct {
		cmd     pb.RaftCommand
		header  pb.RequestHeader
		epoch   pb.Epoch
		session pb.Session
	})
	h := req.GetHeader()
	a.epoch.ConfVer, a.epoch.Version = h.GetRegionEpoch().GetConfVer(), h.GetRegionEpoch().GetVersion()
	a.header.RegionId, a.header.RegionEpoch = h.GetRegionId(), &a.epoch
	cmd := &a.cmd
	cmd.Header = &a.header
	if s := req.GetSession(); s != nil {
		a.session.Id, a.session.Sequence, a.session.Lowest, a.session.StartedMs = s.GetId(), s.GetSequence(), s.GetLowest(), s.GetStartedMs()
		cmd.Session = &a.session
	}
	switch op := req.GetOp().(type) {
	case *pb.KvRequest_Put:
		c := new(struct {
			w pb.RaftCommand_Put
			r pb.PutRequest
		})
		c.r.Key, c.r.Value = op.Put.GetKey(), op.Put.GetValue()
		c.w.Put = &c.r
		cmd.Cmd = &c.w
	case *pb.KvRequest_Delete:
		c := new(struct {
			w pb.RaftCommand_Delete
			r pb.DeleteRequest
		})
		c.r.Key = op.Delete.GetKey()
		c.w.Delete = &c.r
		cmd.Cmd = &c.w
	case *pb.KvRequest_Cas:
		c := new(struct {
			w pb.RaftCommand_Cas
			r pb.CasRequest
		})
		c.r.Key, c.r.ExpectedVersion, c.r.Value = op.Cas.GetKey(), op.Cas.GetExpectedVersion(), op.Cas.GetValue()
		c.w.Cas = &c.r
		cmd.Cmd = &c.w
	}
	return cmd
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

// sessionExpiredErr refuses session write w for good; neverApplied: the
// region vouches that no copy of it applied before either.
func sessionExpiredErr(w *pb.Session, neverApplied bool) *pb.RegionError {
	msg := fmt.Sprintf("session %x: write %d (started at %d ms) refused: the session expired here, the write was answered already, "+
		"or the region does not know the session from before the write started", w.GetId(), w.GetSequence(), w.GetStartedMs())
	if neverApplied {
		msg += " (it never applied here)"
	}
	return &pb.RegionError{
		Message:        msg,
		SessionExpired: &pb.SessionExpired{SessionId: w.GetId(), Sequence: w.GetSequence(), NeverApplied: neverApplied},
	}
}
